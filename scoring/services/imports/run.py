"""Running an import: check chunks in a background thread, COPY them, refuse in SQL, upsert."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue

import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from scoring.models import ImportRun, Property
from scoring.services.bulk import csv_bytes
from scoring.services.imports.files import (
    ImportFileError,
    RejectsFile,
    read_chunks,
    read_header,
    resolve_header,
)
from scoring.services.imports.kinds import IMPORTERS, Chunk, Importer


@dataclass
class ImportResult:
    run: ImportRun
    exit_code: int

    def summary(self) -> str:
        run = self.run
        if run.status == ImportRun.Status.FAILED:
            return f"{run.kind}: {run.file_name} was not imported: {run.error}"
        text = (
            f"{run.kind}: {run.rows_read:,} rows read, {run.rows_inserted:,} inserted, {run.rows_updated:,} updated, "
            f"{run.rows_unchanged:,} unchanged, {run.rows_rejected:,} rejected"
        )
        if run.rows_rejected:
            text += f" (see {run.rejects_file})"
        text += f" in {run.duration_seconds:.1f} s"
        if run.ignored_columns:
            text += f"; columns not used: {', '.join(run.ignored_columns)}"
        return text


def stage_frame(importer: Importer, chunk: Chunk, ok: pd.Series) -> pd.DataFrame:
    # Series keep their dtypes (nullable Int64 stays whole numbers) where numpy arrays would not.
    columns = {"line": pd.Series(chunk.raw.index + 2, index=chunk.raw.index)[ok]}
    for name, _ in importer.stage_columns():
        columns[name] = chunk.values[name][ok]
    return pd.DataFrame(columns)


def refuse_in_sql(cursor, importer: Importer, rejects: RejectsFile) -> None:
    """Refuse natural keys repeated within the file, and rows naming parcels that are not loaded."""
    key = ", ".join(importer.key)
    cursor.execute(
        f"""
        DELETE FROM import_stage s USING (
            SELECT {key}, array_agg(line ORDER BY line) AS lines FROM import_stage GROUP BY {key} HAVING count(*) > 1
        ) d WHERE ({", ".join(f"s.{k}" for k in importer.key)}) = ({", ".join(f"d.{k}" for k in importer.key)})
        RETURNING s.line, concat_ws(' ', {", ".join(f"s.{k}" for k in importer.key)}), d.lines
        """
    )
    found = cursor.fetchall()
    if found:
        rejects.write(
            pd.DataFrame(
                {
                    "line": [row[0] for row in found],
                    "column": importer.key[0],
                    "value": [row[1] for row in found],
                    "reason": [
                        f"appears on more than one line of the file (lines {', '.join(map(str, row[2]))})"
                        for row in found
                    ],
                }
            ).sort_values("line")
        )
    if importer.checks_parcels:
        cursor.execute(
            f"""
            DELETE FROM import_stage s
             WHERE NOT EXISTS (SELECT 1 FROM {Property._meta.db_table} p WHERE p.parcel_id = s.parcel_id)
            RETURNING s.line, s.parcel_id
            """
        )
        unknown = cursor.fetchall()
        if unknown:
            rejects.write(
                pd.DataFrame(
                    {
                        "line": [row[0] for row in unknown],
                        "column": "parcel_id",
                        "value": [row[1] for row in unknown],
                        "reason": "no property with this parcel_id (import properties first)",
                    }
                ).sort_values("line")
            )


def check_chunk(importer: Importer, raw: pd.DataFrame) -> Chunk:
    chunk = Chunk(raw=raw)
    for column in importer.columns():
        if column.name in raw:
            text = raw[column.name]
            parsed = column.parse(text)
            chunk.values[column.name] = parsed.values
            chunk.reasons[column.name] = parsed.reasons
            if column.required:
                chunk.refuse(chunk.missing(column.name), column.name, "required")
        else:  # absent from the file: all empty, typed as the parser types it
            chunk.values[column.name] = column.parse(pd.Series("", index=raw.index, dtype=object)).values
    importer.check_rows(chunk)
    return chunk


ProgressCallback = Callable[[int, int, int], None]


def data_file_import(
    *,
    kind: str,
    path: str | os.PathLike,
    column_map: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
    chunk_rows: int | None = None,
    progress: ProgressCallback | None = None,
    today: dt.date | None = None,
) -> ImportResult:
    """Import one CSV file of `kind` (properties, storms, permits, sales). See the module docstring.

    Exit codes in the result: 0 all rows loaded, 3 some rows rejected, 2 the file was unusable.
    """
    if kind not in IMPORTERS:
        raise ImportFileError(f"unknown kind {kind!r}: use one of {', '.join(IMPORTERS)}")
    path = Path(path)
    started = time.monotonic()
    run = ImportRun.objects.create(
        kind=kind, file_name=str(path.resolve()), file_size=path.stat().st_size if path.is_file() else None
    )
    importer = IMPORTERS[kind](today or timezone.localdate())
    rejects = None
    try:
        header = read_header(path, encoding)
        names = resolve_header(header, importer, column_map or {})
        importer.present = {name for name in names if name}
        run.ignored_columns = [raw for raw, name in zip(header, names, strict=True) if not name]
        rejects = RejectsFile(path)
        with transaction.atomic(), connection.cursor() as cursor:
            counts = load(
                cursor, importer, path, names, encoding, chunk_rows or settings.IMPORT_CHUNK_ROWS, rejects, progress
            )
        run.rejects_file = rejects.finish()
    except ImportFileError as error:
        if rejects:
            rejects.discard()
        return finish(run, started, status=ImportRun.Status.FAILED, error=str(error))
    except BaseException as error:
        if rejects:
            rejects.discard()
        finish(run, started, status=ImportRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    run.rows_read, run.rows_inserted, run.rows_updated = counts["read"], counts["inserted"], counts["updated"]
    run.rows_rejected = rejects.rows
    run.rows_unchanged = run.rows_read - run.rows_rejected - run.rows_inserted - run.rows_updated
    return finish(run, started, status=ImportRun.Status.PARTIAL if rejects.rows else ImportRun.Status.SUCCEEDED)


EXIT_CODES = {ImportRun.Status.SUCCEEDED: 0, ImportRun.Status.PARTIAL: 3, ImportRun.Status.FAILED: 2}


def finish(run: ImportRun, started: float, *, status: str, error: str = "") -> ImportResult:
    run.status = status
    run.error = error
    run.finished_at = run.started_at + dt.timedelta(seconds=time.monotonic() - started)
    run.save()
    return ImportResult(run=run, exit_code=EXIT_CODES[status])


def checked_chunks(importer, path, names, encoding, chunk_rows, rejects, progress, counts) -> Iterator[bytes]:
    """Check each chunk, write its rejects, and yield its good rows as CSV ready for COPY."""
    total_bytes = path.stat().st_size
    for raw, position in read_chunks(importer, path, names, encoding, chunk_rows):
        counts["read"] += len(raw)
        if len(raw):
            chunk = check_chunk(importer, raw)
            ok = chunk.ok()
            rejects.write(chunk.rejects())
            if ok.any():
                yield csv_bytes(stage_frame(importer, chunk, ok))
        if progress:
            progress(position, total_bytes, counts["read"])


def in_background(items: Iterator, depth: int = 2) -> Iterator:
    """Run an iterator in a thread, `depth` items ahead: the file is parsed on one core while
    PostgreSQL ingests the previous chunk on the other. Errors are raised in the caller's thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(("item", item), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(("done", done))
        except BaseException as error:  # handed to the consumer, which raises it
            queue.put(("error", error))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()
        thread.join()


def load(cursor, importer, path, names, encoding, chunk_rows, rejects, progress) -> dict[str, int]:
    stage = ", ".join(f"{name} {sql_type}" for name, sql_type in [("line", "int")] + importer.stage_columns())
    # One import of a kind at a time: the upsert below is two statements (UPDATE, then INSERT).
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"leadengine.import.{importer.kind}"])
    cursor.execute("SET LOCAL work_mem = '256MB'")
    # Statistics of a table that was empty when last analysed say "no rows"; the planner then joins
    # the staged rows to it by nested loops over sequential scans, which turns an import into hours
    # as the table fills. Hash and merge joins cost the same whatever the statistics say.
    cursor.execute("SET LOCAL enable_nestloop = off")
    cursor.execute("DROP TABLE IF EXISTS import_stage")
    cursor.execute(f"CREATE TEMPORARY TABLE import_stage ({stage}) ON COMMIT DROP")
    counts = {"read": 0}
    columns = ", ".join(["line"] + [name for name, _ in importer.stage_columns()])
    for data in in_background(checked_chunks(importer, path, names, encoding, chunk_rows, rejects, progress, counts)):
        with cursor.copy(f"COPY import_stage ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)
    refuse_in_sql(cursor, importer, rejects)
    cursor.execute("ANALYZE import_stage")
    counts["inserted"], counts["updated"] = importer.upsert(cursor)
    importer.after_upsert(cursor)
    cursor.execute("DROP TABLE import_stage")
    return counts
