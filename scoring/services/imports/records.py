"""Imports of records rather than files: the staff API's storm reports (POST /api/v1/storms/) go through the
very import a file of them does (data_file_import, origin "api"), so they are checked by the same rules,
written by the same upsert (the same report again changes nothing), and start the same storm fast path. The
records are written to a CSV in a directory of their own, imported, and the directory removed; what was
refused comes back as a list rather than a file."""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils import timezone

from scoring.errors import ImportFileError
from scoring.models import ImportRun
from scoring.services.imports.kinds import IMPORTERS
from scoring.services.imports.run import ImportResult, data_file_import

MOST_RECORDS = 10_000  # per request: a larger batch is a file (the admin's upload, or import_data)
ORIGIN_API = "api"


@dataclass(frozen=True)
class RecordsImported:
    result: ImportResult
    rejects: list[dict[str, Any]]  # {"index": the record's place in the request (0-based), "field", "value", "reason"}


def records_import(*, kind: str, records: Sequence[Mapping[str, Any]], as_of: dt.date | None = None) -> RecordsImported:
    """Import `records` (dicts of the kind's canonical column names; see README, Importing data) as a file of
    them would be; ImportFileError for no record, too many, or a field the kind does not have."""
    if kind not in IMPORTERS:
        raise ImportFileError(f"unknown kind {kind!r}: use one of {', '.join(IMPORTERS)}")
    if not records:
        raise ImportFileError("no record given")
    if len(records) > MOST_RECORDS:
        raise ImportFileError(f"{len(records):,} records: at most {MOST_RECORDS:,} a request; send a file instead")
    known = [column.name for column in IMPORTERS[kind](timezone.localdate()).columns()]
    unknown = sorted({name for record in records for name in record if name not in known})
    if unknown:
        raise ImportFileError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                              f"the fields are {', '.join(known)}")  # fmt: skip
    header = [name for name in known if any(name in record for record in records)]
    with tempfile.TemporaryDirectory(prefix="leadengine-api-") as directory:
        path = Path(directory) / f"{kind}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for record in records:
                writer.writerow(["" if record.get(name) is None else str(record[name]) for name in header])
        run = ImportRun(kind=kind, file_name=f"API: {len(records):,} record{'s' if len(records) != 1 else ''}")
        result = data_file_import(kind=kind, path=path, as_of=as_of, origin=ORIGIN_API, run=run)
        if result.run.status == ImportRun.Status.FAILED:
            raise ImportFileError(result.run.error)
        rejects = []
        if result.run.rejects_file:
            with open(result.run.rejects_file, newline="", encoding="utf-8") as handle:
                rejects = [
                    {"index": int(row["line"]) - 2, "field": row["column"], "value": row["value"],
                     "reason": row["reason"]}
                    for row in csv.DictReader(handle)
                ]  # fmt: skip
            result.run.rejects_file = ""  # removed with the directory: the list above is what was refused
            result.run.save(update_fields=["rejects_file"])
    return RecordsImported(result=result, rejects=rejects)
