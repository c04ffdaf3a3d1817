import sys

from django.core.management.base import BaseCommand

from scoring.services.imports import IMPORTERS, ImportFileError, data_file_import, parse_column_map


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
        parser.add_argument("--encoding", default="utf-8", help="Text encoding of the file (default utf-8).")
        parser.add_argument("--chunk-rows", type=int, default=None, help="Rows per chunk (default IMPORT_CHUNK_ROWS).")

    def handle(self, *args, kind, file, map, encoding, chunk_rows, **options):
        try:
            column_map = parse_column_map(map)
        except ImportFileError as error:
            self.stderr.write(f"{kind}: {error}")
            sys.exit(2)
        progress = ProgressBar(kind, self.stderr) if self.stderr.isatty() else None
        result = data_file_import(
            kind=kind, path=file, column_map=column_map, encoding=encoding, chunk_rows=chunk_rows, progress=progress
        )
        if progress:
            progress.close()
        (self.stdout if result.exit_code == 0 else self.stderr).write(result.summary())
        if result.exit_code:
            sys.exit(result.exit_code)


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
