import datetime as dt
import sys

from django.core.management.base import BaseCommand
from django.utils import timezone

from scoring.errors import ImportFileError
from scoring.services.imports import IMPORTERS, data_file_import, parse_column_map
from scoring.services.imports.profiles import import_profile_get


class Command(BaseCommand):
    help = (
        "Import a CSV file of properties, storms, permits or sales. Exit code 0: every row loaded; "
        "3: some rows rejected (see FILE.rejects.csv); 2: the file is unusable and nothing was written; "
        "4: the database stayed unreachable for DB_RETRY_SECONDS and nothing was written (run it again)."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=list(IMPORTERS))
        parser.add_argument("file")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="SOURCE=CANONICAL",
            help="Read the file's column SOURCE as the canonical column CANONICAL (repeatable).",
        )
        parser.add_argument(
            "--profile",
            metavar="NAME",
            help="Read the file with the import profile NAME (its column map and conversions; --map applies on "
            "top), e.g. noaa-storm-events, spc-hail. Profiles are listed in the admin under Import profiles.",
        )
        parser.add_argument(
            "--as-of",
            metavar="YYYY-MM-DD",
            help="The date the file's values are true as of (default today): a row never overwrites values "
            "stored from a newer as-of. An SPC file whose name has no date takes it as its reports' date.",
        )
        parser.add_argument("--encoding", default="utf-8", help="Text encoding of the file (default utf-8).")
        parser.add_argument("--chunk-rows", type=int, default=None, help="Rows per chunk (default IMPORT_CHUNK_ROWS).")

    def handle(self, *args, kind, file, map, encoding, chunk_rows, profile, as_of, **options):
        try:
            column_map = parse_column_map(map)
            as_of_date = as_of_parse(as_of) if as_of else None
            chosen = import_profile_get(kind=kind, name=profile) if profile else None
        except ImportFileError as error:
            self.stderr.write(f"{kind}: {error}")
            sys.exit(2)
        progress = ProgressBar(kind, self.stderr) if self.stderr.isatty() else None
        result = data_file_import(
            kind=kind,
            path=file,
            column_map=column_map,
            encoding=encoding,
            chunk_rows=chunk_rows,
            progress=progress,
            as_of=as_of_date,
            profile=chosen,
        )
        if progress:
            progress.close()
        (self.stdout if result.exit_code == 0 else self.stderr).write(result.summary())
        if result.exit_code:
            sys.exit(result.exit_code)


def as_of_parse(text: str) -> dt.date:
    """--as-of: a date written YYYY-MM-DD, not after today."""
    try:
        as_of = dt.datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise ImportFileError(f"--as-of {text!r}: expected a date as YYYY-MM-DD, e.g. --as-of 2025-05-21") from None
    if as_of > timezone.localdate():
        raise ImportFileError(f"--as-of {text}: the date is in the future")
    return as_of


class ProgressBar:
    """A one-line progress bar on a terminal: share of the file read and rows so far."""

    width = 30

    def __init__(self, label: str, stream) -> None:
        self.label = label
        self.stream = stream

    def __call__(self, done_bytes: int, total_bytes: int, rows: int) -> None:
        share = done_bytes / total_bytes if total_bytes else 1.0
        filled = int(self.width * share)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%} {rows:,} rows", ending="")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("")
