"""Imports that lose their PostgreSQL connection: real faults, made by terminating the import's backend
from another connection (pg_terminate_backend), never by mocking the database."""

import datetime as dt
import io
import logging
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone

from core.retry import is_transient
from scoring.bulk import copy_frame, copy_in
from scoring.models import ImportRun, Property
from scoring.services.imports import EXIT_DATABASE_UNREACHABLE, data_file_import, import_runs_abandoned_close

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2024, 6, 1)
HEADER = "parcel_id,address,zip,market_value"
STORED = 10  # parcels P0000-P0009 are in the database before the file is imported, at 100,000


def plain_connection(*, autocommit: bool = True) -> psycopg.Connection:
    """A connection of the test's own, to the test database, outside Django."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=autocommit,
    )


IMPORT_NOT_HEARTBEAT = """query NOT LIKE 'UPDATE "scoring_importrun" SET "heartbeat_at"%'"""


def backends_terminate(where: str = "true") -> int:
    """Terminate the other backends of the test database matching `where`; returns how many."""
    with plain_connection() as admin:
        return admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
        ).fetchone()[0]


@contextmanager
def upserts_cut_off(times: int | None = 1, *, kill: bool = True):
    """Hold the property table so that the import's upsert waits for it, and terminate the waiting
    backend `times` times (None: every time, until the block ends); then let the upsert through.
    Yields the list of the backends terminated, as (pid, seconds since the block began)."""
    holder = plain_connection(autocommit=False)
    holder.execute("LOCK TABLE scoring_property IN SHARE MODE")
    terminated: list[tuple[int, float]] = []
    stop = threading.Event()
    began = time.monotonic()

    def watch() -> None:
        with plain_connection() as admin:
            while not stop.is_set() and (times is None or len(terminated) < times):
                waiting = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND query ~ %s",
                    ["(INSERT INTO|UPDATE) scoring_property"],
                ).fetchall()
                for (pid,) in waiting if kill else []:
                    if admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]:
                        terminated.append((pid, time.monotonic() - began))
                time.sleep(0.02)
        holder.rollback()  # the lock goes; the next try writes

    watcher = threading.Thread(target=watch, name="test-fault", daemon=True)
    watcher.start()
    try:
        yield terminated
    finally:
        stop.set()
        watcher.join()
        holder.close()


def properties_file(tmp_path: Path, rows: int = 300) -> Path:
    """`rows` properties; P0000-P0009 at 250,000 (so they update the stored ones), one bad ZIP
    (P0020) and one parcel on two lines (P0030): three lines refused."""
    lines = [HEADER]
    for n in range(rows):
        zip_code = "ABCDE" if n == 20 else "80302"
        lines.append(f"P{n:04d},{n} Pearl St,{zip_code},250000")
    lines.append("P0030,30 Pearl St again,80302,250000")
    path = tmp_path / "properties.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


REJECTS = (
    "line,column,value,reason\n"
    "22,zip,ABCDE,not a 5-digit ZIP code\n"
    '32,parcel_id,P0030,"appears on more than one line of the file with different values (lines 32, 302)"\n'
    '302,parcel_id,P0030,"appears on more than one line of the file with different values (lines 32, 302)"\n'
)


@pytest.fixture
def stored_properties(zip_codes, tmp_path):
    """P0000-P0009 imported at 100,000 before the test's file."""
    path = tmp_path / "stored.csv"
    path.write_text("\n".join([HEADER] + [f"P{n:04d},{n} Pearl St,80302,100000" for n in range(STORED)]) + "\n")
    assert data_file_import(kind="properties", path=path, today=TODAY).exit_code == 0
    ImportRun.objects.all().delete()
    return path


def outcome(run: ImportRun) -> dict:
    return {
        "status": run.status,
        "error": run.error,
        "read": run.rows_read,
        "inserted": run.rows_inserted,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "rejected": run.rows_rejected,
    }


CLEAN = {"status": "partial", "error": "", "read": 301, "inserted": 288, "updated": 10, "unchanged": 0, "rejected": 3}


def property_values() -> dict[str, int]:
    return dict(Property.objects.values_list("parcel_id", "market_value"))


def clean_values() -> dict[str, int]:
    """P0020 (bad ZIP) and P0030 (two lines) refused; every other parcel at the file's value."""
    return {f"P{n:04d}": 250_000 for n in range(300) if n not in (20, 30)}


def retry_warnings(caplog) -> list[str]:
    """The retries announced ("trying again"), not the last word of one that gave up."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "core.retry" and r.levelno == logging.WARNING and "trying again" in r.getMessage()
    ]


# --- A short loss: the import is started again and ends as if nothing happened -------------------------------


@pytest.mark.django_db(transaction=True)
def test_import_whose_connection_is_terminated_between_chunks_ends_exactly_as_a_clean_import(
    stored_properties, tmp_path, caplog
):
    path = properties_file(tmp_path)
    calls = []

    def terminate_at_the_second_chunk(done_bytes: int, total_bytes: int, rows: int) -> None:
        calls.append(rows)
        if len(calls) == 2:  # read ahead of the writes by at most two chunks: four are still to write
            calls.append(backends_terminate(IMPORT_NOT_HEARTBEAT))

    result = data_file_import(
        kind="properties", path=path, chunk_rows=50, progress=terminate_at_the_second_chunk, today=TODAY
    )

    assert calls[2] == 1  # the import's own backend, in its transaction between two chunks
    assert len(retry_warnings(caplog)) == 1, retry_warnings(caplog)
    assert result.exit_code == 3
    assert outcome(result.run) == CLEAN
    assert outcome(ImportRun.objects.get()) == CLEAN
    assert property_values() == clean_values()
    assert Path(result.run.rejects_file).read_text() == REJECTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["properties.csv", "properties.csv.rejects.csv", "stored.csv"]


@pytest.mark.django_db(transaction=True)
def test_import_whose_upsert_is_cut_off_mid_statement_ends_exactly_as_a_clean_import(
    stored_properties, tmp_path, caplog
):
    path = properties_file(tmp_path)

    with upserts_cut_off(times=1) as terminated:
        result = data_file_import(kind="properties", path=path, chunk_rows=50, today=TODAY)

    assert len(terminated) == 1
    assert len(retry_warnings(caplog)) == 1
    assert outcome(ImportRun.objects.get()) == CLEAN
    assert property_values() == clean_values()
    assert Path(result.run.rejects_file).read_text() == REJECTS


@pytest.mark.django_db(transaction=True)
def test_a_copy_on_a_lost_connection_fails_as_a_transient_database_error(zip_codes):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE copied (line int)")
        assert backends_terminate() == 1

        with pytest.raises(OperationalError) as raised:
            copy_in(cursor, "copied", "line", b"1\n2\n")

    assert is_transient(raised.value)
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_copy_read_on_a_lost_connection_fails_as_a_transient_database_error(zip_codes):
    with connection.cursor() as cursor:
        assert backends_terminate() == 1

        with pytest.raises(OperationalError) as raised:
            copy_frame(cursor, "SELECT 1 AS one", [], {"one": pa.int64()})

    assert is_transient(raised.value)
    connection.close()


# --- A longer loss: the run is failed with its reason, nothing is half-written, exit code 4 -------------------


@pytest.mark.django_db(transaction=True)
@override_settings(DB_RETRY_SECONDS=0)
def test_import_that_cannot_wait_for_the_database_fails_with_the_reason_and_writes_nothing(stored_properties, tmp_path):
    path = properties_file(tmp_path)
    before = property_values()

    with upserts_cut_off(times=1) as terminated:
        result = data_file_import(kind="properties", path=path, chunk_rows=50, today=TODAY)

    assert len(terminated) == 1
    assert result.exit_code == EXIT_DATABASE_UNREACHABLE == 4
    run = ImportRun.objects.get()
    assert (run.status, run.rows_read, run.rows_inserted, run.rows_updated, run.rejects_file) == ("failed", 0, 0, 0, "")
    assert run.error == (
        "the database was unreachable (terminating connection due to administrator command) and not back "
        "within DB_RETRY_SECONDS (0 s); no row was written: run the import again"
    )
    assert run.finished_at >= run.started_at
    assert result.summary() == f"properties: {path.resolve()} was not imported: {run.error}"
    assert property_values() == before == {f"P{n:04d}": 100_000 for n in range(STORED)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["properties.csv", "stored.csv"]


@pytest.mark.django_db(transaction=True)
@override_settings(DB_RETRY_SECONDS=1)
def test_import_cut_off_on_every_try_gives_up_after_db_retry_seconds_and_records_why(
    stored_properties, tmp_path, caplog
):
    path = properties_file(tmp_path)
    started = time.monotonic()

    with upserts_cut_off(times=None) as terminated:
        result = data_file_import(kind="properties", path=path, chunk_rows=50, today=TODAY)

    # Tries at 0 s, then 0.5 s later; the next wait (1 s) would end past the 1 s allowed.
    assert len(terminated) == 2
    assert len(retry_warnings(caplog)) == 1
    assert 0.5 <= time.monotonic() - started < 10
    assert result.exit_code == 4
    assert outcome(ImportRun.objects.get()) == {
        "status": "failed",
        "error": "the database was unreachable (terminating connection due to administrator command) and not back "
        "within DB_RETRY_SECONDS (1 s); no row was written: run the import again",
        "read": 0,
        "inserted": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }
    assert property_values() == {f"P{n:04d}": 100_000 for n in range(STORED)}


@pytest.mark.django_db(transaction=True)
@override_settings(DB_RETRY_SECONDS=0)
def test_command_exits_4_with_one_line_on_stderr_when_the_database_is_lost(stored_properties, tmp_path):
    path = properties_file(tmp_path)
    out, err = io.StringIO(), io.StringIO()

    with upserts_cut_off(times=1), pytest.raises(SystemExit) as exited:
        call_command("import_data", "properties", str(path), "--chunk-rows", "50", stdout=out, stderr=err)

    assert exited.value.code == 4
    assert out.getvalue() == ""
    assert err.getvalue() == (
        f"properties: {path.resolve()} was not imported: the database was unreachable (terminating connection "
        "due to administrator command) and not back within DB_RETRY_SECONDS (0 s); no row was written: "
        "run the import again\n"
    )
    assert ImportRun.objects.get().status == "failed"
    assert Property.objects.count() == STORED


def manage_import_data(path: Path, *, database_url: str, retry_seconds: int) -> subprocess.CompletedProcess:
    env = os.environ | {"DATABASE_URL": database_url, "DB_RETRY_SECONDS": str(retry_seconds), "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "import_data", "properties", str(path), "--chunk-rows", "50"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def database_url_of(settings: dict) -> str:
    return (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
    )


@pytest.mark.django_db(transaction=True)
def test_manage_import_data_rides_out_a_terminated_connection_and_exits_0(zip_codes, tmp_path):
    path = tmp_path / "properties.csv"
    path.write_text("\n".join([HEADER] + [f"Q{n:04d},{n} Pearl St,80302,250000" for n in range(200)]) + "\n")

    with upserts_cut_off(times=1) as terminated:
        done = manage_import_data(path, database_url=database_url_of(connection.settings_dict), retry_seconds=60)

    assert len(terminated) == 1
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("properties: 200 rows read, 200 inserted, 0 updated, 0 unchanged, 0 rejected in ")
    assert "Traceback" not in done.stderr
    assert "the database is unreachable" in done.stderr  # the retry's warning, for whoever watches
    assert (ImportRun.objects.get().status, Property.objects.count()) == ("succeeded", 200)


@pytest.mark.django_db(transaction=True)
def test_manage_import_data_exits_4_with_one_line_when_the_connection_is_lost_for_good(zip_codes, tmp_path):
    path = tmp_path / "properties.csv"
    path.write_text("\n".join([HEADER] + [f"Q{n:04d},{n} Pearl St,80302,250000" for n in range(200)]) + "\n")

    with upserts_cut_off(times=1):
        done = manage_import_data(path, database_url=database_url_of(connection.settings_dict), retry_seconds=0)

    assert done.returncode == 4
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    # Before it, the log of the retry (core.retry), which names the error as PostgreSQL reported it.
    assert done.stderr.splitlines()[-1] == (
        f"properties: {path.resolve()} was not imported: the database was unreachable (terminating connection "
        "due to administrator command) and not back within DB_RETRY_SECONDS (0 s); no row was written: "
        "run the import again"
    )
    assert done.stderr.count(f"properties: {path.resolve()}") == 1
    assert (ImportRun.objects.get().status, Property.objects.count()) == ("failed", 0)


def test_manage_import_data_exits_4_with_one_line_when_the_database_cannot_be_reached_at_all(tmp_path):
    path = tmp_path / "properties.csv"
    path.write_text(f"{HEADER}\nQ0001,1 Pearl St,80302,250000\n")

    done = manage_import_data(path, database_url="postgres://postgres@127.0.0.1:1/nowhere", retry_seconds=0)

    assert done.returncode == 4
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count(f"properties: {path.resolve()}") == 1
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        f"properties: {path.resolve()} was not imported: the database was unreachable (connection failed: "
    )
    assert last.endswith(
        ") and not back within DB_RETRY_SECONDS (0 s); no row was written: run the import again "
        "(the run could not be recorded either)"
    )


# --- Runs left running by a process that died ------------------------------------------------------------------


def running_run(file_name: str, *, started: dt.datetime, heartbeat: dt.datetime | None) -> ImportRun:
    run = ImportRun.objects.create(kind="properties", file_name=file_name)
    ImportRun.objects.filter(pk=run.pk).update(started_at=started, heartbeat_at=heartbeat)
    return run


@pytest.mark.django_db
@override_settings(IMPORT_STALE_SECONDS=300)
def test_runs_silent_for_the_stale_time_are_closed_as_failed_and_the_others_left_alone():
    now = timezone.now()
    hour_ago = now - dt.timedelta(hours=1)
    running_run("silent.csv", started=hour_ago, heartbeat=now - dt.timedelta(seconds=301))
    running_run("never-beat.csv", started=now - dt.timedelta(seconds=301), heartbeat=None)
    running_run("beating.csv", started=hour_ago, heartbeat=now - dt.timedelta(seconds=299))
    running_run("just-started.csv", started=now - dt.timedelta(seconds=299), heartbeat=None)
    done = running_run("done.csv", started=hour_ago, heartbeat=hour_ago)
    ImportRun.objects.filter(pk=done.pk).update(status="succeeded", finished_at=hour_ago)

    assert import_runs_abandoned_close(now=now) == 2
    assert import_runs_abandoned_close(now=now) == 0

    runs = {run.file_name: run for run in ImportRun.objects.all()}
    abandoned = (
        "abandoned: the importing process gave no sign of life for 300 s (it was stopped, or lost the database "
        "for good); no row was written: import the file again"
    )
    assert {name: (run.status, run.error) for name, run in runs.items()} == {
        "silent.csv": ("failed", abandoned),
        "never-beat.csv": ("failed", abandoned),
        "beating.csv": ("running", ""),
        "just-started.csv": ("running", ""),
        "done.csv": ("succeeded", ""),
    }
    assert runs["silent.csv"].finished_at == now - dt.timedelta(seconds=301)
    assert runs["never-beat.csv"].finished_at == runs["never-beat.csv"].started_at
    assert runs["beating.csv"].finished_at is None


@pytest.mark.django_db
def test_the_next_import_closes_a_run_left_running_by_a_dead_process(zip_codes, tmp_path):
    left = running_run("left.csv", started=timezone.now() - dt.timedelta(hours=1), heartbeat=None)
    path = tmp_path / "properties.csv"
    path.write_text(f"{HEADER}\nQ0001,1 Pearl St,80302,250000\n")

    result = data_file_import(kind="properties", path=path, today=TODAY)

    assert result.exit_code == 0
    left.refresh_from_db()
    assert (left.status, left.error.startswith("abandoned: ")) == ("failed", True)


@pytest.mark.django_db(transaction=True)
@override_settings(IMPORT_STALE_SECONDS=1)
def test_a_live_import_waiting_longer_than_the_stale_time_beats_and_is_not_closed(zip_codes, tmp_path):
    path = tmp_path / "properties.csv"
    path.write_text("\n".join([HEADER] + [f"Q{n:04d},{n} Pearl St,80302,250000" for n in range(120)]) + "\n")
    results = []

    def run_import() -> None:
        try:
            results.append(data_file_import(kind="properties", path=path, chunk_rows=50, today=TODAY))
        finally:
            connection.close()

    with upserts_cut_off(times=None, kill=False):
        importing = threading.Thread(target=run_import)
        importing.start()
        time.sleep(2.5)  # waiting for the table, 2.5 times the stale time
        deadline = time.monotonic() + 30
        while ImportRun.objects.get().rows_read < 120 and time.monotonic() < deadline:
            time.sleep(0.05)  # the last chunk read, and its count written with a beat
        closed = import_runs_abandoned_close()
        waiting = ImportRun.objects.get()

    importing.join(timeout=60)
    assert closed == 0
    assert waiting.status == "running"
    assert timezone.now() - waiting.heartbeat_at < dt.timedelta(seconds=1)
    assert waiting.rows_read == 120  # the rows read so far, written with the heartbeat
    assert (results[0].exit_code, ImportRun.objects.get().status, Property.objects.count()) == (0, "succeeded", 120)
