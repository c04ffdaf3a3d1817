"""Scoring runs against real faults: the run's own PostgreSQL connections terminated mid-run, the test
database refusing connections for a while (a restart), a live lease raced by a duplicate task, runs
whose process or worker stopped, and partitions whose message was lost."""

import datetime as dt
import io
import re
import threading
import time
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from core.retry import connection_reset
from leadengine.celery import app as celery_app
from scoring.errors import ScoringRunBusy, ScoringRunInterrupted
from scoring.management.commands import score as score_command
from scoring.models import Score, ScoringPartition, ScoringRun, Trade
from scoring.services import runs
from tests.racing import race
from tests.scoring.test_scoring_distributed import wait_until_closed
from tests.scoring.test_scoring_runs import AS_OF, FACTORS, home, model_version
from tests.workers import database_url

HOMES = 6


@pytest.fixture
def market(zip_codes):
    trade = Trade.objects.create(slug="roofing-faults", name="Roofing (faults)")
    model_version(trade, 1, [FACTORS[0]])
    homes = [home(f"F-{n}", year_built=1990 + 2 * n) for n in range(HOMES)]  # roofs of 36, 34, ... 26 years
    return trade, homes


def scored(trade: Trade) -> list[int]:
    return sorted(Score.objects.filter(trade=trade).values_list("property_id", flat=True))


def server(database: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(re.sub(r"/[^/?]+(\?|$)", rf"/{database}\1", database_url(), count=1), autocommit=True)


@contextmanager
def holding_the_score_table():
    """A connection of the test's own holding a lock that makes every write of scores wait."""
    holder = server(connection.settings_dict["NAME"])
    holder.autocommit = False
    holder.execute(f"LOCK TABLE {Score._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
    try:
        yield holder
    finally:
        holder.close()  # terminated by an outage, or its lock released here


def writers_waiting(count: int, timeout: float = 60) -> None:
    name = connection.settings_dict["NAME"]
    deadline = time.monotonic() + timeout
    with server() as admin:
        while time.monotonic() < deadline:
            waiting = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
                "AND query LIKE %s",
                [name, f"%{Score._meta.db_table}%"],
            ).fetchone()[0]
            if waiting >= count:
                return
            time.sleep(0.1)
    raise AssertionError(f"{count} writers of scores never waited for the lock")


def outage(seconds: float) -> None:
    """The test database goes away as in a restart: every session of it is terminated, and for
    `seconds` no connection is accepted."""
    name = connection.settings_dict["NAME"]
    with server() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            time.sleep(seconds)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """target(*args, **kwargs) on a thread of its own (its own connection, closed at its end)."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = target(*args, **kwargs)
        except BaseException as error:  # handed to the test, which asserts on it
            outcome["error"] = error
        finally:
            outcome["ended"] = time.monotonic()
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.django_db(transaction=True)
def test_an_in_process_run_rides_out_a_three_second_restart_mid_write_and_scores_every_property_once(market):
    trade, homes = market
    with holding_the_score_table():
        thread, outcome = in_thread(runs.trade_score, trade=trade, as_of=AS_OF, partition_rows=1)
        writers_waiting(2)  # both writers in the middle of a partition's transaction
        outage(3)  # terminates the writers, the reader, the heartbeat, this holder and the test's connection
    thread.join(timeout=120)
    connection_reset()

    assert not thread.is_alive(), "the run did not end"
    run = outcome["result"]
    assert (run.status, run.partitions, run.properties_scored, run.scores_changed, run.error) == (
        ScoringRun.Status.SUCCEEDED, HOMES, HOMES, HOMES, ""
    )  # fmt: skip
    assert scored(trade) == sorted(h.pk for h in homes)
    statuses = list(run.partition_set.values_list("status", "attempts"))
    assert statuses == [(ScoringPartition.Status.SUCCEEDED, 1)] * HOMES  # the writes were retried, not the claims
    assert sorted(Score.objects.filter(trade=trade).values_list("score", flat=True)) == [
        80.0, 90.0, 100.0, 100.0, 100.0, 100.0
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_run_that_cannot_record_its_failure_ends_within_a_bound_and_is_closed_and_resumed_later(market, settings):
    trade, homes = market
    settings.DB_RETRY_SECONDS = 1  # the outage below outlasts every retry
    settings.SCORING_RUN_STALE_SECONDS = 2
    with holding_the_score_table():
        thread, outcome = in_thread(runs.trade_score, trade=trade, as_of=AS_OF, partition_rows=1)
        writers_waiting(2)
        started = time.monotonic()
        outage(8)
    thread.join(timeout=60)
    connection_reset()

    assert not thread.is_alive(), "the run hung"
    # Writers gave up writing (1 s), then recording (1 s), the pipeline stopped, releasing its partitions failed.
    assert outcome["ended"] - started < 8 + 10
    error = outcome["error"]
    assert isinstance(error, ScoringRunInterrupted)
    [run] = ScoringRun.objects.filter(trade=trade)
    assert str(error).startswith(
        f"roofing-faults: run {run.pk} stopped: the database stayed unreachable for more than 1 s ("
    )
    assert str(error).endswith(
        f"it is closed as abandoned 2 s after its last heartbeat, and `score --resume {run.pk}` finishes it"
    )
    assert run.status == ScoringRun.Status.RUNNING

    counts = runs.scoring_runs_recover(now=timezone.now() + dt.timedelta(seconds=3))

    assert counts == {"runs_abandoned": 1, "partitions_resent": 0, "partitions_failed": 0, "runs_closed": 0}
    run.refresh_from_db()
    assert (run.status, run.error) == (
        ScoringRun.Status.FAILED, "abandoned: no progress for 2 s (its process or workers stopped); resume it to finish"
    )  # fmt: skip
    resumed = runs.scoring_run_execute(run=runs.scoring_run_resume(run=run))
    assert (resumed.status, resumed.properties_scored, resumed.error) == (ScoringRun.Status.SUCCEEDED, HOMES, "")
    assert scored(trade) == sorted(h.pk for h in homes)


def test_a_live_run_refuses_a_second_start_and_a_resume_until_its_heartbeat_is_silent(market):
    trade, _ = market
    live = runs.scoring_run_start(trade=trade, as_of=AS_OF)

    with pytest.raises(ScoringRunBusy) as busy:
        runs.scoring_run_start(trade=trade, as_of=AS_OF)
    assert re.fullmatch(
        rf"a scoring run of Roofing \(faults\) is already running \(run {live.pk}\), its last heartbeat \d s ago; "
        r"a run silent for 60 s is taken as stopped",
        str(busy.value),
    )
    with pytest.raises(ScoringRunBusy) as busy:
        runs.scoring_run_resume(run=live)
    assert re.fullmatch(
        rf"run {live.pk} of Roofing \(faults\) is still running, its last heartbeat \d s ago; it can be resumed "
        r"once it has been silent for 60 s \(its process or workers stopped\)",
        str(busy.value),
    )
    assert list(ScoringRun.objects.values_list("pk", "status")) == [(live.pk, ScoringRun.Status.RUNNING)]


def test_a_running_run_whose_heartbeat_went_silent_is_taken_over_by_a_resume(market):
    trade, homes = market
    silent = runs.scoring_run_start(trade=trade, as_of=AS_OF, partition_rows=2)
    ScoringRun.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=61))
    first = silent.partition_set.get(number=1)
    ScoringPartition.objects.filter(pk=first.pk).update(
        status=ScoringPartition.Status.RUNNING, lease="process-dead", attempts=1, heartbeat_at=silent.heartbeat_at
    )

    resumed = runs.scoring_run_execute(run=runs.scoring_run_resume(run=silent))

    assert (resumed.pk, resumed.status, resumed.properties_scored, resumed.error) == (
        silent.pk, ScoringRun.Status.SUCCEEDED, HOMES, ""
    )  # fmt: skip
    assert list(resumed.partition_set.values_list("number", "attempts")) == [(1, 2), (2, 1), (3, 1)]
    assert scored(trade) == sorted(h.pk for h in homes)


@pytest.mark.django_db(transaction=True)
def test_resumes_of_a_silent_run_racing_take_it_over_once(market):
    trade, _ = market
    silent = runs.scoring_run_start(trade=trade, as_of=AS_OF)
    ScoringRun.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=61))

    results, errors = race(lambda _: runs.scoring_run_resume(run=ScoringRun.objects.get(pk=silent.pk)), range(4))

    assert len([result for result in results if result is not None]) == 1
    assert len(errors) == 3
    assert all(isinstance(error, ScoringRunBusy) for error in errors)
    silent.refresh_from_db()
    assert (silent.status, silent.error) == (ScoringRun.Status.RUNNING, "")


@pytest.mark.django_db(transaction=True)
def test_a_partition_is_scored_once_by_duplicate_tasks_racing_for_it(market):
    trade, homes = market
    run = runs.scoring_run_start(trade=trade, as_of=AS_OF, distributed=True)
    [partition] = run.partition_set.all()

    results, errors = race(
        lambda lease: runs.scoring_partition_attempt(partition_id=partition.pk, lease=lease), ["task-a", "task-b"]
    )

    assert (results, errors) == ([False, False], [])
    partition.refresh_from_db()
    assert (partition.status, partition.attempts, partition.properties_scored) == ("succeeded", 1, HOMES)
    assert partition.lease in {"task-a", "task-b"}
    run.refresh_from_db()
    assert (run.status, run.properties_scored) == (ScoringRun.Status.SUCCEEDED, HOMES)
    assert scored(trade) == sorted(h.pk for h in homes)


def test_a_duplicate_task_leaves_a_partition_held_by_a_live_lease_and_takes_over_a_silent_one(market):
    trade, homes = market
    run = runs.scoring_run_start(trade=trade, as_of=AS_OF, distributed=True)
    [partition] = run.partition_set.all()
    held = {"status": ScoringPartition.Status.RUNNING, "lease": "task-live", "attempts": 1}
    ScoringPartition.objects.filter(pk=partition.pk).update(heartbeat_at=timezone.now(), **held)

    assert runs.scoring_partition_attempt(partition_id=partition.pk, lease="task-duplicate") is False

    assert ScoringPartition.objects.filter(pk=partition.pk, **held).exists()
    assert scored(trade) == []

    ScoringPartition.objects.filter(pk=partition.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=61))
    assert runs.scoring_partition_attempt(partition_id=partition.pk, lease="task-duplicate") is False

    partition.refresh_from_db()
    assert (partition.status, partition.lease, partition.attempts) == ("succeeded", "task-duplicate", 2)
    assert scored(trade) == sorted(h.pk for h in homes)
    # The silent holder, back, may write nothing over it.
    partition.run = run
    with pytest.raises(runs.PartitionLeaseLost):
        runs._partition_write(partition, None, "task-live", timezone.now())


def test_the_recovery_closes_a_silent_in_process_run_and_leaves_a_live_one(market, roofing_other):
    trade, _ = market
    silent = runs.scoring_run_start(trade=trade, as_of=AS_OF)
    live = runs.scoring_run_start(trade=roofing_other, as_of=AS_OF)
    ScoringRun.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=61))

    counts = runs.scoring_runs_recover()

    assert counts == {"runs_abandoned": 1, "partitions_resent": 0, "partitions_failed": 0, "runs_closed": 0}
    silent.refresh_from_db()
    live.refresh_from_db()
    assert (silent.status, silent.error) == (
        "failed", "abandoned: no progress for 60 s (its process or workers stopped); resume it to finish"
    )  # fmt: skip
    assert live.status == "running"
    # Started afresh: the trade is free again.
    assert runs.trade_score(trade=trade, as_of=AS_OF).status == ScoringRun.Status.SUCCEEDED


@pytest.fixture
def roofing_other(zip_codes):
    trade = Trade.objects.create(slug="roofing-other", name="Roofing (other)")
    model_version(trade, 1, [FACTORS[0]])
    return trade


@pytest.mark.django_db(transaction=True)
def test_lost_partitions_are_sent_again_by_the_recovery_and_the_run_completes_on_a_worker(market, idle_queue, workers):
    trade, homes = market
    run = runs.scoring_run_start(trade=trade, as_of=AS_OF, partition_rows=2, distributed=True)
    assert runs.scoring_run_dispatch(run=run) == 3
    assert len(idle_queue()) == 3  # sent where no worker reads: lost
    one, two, three = run.partition_set.order_by("number")
    long_ago = timezone.now() - dt.timedelta(seconds=61)
    # Two was taken by a worker that died; three by one that died on its third and last try.
    ScoringPartition.objects.filter(pk=two.pk).update(
        status="running", lease="task-dead", attempts=1, heartbeat_at=long_ago
    )
    ScoringPartition.objects.filter(pk=three.pk).update(
        status="running", lease="task-dead", attempts=3, heartbeat_at=long_ago, error="OperationalError: gone"
    )
    ScoringRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    ScoringPartition.objects.filter(pk=one.pk).update(dispatched_at=long_ago)
    workers()  # tasks now go to a live worker

    counts = runs.scoring_runs_recover()

    assert counts == {"runs_abandoned": 0, "partitions_resent": 2, "partitions_failed": 1, "runs_closed": 0}
    run = wait_until_closed(run)
    assert run.status == ScoringRun.Status.FAILED
    assert run.error == (
        f"partition 3 (properties {three.first_id}-{three.last_id}): lost: its worker stopped or lost the "
        "database during try 3 of 3 (OperationalError: gone)"
    )
    assert list(run.partition_set.values_list("number", "status", "attempts", "dispatches")) == [
        (1, "succeeded", 1, 2), (2, "succeeded", 2, 2), (3, "failed", 3, 1)
    ]  # fmt: skip
    assert scored(trade) == sorted(h.pk for h in homes[:4])

    resumed = runs.scoring_run_resume(run=run)
    runs.scoring_run_dispatch(run=resumed)
    resumed = wait_until_closed(resumed)
    assert (resumed.status, resumed.properties_scored) == (ScoringRun.Status.SUCCEEDED, HOMES)
    assert scored(trade) == sorted(h.pk for h in homes)


@pytest.mark.django_db(transaction=True)
def test_the_waiting_command_reports_progress_and_sends_lost_partitions_again_itself(
    market, workers, settings, monkeypatch
):
    trade, homes = market
    settings.SCORING_RUN_STALE_SECONDS = 1
    settings.SCORING_PARTITION_ATTEMPTS = 100  # however long the worker takes to start here
    monkeypatch.setattr(score_command, "PROGRESS_SECONDS", 0.5)
    worker = workers(SCORING_RUN_STALE_SECONDS="1")
    lost = f"test-lost-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = lost  # the command's messages go where no worker reads
    out, err = io.StringIO(), io.StringIO()
    try:
        thread, outcome = in_thread(
            call_command, "score", "--trade", trade.slug, "--distributed", "--partition-rows", "2",
            "--as-of", AS_OF.isoformat(), stdout=out, stderr=err,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ScoringPartition.objects.filter(run__trade=trade, dispatched_at__isnull=False).exists():
            assert time.monotonic() < deadline, "the command sent nothing"
            time.sleep(0.1)
        celery_app.conf.task_default_queue = worker.queue  # what is sent again reaches the worker
        thread.join(timeout=120)
    finally:
        with celery_app.connection_for_write() as broker:
            broker.default_channel.client.delete(lost)

    assert not thread.is_alive(), outcome
    assert "error" not in outcome, outcome
    run = ScoringRun.objects.get(trade=trade)
    assert (run.status, run.properties_scored) == (ScoringRun.Status.SUCCEEDED, HOMES)
    assert scored(trade) == sorted(h.pk for h in homes)
    first, *progress = err.getvalue().splitlines()
    assert first == (
        f"roofing-faults: run {run.pk}, 3 partitions sent to the Celery workers; waiting for them "
        "(Ctrl-C stops waiting, not the run)"
    )
    pattern = (
        rf"roofing-faults: run {run.pk}, [0-3]/3 partitions done( \(\d+ lost partitions sent again, 0 given up\))?"
    )
    assert progress
    assert all(re.fullmatch(pattern, line) for line in progress), progress
    assert any("lost partitions sent again" in line for line in progress)
    assert out.getvalue().startswith(f"roofing-faults: run {run.pk} succeeded, model v1, 6 properties scored")
