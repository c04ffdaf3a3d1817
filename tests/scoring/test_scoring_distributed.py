"""A distributed run on a real Celery worker (a child process) over the real Redis broker and the test
database, compared with an in-process run."""

import datetime as dt
import io
import re
import time

import pytest
from django.core.management import call_command
from django.db import connection

from scoring.models import Score, ScoringRun, Trade
from scoring.services import runs
from tests.scoring.test_scoring_runs import AS_OF, home, model_version, storm

# The only error a worker may log here is the fault a test puts there (tests/conftest.py `worker`).
WORKER_MAY_LOG = "storage fault for the test"


def wait_until_closed(run: ScoringRun, *, timeout: float = 90) -> ScoringRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status != ScoringRun.Status.RUNNING:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run.pk} still running after {timeout} s")


@pytest.fixture
def market(zip_codes):
    trade = Trade.objects.create(slug="roofing-distributed", name="Roofing (distributed)")
    model_version(trade, 1)
    homes = [home(f"D-{n}", year_built=1990 + n, latitude=40.0150 + n * 0.004) for n in range(6)]
    storm("DH-1", 1.75, AS_OF - dt.timedelta(days=10))
    return trade, homes


def snapshot(trade: Trade) -> dict:
    return {
        s.property_id: (s.score, s.urgency, s.model_id, s.reasons, s.digest) for s in Score.objects.filter(trade=trade)
    }


@pytest.mark.django_db(transaction=True)
def test_a_distributed_run_on_a_real_worker_agrees_with_an_in_process_run(market, worker):
    trade, _homes = market
    here = runs.trade_score(trade=trade, as_of=AS_OF, partition_rows=2)
    expected = snapshot(trade)
    Score.objects.filter(trade=trade).delete()

    run = runs.scoring_run_start(trade=trade, as_of=AS_OF, partition_rows=2, distributed=True)
    assert runs.scoring_run_dispatch(run=run) == 3
    run = wait_until_closed(run)

    assert (run.status, run.partitions, run.properties_scored, run.scores_changed) == (
        ScoringRun.Status.SUCCEEDED, 3, 6, 6
    )  # fmt: skip
    assert snapshot(trade) == expected
    assert run.distribution == here.distribution


@pytest.mark.django_db(transaction=True)
def test_a_failed_partition_on_a_worker_fails_the_run_and_a_distributed_resume_completes_it(
    market, worker, failing_property
):
    trade, homes = market
    failing_property(homes[3].pk)

    run = runs.scoring_run_start(trade=trade, as_of=AS_OF, partition_rows=2, distributed=True)
    runs.scoring_run_dispatch(run=run)
    run = wait_until_closed(run)

    assert run.status == ScoringRun.Status.FAILED
    assert "storage fault for the test" in run.error
    assert run.properties_scored == 4
    assert Score.objects.filter(trade=trade).count() == 4

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_score_fault ON scoring_score")
    resumed = runs.scoring_run_resume(run=run)
    runs.scoring_run_dispatch(run=resumed)
    resumed = wait_until_closed(resumed)

    assert (resumed.status, resumed.properties_scored, resumed.error) == (ScoringRun.Status.SUCCEEDED, 6, "")
    assert Score.objects.filter(trade=trade).count() == 6


@pytest.mark.django_db(transaction=True)
def test_the_score_command_distributes_a_run_and_waits_for_the_workers(market, worker):
    trade, _homes = market
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "score", "--trade", trade.slug, "--distributed", "--partition-rows", "2", "--as-of", AS_OF.isoformat(),
        stdout=out, stderr=err,
    )  # fmt: skip

    run = ScoringRun.objects.get(trade=trade)
    assert (run.status, run.distributed, run.partitions, run.properties_scored) == ("succeeded", True, 3, 6)
    first, *progress = err.getvalue().splitlines()
    assert first == (
        f"{trade.slug}: run {run.pk}, 3 partitions sent to the Celery workers; waiting for them "
        "(Ctrl-C stops waiting, not the run)"
    )
    # A line every 10 s while it waits (the worker may take that long to start on a busy machine).
    assert all(re.fullmatch(rf"{trade.slug}: run {run.pk}, [0-3]/3 partitions done", line) for line in progress)
    assert out.getvalue().startswith(f"{trade.slug}: run {run.pk} succeeded, model v1, 6 properties scored")
