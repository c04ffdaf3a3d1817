"""Running an import: check chunks in a background thread, COPY them, refuse in SQL, upsert."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core import locks
from core.heartbeat import Heartbeat
from core.retry import db_retry, is_transient
from scoring.bulk import copy_in, csv_bytes
from scoring.errors import ImportFileError
from scoring.models import ImportProfile, ImportRun, Permit, Property, StormEvent
from scoring.services.imports.files import (
    RejectsFile,
    read_chunks,
    read_header,
    resolve_header,
)
from scoring.services.imports.kinds import CLEAR_TOKEN, IMPORTERS, Chunk, Importer
from scoring.services.imports.profiles import ProfileReader

# The database stayed unreachable for DB_RETRY_SECONDS: nothing was imported, the same import may be run again.
EXIT_DATABASE_UNREACHABLE = 4
# The storm fast path's task (leadengine.tasks.imports_rescore), sent by name: it crosses apps (scores, then
# leads, then delivery), so it lives on the floor above, which this one cannot import.
RESCORING_TASK = "leadengine.imports_rescore"
# Which of a kind's rows the import changed: those whose updated_at it moved (merge stamps a changed or new row
# with its statement's time, at or after the clock read before the first write, %(since)s). Sales mark the
# properties whose last sale they changed; a permit changes its property's permit features.
CHANGED_SQL: dict[str, str] = {
    ImportRun.Kind.STORMS: f"SELECT id FROM {StormEvent._meta.db_table} WHERE updated_at >= %(since)s",
    ImportRun.Kind.PERMITS: f"SELECT DISTINCT property_id AS id FROM {Permit._meta.db_table} "
    "WHERE updated_at >= %(since)s",
    ImportRun.Kind.PROPERTIES: f"SELECT id FROM {Property._meta.db_table} WHERE updated_at >= %(since)s",
    ImportRun.Kind.SALES: f"SELECT id FROM {Property._meta.db_table} WHERE updated_at >= %(since)s",
}
log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    run: ImportRun
    exit_code: int
    recorded: bool = True  # False when the database never came back to record how the run ended

    def summary(self) -> str:
        run = self.run
        if run.status == ImportRun.Status.FAILED:
            text = f"{run.kind}: {run.file_name} was not imported: {run.error}"
            if not self.recorded and run.pk is None:
                text += " (the run could not be recorded either)"
            elif not self.recorded:
                text += " (the failure could not be recorded: the run is closed as abandoned later)"
            return text
        # Counts that are usually zero are named only when they are not.
        rare = [
            f"{run.rows_duplicate:,} duplicate lines" if run.rows_duplicate else "",
            f"{run.rows_older:,} older than stored (skipped)" if run.rows_older else "",
            f"{run.rows_skipped:,} skipped by the profile" if run.rows_skipped else "",
        ]
        text = (
            f"{run.kind}: {run.rows_read:,} rows read, {run.rows_inserted:,} inserted, {run.rows_updated:,} updated, "
            f"{run.rows_unchanged:,} unchanged, {''.join(f'{part}, ' for part in rare if part)}"
            f"{run.rows_rejected:,} rejected"
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


def drop_exact_duplicates(cursor: CursorWrapper, importer: Importer, staged: str) -> int:
    """Keep the first of the rows of `staged` that are the same in every column read (a sales file
    repeating a sale line): they are one row, written once. Returns how many were dropped."""
    columns = ", ".join(name for name, _ in importer.stage_columns())
    cursor.execute(
        f"""
        DELETE FROM {staged} s USING (
            SELECT line, row_number() OVER (PARTITION BY {columns} ORDER BY line) AS nth FROM {staged}
        ) d WHERE s.line = d.line AND d.nth > 1
        """
    )
    dropped: int = cursor.rowcount
    return dropped


def refuse_repeated_keys(cursor: CursorWrapper, importer: Importer, staged: str, rejects: RejectsFile) -> None:
    """Refuse every row of `staged` whose natural key another of its rows has too, with other values."""
    key = ", ".join(importer.key)
    cursor.execute(
        f"""
        DELETE FROM {staged} s USING (
            SELECT {key}, array_agg(line ORDER BY line) AS lines FROM {staged} GROUP BY {key} HAVING count(*) > 1
        ) d WHERE ({", ".join(f"s.{k}" for k in importer.key)}) = ({", ".join(f"d.{k}" for k in importer.key)})
        RETURNING s.line, concat_ws(' ', {", ".join(f"s.{k}" for k in importer.key)}), d.lines
        """
    )
    rejects.write_found(
        [
            (
                line,
                importer.key[0],
                value,
                f"appears on more than one line of the file with different values (lines {', '.join(map(str, lines))})",
            )
            for line, value, lines in cursor.fetchall()
        ]
    )


def key_hashes(importer: Importer, values: Mapping[str, pd.Series] | pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's natural key, from its parsed values."""
    frame = pd.DataFrame({name: values[name].astype(object) for name in importer.key})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def repeated_key_hashes(importer: Importer, path: Path, names: list[str], encoding: str, chunk_rows: int) -> np.ndarray:
    """Hashes of the natural keys that appear on more than one line, read ahead from the key columns
    alone (8 bytes a row). Rows with other keys can be written as their chunk is read: nothing later
    in the file can refuse them. Rows with these keys wait for the end, where SQL compares the keys
    themselves (so a hash collision costs a little time, never a wrong refusal)."""
    columns = {column.name: column for column in importer.columns() if column.name in importer.key}
    reader = importer.profile_reader
    # A profile's converter may make the key from other columns (and leave rows out): it reads them all.
    only = importer.key if reader is None else reader.key_columns(importer.key)
    hashes = []
    for raw, _ in read_chunks(path, names, encoding, chunk_rows, only=only):
        if reader is not None and len(raw):
            raw = reader.apply(raw).frame
        hashes.append(key_hashes(importer, {name: columns[name].parse(raw[name]).values for name in importer.key}))
    if not hashes:
        return np.empty(0, dtype=np.uint64)
    unique, counts = np.unique(np.concatenate(hashes), return_counts=True)
    return unique[counts > 1]


def check_chunk(importer: Importer, raw: pd.DataFrame) -> Chunk:
    chunk = Chunk(raw=raw)
    cleared_bits = np.zeros(len(raw), dtype=np.int64)
    for column in importer.columns():
        if column.name in raw:
            text = raw[column.name]
            cleared = (text == CLEAR_TOKEN).to_numpy()
            if cleared.any():  # CLEAR_TOKEN: parsed as an empty cell, remembered as a clearing
                text = text.where(~cleared, "")
            parsed = column.parse(text)
            chunk.values[column.name] = parsed.values
            chunk.reasons[column.name] = parsed.reasons
            if cleared.any():
                chunk.cleared[column.name] = pd.Series(cleared, index=raw.index)
                if column.name in importer.clearable:
                    cleared_bits |= np.where(cleared, importer.clear_bit(column.name), 0)
                else:
                    chunk.refuse(cleared, column.name, f"{column.name} cannot be cleared ({CLEAR_TOKEN})")
            if column.required:
                chunk.refuse(chunk.missing(column.name), column.name, "required")
        else:  # absent from the file: all empty, typed as the parser types it
            chunk.values[column.name] = column.parse(pd.Series("", index=raw.index, dtype=object)).values
    chunk.values["cleared"] = pd.Series(cleared_bits, index=raw.index)
    if importer.dated:  # the row's own as-of date, else the import's
        chunk.values["source_as_of"] = chunk.values["as_of"].fillna(importer.as_of.isoformat())
    if importer.checks_parcels:  # resolved in SQL as the rows are written
        chunk.values["property_id"] = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    importer.check_rows(chunk)
    return chunk


ProgressCallback = Callable[[int, int, int], None]


def data_file_import(
    *,
    kind: str,
    path: str | os.PathLike[str],
    column_map: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
    chunk_rows: int | None = None,
    progress: ProgressCallback | None = None,
    today: dt.date | None = None,
    as_of: dt.date | None = None,
    profile: ImportProfile | None = None,
    origin: str = "command",
    run: ImportRun | None = None,
) -> ImportResult:
    """Import one CSV file of `kind` (properties, storms, permits, sales). See the package docstring.

    `as_of`: the date the file's values are true as of (default: today); a row never overwrites
    values stored from a newer as-of. `profile`: how to read the source's columns and values.
    `origin`: who started it (command, admin, demo). `run`: a run recorded beforehand (an upload
    queued from the admin), taken over by this import.

    Exit codes in the result: 0 all rows loaded, 3 some rows rejected, 2 the file was unusable,
    4 the database stayed unreachable (nothing was imported; run the import again).

    The import is one transaction, and the run's outcome (status, counts) is written in it: a run
    still "running" never wrote a row. A lost database connection loses that transaction, so the whole
    import is the unit that db_retry starts again (the file re-read, the staging tables made anew);
    the result is exactly that of an import never interrupted.
    """
    if kind not in IMPORTERS:
        raise ImportFileError(f"unknown kind {kind!r}: use one of {', '.join(IMPORTERS)}")
    path = Path(path)
    started = time.monotonic()
    what = f"{kind} import of {path.name}"
    today = today or timezone.localdate()
    if run is None:
        run = ImportRun(kind=kind, file_name=str(path.resolve()))
    run.file_size = path.stat().st_size if path.is_file() else None
    run.as_of, run.profile, run.origin = as_of or today, profile, origin
    run.status = ImportRun.Status.RUNNING

    def begin() -> None:
        import_runs_abandoned_close()
        if run.pk:  # queued beforehand: its clock starts now
            run.started_at = timezone.now()
        run.save()

    try:
        db_retry(begin, what=what)
    except (OperationalError, InterfaceError) as error:
        if not is_transient(error):
            raise
        run.started_at = timezone.now()
        return database_lost(run, started, error, recorded=False)

    attempts = 0

    def attempt() -> ImportResult:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and outcome_committed(run):
            # The connection was lost while committing, after the commit itself had landed.
            return ImportResult(run=run, exit_code=EXIT_CODES[run.status])
        return import_attempt(run, started, path, column_map or {}, encoding, chunk_rows, progress, today)

    try:
        with ImportHeartbeat(run.pk) as beat:
            progress = beat.progress(progress)
            return db_retry(attempt, what=what)
    except ImportFileError as error:
        return finish_recorded(run, started, status=ImportRun.Status.FAILED, error=str(error))
    except (OperationalError, InterfaceError) as error:
        if not is_transient(error):
            finish_recorded(run, started, status=ImportRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
            raise
        return database_lost(run, started, error, recorded=True)
    except BaseException as error:
        finish_recorded(run, started, status=ImportRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise


def import_attempt(
    run: ImportRun,
    started: float,
    path: Path,
    column_map: Mapping[str, str],
    encoding: str,
    chunk_rows: int | None,
    progress: ProgressCallback | None,
    today: dt.date | None,
) -> ImportResult:
    """One try at the whole import, in one transaction that also records the run's outcome."""
    importer = IMPORTERS[run.kind](today or timezone.localdate(), run.as_of)
    header = read_header(path, encoding)
    if run.profile is None:
        names = resolve_header(header, importer, column_map)
        importer.present = {name for name in names if name}
    else:
        reader = importer.profile_reader = ProfileReader(
            profile=run.profile, importer=importer, header=header, path=path, as_of=importer.as_of
        )
        names = resolve_header(
            reader.header(header),
            importer,
            column_map,
            profile_map=reader.column_map,
            provided=reader.provided,
            inputs=reader.inputs,
        )
        importer.present = {name for name in names if name and name not in reader.inputs} | reader.provided
    run.ignored_columns = [raw for raw, name in zip(header, names, strict=True) if not name]
    rejects = RejectsFile(path)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            counts = load(
                cursor, importer, path, names, encoding, chunk_rows or settings.IMPORT_CHUNK_ROWS, rejects, progress
            )
            # In place before the commit: if the commit is lost the next try writes the file again.
            run.rejects_file = rejects.finish()
            run.rows_read, run.rows_inserted, run.rows_updated = counts["read"], counts["inserted"], counts["updated"]
            run.rows_duplicate, run.rows_older, run.rows_skipped = (
                counts["duplicate"],
                counts["older"],
                counts["skipped"],
            )
            run.rows_rejected = rejects.rows
            run.rows_unchanged = (
                run.rows_read - run.rows_rejected - run.rows_inserted - run.rows_updated
                - run.rows_duplicate - run.rows_older - run.rows_skipped
            )  # fmt: skip
            rescoring_record(cursor, run, importer)
            status = ImportRun.Status.PARTIAL if rejects.rows else ImportRun.Status.SUCCEEDED
            return finish(run, started, status=status)
    except BaseException:
        rejects.discard()
        raise


def rescoring_clear(run: ImportRun) -> None:
    """Nothing for the run to rescore (nothing changed, or nothing was written)."""
    run.rescoring, run.changed_storms, run.changed_properties, run.rescoring_note = ImportRun.Rescoring.NONE, [], [], ""


def rescoring_record(cursor: CursorWrapper, run: ImportRun, importer: Importer) -> None:
    """Mark the run's rescoring pending, with the storms or properties it changed, in the import's own
    transaction (the rows and the pending rescoring commit together, so a process that dies after the
    commit loses nothing: the recovery sweep sends what is pending), and send the storm fast path its task
    once that commits. Left to the nightly run: an import that changed more than RESCORE_MAX_PROPERTIES
    properties (a county's property file; for storms, the fast path counts the properties they reach). The
    demo's imports are not rescored: its days are played by the nightly run. Nothing changed (the same file
    again): nothing to do."""
    rescoring_clear(run)
    if run.origin == "demo" or run.rows_inserted + run.rows_updated == 0:
        return
    most = settings.RESCORE_MAX_PROPERTIES
    cursor.execute(
        f"SELECT array_agg(id) FROM ({CHANGED_SQL[run.kind]} LIMIT %(most)s) changed",
        {"since": importer.writes_from, "most": most + 1},
    )
    (changed,) = cursor.fetchone()
    changed = sorted(changed or [])
    if run.kind != ImportRun.Kind.STORMS and len(changed) > most:
        run.rescoring = ImportRun.Rescoring.NIGHTLY
        run.rescoring_note = f"Over {most:,} properties changed (RESCORE_MAX_PROPERTIES): the nightly run scores them."
        return
    if not changed:
        return
    if run.kind == ImportRun.Kind.STORMS:
        run.changed_storms = changed
    else:
        run.changed_properties = changed
    run.rescoring = ImportRun.Rescoring.PENDING
    transaction.on_commit(rescoring_send)


def rescoring_send() -> None:
    """Send the storm fast path its task; a broker that refuses is logged (the recovery sweep sends it)."""
    from celery import current_app

    try:
        current_app.send_task(RESCORING_TASK)
    except Exception as error:  # whatever the broker's client raises, the pending rescoring is kept
        log.warning("the rescoring of an import was not sent (the broker refused it: %s); it is sent later", error)


def outcome_committed(run: ImportRun) -> bool:
    """True when the run's own transaction committed after all (it alone sets succeeded or partial);
    a run closed as failed by import_runs_abandoned_close while this process waited is imported anew."""
    stored = ImportRun.objects.get(pk=run.pk)
    if stored.status not in (ImportRun.Status.SUCCEEDED, ImportRun.Status.PARTIAL):
        return False
    for field in ImportRun._meta.concrete_fields:
        setattr(run, field.attname, getattr(stored, field.attname))
    return True


EXIT_CODES: dict[str, int] = {ImportRun.Status.SUCCEEDED: 0, ImportRun.Status.PARTIAL: 3, ImportRun.Status.FAILED: 2}
OUTCOME_FIELDS = [
    "status", "error", "finished_at", "rows_read", "rows_inserted", "rows_updated", "rows_unchanged", "rows_rejected",
    "rows_duplicate", "rows_older", "rows_skipped", "rejects_file", "ignored_columns", "rescoring", "changed_storms",
    "changed_properties", "rescoring_note",
]  # fmt: skip


def finish(
    run: ImportRun, started: float, *, status: str, error: str = "", exit_code: int | None = None
) -> ImportResult:
    run.status = status
    run.error = error
    if status == ImportRun.Status.FAILED:  # nothing was written: nothing to rescore (a failed try may have marked it)
        rescoring_clear(run)
    run.finished_at = run.started_at + dt.timedelta(seconds=time.monotonic() - started)
    # Not heartbeat_at, which the heartbeat's own connection writes.
    run.save(update_fields=OUTCOME_FIELDS)
    return ImportResult(run=run, exit_code=EXIT_CODES[status] if exit_code is None else exit_code)


def finish_recorded(run: ImportRun, started: float, **outcome: Any) -> ImportResult:
    """finish(), tried again until the database is back (DB_RETRY_SECONDS): a failure is recorded too."""
    return db_retry(lambda: finish(run, started, **outcome), what=f"{run.kind} import: recording its outcome")


def database_lost(run: ImportRun, started: float, error: BaseException, *, recorded: bool) -> ImportResult:
    """The import gave up on a database that stayed unreachable; its transaction, and so every row of
    it, was lost with the connection. Records the failure once the database is back (DB_RETRY_SECONDS
    again); if it is not, the run stays "running" until import_runs_abandoned_close closes it."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    message = (
        f"the database was unreachable ({reason}) and not back within DB_RETRY_SECONDS "
        f"({settings.DB_RETRY_SECONDS} s); no row was written: run the import again"
    )
    outcome = {"status": ImportRun.Status.FAILED, "error": message, "exit_code": EXIT_DATABASE_UNREACHABLE}
    if recorded:
        try:
            return finish_recorded(run, started, **outcome)
        except (OperationalError, InterfaceError) as second:
            if not is_transient(second):
                raise
    run.status, run.error = ImportRun.Status.FAILED, message
    run.finished_at = run.started_at + dt.timedelta(seconds=time.monotonic() - started)
    return ImportResult(run=run, exit_code=EXIT_DATABASE_UNREACHABLE, recorded=False)


def import_runs_abandoned_close(*, now: dt.datetime | None = None) -> int:
    """Close as failed every import run still "running" whose process has shown no sign of life
    (heartbeat_at, or started_at before the first beat) for IMPORT_STALE_SECONDS: the process died, or
    lost the database for longer than it waits. A run's rows and its outcome commit together, so such
    a run imported nothing. Returns how many were closed. Called as each import starts, and by the
    periodic recovery sweep."""
    now = now or timezone.now()
    stale = settings.IMPORT_STALE_SECONDS
    cut = now - dt.timedelta(seconds=stale)
    silent = Q(heartbeat_at__lt=cut) | Q(heartbeat_at__isnull=True, started_at__lt=cut)
    return ImportRun.objects.filter(silent, status=ImportRun.Status.RUNNING).update(
        status=ImportRun.Status.FAILED,
        finished_at=Coalesce(F("heartbeat_at"), F("started_at")),
        error=Value(
            f"abandoned: the importing process gave no sign of life for {stale} s (it was stopped, or lost "
            "the database for good); no row was written: import the file again"
        ),
    )


HEARTBEAT_SECONDS = 1.0


class ImportHeartbeat:
    """While the block runs, now() is written into the run's heartbeat_at, with the rows and bytes read so far
    (the progress the run's admin page shows), every second (at most IMPORT_STALE_SECONDS / 20), from a thread
    with its own connection: the import's own connection is inside its transaction, whose writes no one sees
    before the commit."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.rows_read = 0
        self.bytes_read = 0
        every = min(HEARTBEAT_SECONDS, settings.IMPORT_STALE_SECONDS / 20)
        self.heartbeat = Heartbeat(self.beat, every=every, name=f"import run {run_id}")

    def __enter__(self) -> ImportHeartbeat:
        self.heartbeat.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.heartbeat.__exit__(*exc)

    def progress(self, then: ProgressCallback | None) -> ProgressCallback:
        """A progress callback that keeps the rows and bytes read for the next beat, then calls `then`."""

        def seen(done_bytes: int, total_bytes: int, rows: int) -> None:
            self.rows_read, self.bytes_read = rows, done_bytes
            if then:
                then(done_bytes, total_bytes, rows)

        return seen

    def beat(self) -> None:
        ImportRun.objects.filter(pk=self.run_id, status=ImportRun.Status.RUNNING).update(
            heartbeat_at=timezone.now(), rows_read=self.rows_read, bytes_read=self.bytes_read
        )


def checked_chunks(
    importer: Importer,
    path: Path,
    names: list[str],
    encoding: str,
    chunk_rows: int,
    repeated: np.ndarray,
    rejects: RejectsFile,
    progress: ProgressCallback | None,
    counts: dict[str, int],
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Check each chunk and write its rejects; yield its good rows as CSV ready for COPY, split into
    (rows to write now, rows whose key is repeated in the file and must wait for the end)."""
    total_bytes = path.stat().st_size

    def refuse(refused: pd.DataFrame) -> None:
        """Lines the reader refused as a whole (wrong number of fields, control characters)."""
        counts["read"] += refused["line"].nunique()
        rejects.write(refused)

    reader = importer.profile_reader
    for raw, position in read_chunks(path, names, encoding, chunk_rows, refuse=refuse):
        counts["read"] += len(raw)
        if len(raw) and reader is not None:  # the profile's conversions, then the usual checks
            converted = reader.apply(raw)
            counts["skipped"] += converted.skipped
            rejects.write(converted.rejects)
            raw = converted.frame
        if len(raw):
            chunk = check_chunk(importer, raw)
            ok = chunk.ok()
            rejects.write(chunk.rejects())
            if ok.any():
                rows = stage_frame(importer, chunk, ok)
                waits = np.isin(key_hashes(importer, rows), repeated)
                yield (
                    csv_bytes(rows[~waits]) if not waits.all() else None,
                    csv_bytes(rows[waits]) if waits.any() else None,
                )
        if progress:
            progress(position, total_bytes, counts["read"])


T = TypeVar("T")


def in_background(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run an iterator in a thread, `depth` items ahead: the file is parsed on one core while
    PostgreSQL ingests the previous chunk on the other. Errors are raised in the caller's thread."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()  # set when the consumer stops early (an error while writing)

    def offer(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(message, timeout=0.1)
            except Full:
                continue
            else:
                return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("done", None))
        except BaseException as error:  # handed to the consumer, which raises it
            offer(("error", error))

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


def load(
    cursor: CursorWrapper,
    importer: Importer,
    path: Path,
    names: list[str],
    encoding: str,
    chunk_rows: int,
    rejects: RejectsFile,
    progress: ProgressCallback | None,
) -> dict[str, int]:
    """Write the file's rows chunk by chunk, while the next chunk is read and checked in a thread.

    Tables (temporary, dropped at commit): import_chunk holds the chunk being written;
    import_waiting the rows whose key is repeated in the file, refused or written at the end;
    import_written every row written, for importers whose after_upsert needs them.
    """
    # read: lines of the file; skipped: rows the profile leaves out; the rest as in ImportRun.
    counts = {"read": 0, "inserted": 0, "updated": 0, "duplicate": 0, "older": 0, "skipped": 0}
    repeated = repeated_key_hashes(importer, path, names, encoding, chunk_rows)
    # One import of a kind at a time, so that two files naming the same keys apply in a clear order.
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [locks.DATA_IMPORT, locks.name_number(importer.kind)])
    cursor.execute("SET LOCAL work_mem = '256MB'")
    # Foreign keys checked as each statement writes, rather than queued for the commit: a queue of
    # millions of deferred checks costs twice the time.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    # The joins left (repeated keys, last sales) are bulk joins: hash joins, whatever the statistics.
    cursor.execute("SET LOCAL enable_nestloop = off")
    stage = ", ".join(f"{name} {sql_type}" for name, sql_type in [("line", "int"), *importer.stage_columns()])
    for table in ("import_chunk", "import_waiting", "import_written"):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TEMPORARY TABLE {table} ({stage}) ON COMMIT DROP")
    columns = ", ".join(["line"] + [name for name, _ in importer.stage_columns()])

    importer.load_begin(cursor)
    cursor.execute("SELECT clock_timestamp()")
    (importer.writes_from,) = cursor.fetchone()  # what the import changes is stamped from here on

    def write(staged: str) -> None:
        merged = importer.write(cursor, staged, rejects)
        counts["inserted"] += merged.inserted
        counts["updated"] += merged.updated
        counts["older"] += merged.older
        if importer.keeps_written_rows:
            cursor.execute(f"INSERT INTO import_written SELECT * FROM {staged}")

    chunks = checked_chunks(importer, path, names, encoding, chunk_rows, repeated, rejects, progress, counts)
    for now, waiting in in_background(chunks):
        if now:
            cursor.execute("TRUNCATE import_chunk")
            copy_in(cursor, "import_chunk", columns, now)
            write("import_chunk")
        if waiting:
            copy_in(cursor, "import_waiting", columns, waiting)
    counts["duplicate"] += drop_exact_duplicates(cursor, importer, "import_waiting")
    refuse_repeated_keys(cursor, importer, "import_waiting", rejects)
    write("import_waiting")
    importer.after_write(cursor, "import_written")
    for table in ("import_chunk", "import_waiting", "import_written"):
        cursor.execute(f"DROP TABLE {table}")
    return counts
