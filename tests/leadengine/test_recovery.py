"""Runs recover by themselves: a run requested while the broker is down is recorded and sent later; the
recovery sweep sends again a run whose message was lost and takes over one whose worker died (once, then
fails it with its reason); a lost database connection is ridden out by the run's records and its work; beat
records the scheduled runs it could not send as missed and catches each job up once. Faults are real: a
broker on a closed port, a database session terminated from another one."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time

import psycopg
import pytest
from celery import Celery
from celery.beat import SchedulingError
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from leadengine.celery import app as celery_app
from leadengine.flows import daily_run
from leadengine.models import JobRun
from leadengine.scheduler import JobScheduler
from leadengine.services import jobs
from leadengine.services.jobs import job_run_execute, job_run_request
from leadengine.services.recovery import jobs_missed_catch_up, jobs_recover
from leadengine.services.schedules import schedules_seed
from leadengine.tasks import job_scheduled
from leads.models import Lead
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leadengine.test_jobs import lock_held_elsewhere
from tests.leads.factories import owner, scored_home
from tests.workers import database_url

URL = "/api/v1/runs/"
CLOSED_PORT = "redis://127.0.0.1:1/0"  # nothing listens there: every publish is refused


def _producers_reset() -> None:
    celery_app.amqp._producer_pool = None
    celery_app._pool = None


@pytest.fixture
def broker_down():
    """The Celery app's broker is a closed port until `broker_down.restore()` (or the test's end)."""
    before = celery_app.conf.get("broker_write_url")  # unset: Celery writes to broker_url

    class Switch:
        @staticmethod
        def restore() -> None:
            celery_app.conf.broker_write_url = before
            _producers_reset()

    celery_app.conf.broker_write_url = CLOSED_PORT
    _producers_reset()
    yield Switch
    Switch.restore()


def sent_run_ids(messages: list[dict]) -> list:
    """The run ids of the leadengine.job_run messages waiting on the idle queue."""
    return [
        json.loads(base64.b64decode(m["body"]))[0][0] for m in messages if m["headers"]["task"] == "leadengine.job_run"
    ]


def later(minutes: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(minutes=minutes)


# --- The broker down when a run is asked for -------------------------------------------------------------


def test_a_run_requested_while_the_broker_is_down_is_queued_answered_202_and_sent_by_the_sweep_later(
    staff_api, roofing, idle_queue, broker_down, django_capture_on_commit_callbacks
):
    _user, client = staff_api

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"job": "scoring", "trade": "roofing"}, format="json")

    assert response.status_code == 202
    run = JobRun.objects.get()
    assert (response.json()["id"], run.status, run.sent_at, run.requeues) == (run.pk, "queued", None, 0)
    assert jobs_recover(now=later(0.5))["sent"] == 0  # a run's own request gets a minute to send it
    assert jobs_recover(now=later(2))["sent"] == 0  # the broker is still down: still queued, unsent
    run.refresh_from_db()
    assert (run.status, run.sent_at, run.requeues) == ("queued", None, 0)

    broker_down.restore()
    done = jobs_recover(now=later(2))

    assert (done["sent"], done["requeued"], done["failed"]) == (1, 0, 0)
    run.refresh_from_db()
    assert (run.status, run.requeues) == ("queued", 0)
    assert run.sent_at is not None
    assert sent_run_ids(idle_queue()) == [run.pk]


def test_lead_generation_with_the_broker_down_still_records_the_delivery_run_it_asks_for(
    roofing, idle_queue, broker_down, django_capture_on_commit_callbacks
):
    owner(roofing, "80202", webhook_url="https://crm.example.com/hook")
    scored_home(roofing, score=90, zip_code="80202")
    generation = JobRun.objects.create(job="lead_generation", trade=roofing, queued_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        run = job_run_execute(run_id=generation.pk)

    delivery = JobRun.objects.get(job="webhook_delivery")
    assert (run.status, run.counts["webhook_run"]) == ("succeeded", delivery.pk)
    assert (delivery.status, delivery.sent_at) == ("queued", None)
    assert idle_queue() == []


# --- The recovery sweep ------------------------------------------------------------------------------------


def test_a_queued_run_whose_message_was_lost_is_sent_again_once_then_failed_with_its_reason(
    roofing, idle_queue, settings, mailoutbox
):
    settings.JOB_QUEUE_TIMEOUT_MINUTES = 3
    settings.OPS_EMAILS = ["ops@example.com"]
    now = timezone.now()
    lost = JobRun.objects.create(job="lead_expiry", queued_at=now, sent_at=now)  # Redis restarted empty

    assert jobs_recover(now=now + dt.timedelta(minutes=2, seconds=59))["requeued"] == 0
    first = jobs_recover(now=now + dt.timedelta(minutes=3))
    lost.refresh_from_db()
    assert (first["sent"], first["requeued"], first["failed"]) == (0, 1, 0)
    assert (lost.status, lost.requeues) == ("queued", 1)
    assert sent_run_ids(idle_queue()) == [lost.pk]

    second = jobs_recover(now=lost.sent_at + dt.timedelta(minutes=3))

    lost.refresh_from_db()
    assert (second["requeued"], second["failed"]) == (0, 1)
    assert (lost.status, lost.error) == (
        "failed",
        "Never started: no worker took it within 3 minutes, though its task was sent twice.",
    )
    assert lost.finished_at is not None
    assert [mail.subject for mail in mailoutbox] == [f"LeadEngine: expire overdue leads failed (run {lost.pk})"]
    assert JobRun.objects.count() == 1  # the sweep records no run of its own


def test_a_run_whose_worker_died_is_requeued_and_completes_unattended(roofing, idle_queue):
    scored_home(roofing, score=90, zip_code="80203")
    now = timezone.now()
    dead = JobRun.objects.create(job="lead_generation", trade=roofing, status="running", queued_at=now, started_at=now)

    done = jobs_recover()

    dead.refresh_from_db()
    assert (done["requeued"], dead.status, dead.started_at, dead.requeues) == (1, "queued", None, 1)
    assert sent_run_ids(idle_queue()) == [dead.pk]
    finished = job_run_execute(run_id=dead.pk)  # what the worker taking the message does
    assert (finished.status, finished.counts["leads_generated"], finished.requeues) == ("succeeded", 1, 1)
    assert job_run_execute(run_id=dead.pk).finished_at == finished.finished_at  # a second copy: a no-op
    assert Lead.objects.count() == 1


def test_a_requeued_run_whose_worker_died_again_is_failed_with_its_reason(roofing, idle_queue):
    now = timezone.now()
    dead = JobRun.objects.create(
        job="scoring", trade=roofing, status="running", queued_at=now, started_at=now, requeues=1
    )

    assert jobs_recover()["failed"] == 1

    dead.refresh_from_db()
    assert (dead.status, dead.error) == (
        "failed",
        "Abandoned: the worker running it stopped, again after the run was requeued.",
    )
    assert idle_queue() == []


@pytest.mark.django_db(transaction=True)
def test_the_sweep_leaves_a_run_whose_worker_holds_its_lock(roofing, idle_queue):
    now = timezone.now()
    live = JobRun.objects.create(job="scoring", trade=roofing, status="running", queued_at=now, started_at=now)

    with lock_held_elsewhere(live):
        done = jobs_recover(now=later(60))

    live.refresh_from_db()
    assert (done["sent"], done["requeued"], done["failed"], live.status, live.requeues) == (0, 0, 0, "running", 0)
    assert isinstance(done["scoring"], dict)  # the scoring runs' recovery ran too


# --- A lost database connection ---------------------------------------------------------------------------


def blocked_by(holder: psycopg.Connection) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [holder.info.backend_pid]
        )
        return [row[0] for row in cursor.fetchall()]


def wait_for(what: str, check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_database_session_is_killed_mid_work_completes_on_a_new_connection(roofing, settings):
    settings.DB_RETRY_SECONDS = 30
    acme = owner(roofing, "80202")
    for score in (90, 80):
        scored_home(roofing, score=score, zip_code="80202")
    run = JobRun.objects.create(job="lead_generation", trade=roofing, queued_at=timezone.now())
    result: dict = {}

    def worker():
        try:
            result["run"] = job_run_execute(run_id=run.pk)
        finally:
            connection.close()

    with psycopg.connect(database_url(), autocommit=False) as holder:
        holder.execute(f"LOCK TABLE {Lead._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")  # generation waits here
        thread = threading.Thread(target=worker)
        thread.start()
        [pid] = wait_for("the job to wait for the test's lock", lambda: blocked_by(holder))
        holder.execute("SELECT pg_terminate_backend(%s)", [pid])  # the job loses its connection and its lock
        holder.rollback()
    thread.join(60)

    done = result["run"]
    assert (done.status, done.error) == ("succeeded", "")
    assert done.counts == {"leads_generated": 2, "leads_routed": 2, "leads_in_pool": 0}
    assert set(Lead.objects.values_list("state", "contractor_id")) == {("assigned", acme.pk)}
    assert Lead.objects.count() == 2
    assert not jobs._lock_held(done)  # released on the new connection


@pytest.mark.django_db(transaction=True)
def test_run_pipeline_rides_out_a_lost_connection_between_steps(roofing):
    owner(roofing, "80202")
    scored_home(roofing, score=90, zip_code="80202")
    with connection.cursor() as cursor:  # the pipeline's first statement meets a dead session
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(database_url(), autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])

    summary = daily_run(trades=None)

    assert [run.status for run in summary.scoring] == ["succeeded"]
    assert (summary.leads.routing.assigned, Lead.objects.filter(state="assigned").count()) == (1, 1)


# --- Scheduled runs ----------------------------------------------------------------------------------------


def test_a_scheduled_task_delivered_twice_records_and_runs_once(roofing):
    scored_home(roofing, score=90, zip_code="80203")
    kwargs = {"job": "lead_generation", "trade": "roofing"}

    first = job_scheduled.apply(kwargs=kwargs, task_id="beat-task-1").get()
    again = job_scheduled.apply(kwargs=kwargs, task_id="beat-task-1").get()  # the visibility timeout's copy

    run = JobRun.objects.get()
    assert (first, again, run.status, run.task_id) == ("succeeded", "succeeded", "succeeded", "beat-task-1")
    assert Lead.objects.count() == 1


def beat(app: Celery) -> JobScheduler:
    return JobScheduler(app=app, lazy=True)


def entry_of(name: str, app: Celery) -> ModelEntry:
    return ModelEntry(PeriodicTask.objects.get(name=name), app=app)


@pytest.fixture
def closed_broker_app():
    app = Celery("leadengine-broker-down", broker=CLOSED_PORT, set_as_current=False)
    app.conf.broker_connection_timeout = 1
    app.conf.task_publish_retry_policy = {"max_retries": 0}
    yield app
    app.close()


@pytest.mark.django_db(transaction=True)
def test_scheduled_runs_beat_cannot_send_are_recorded_missed_and_caught_up_once(roofing, idle_queue, closed_broker_app):
    schedules_seed()
    down = beat(closed_broker_app)

    for _ in range(3):
        with pytest.raises(SchedulingError):
            down.apply_async(entry_of("Webhook delivery", closed_broker_app))
    with pytest.raises(SchedulingError):
        down.apply_async(entry_of("Nightly run", closed_broker_app))
    with pytest.raises(SchedulingError):
        down.apply_async(entry_of("Recovery sweep", closed_broker_app))  # not a job: logged only

    missed = list(JobRun.objects.order_by("pk"))
    assert [(run.job, run.trade_id, run.status, run.started_at) for run in missed] == [
        *[("webhook_delivery", None, "missed", None)] * 3,
        ("nightly_run", None, "missed", None),
    ]
    assert all(run.finished_at is not None for run in missed)
    assert missed[0].error.startswith("Beat could not send it to the broker (")
    assert missed[0].error.endswith("); one catch-up run follows once the broker is back.")

    # The broker is back: the next send catches each missed job up once.
    up = beat(celery_app)
    up.apply_async(entry_of("Lead expiry", celery_app))
    up.apply_async(entry_of("Lead expiry", celery_app))  # no second catch-up

    catch_ups = list(JobRun.objects.exclude(status="missed").order_by("job"))
    assert [(run.job, run.trade_id, run.status, run.requested_by) for run in catch_ups] == [
        ("nightly_run", None, "queued", None),
        ("webhook_delivery", None, "queued", None),
    ]
    tasks = [m["headers"]["task"] for m in idle_queue()]
    assert sorted(tasks) == ["leadengine.job_run", "leadengine.job_run", "leadengine.job_scheduled",
                             "leadengine.job_scheduled"]  # fmt: skip
    assert sorted(sent_run_ids(idle_queue())) == sorted(run.pk for run in catch_ups)
    assert jobs_missed_catch_up() == []


@pytest.mark.django_db(transaction=True)
def test_a_beat_started_while_the_broker_is_down_records_the_due_job_as_missed_without_waiting(closed_broker_app):
    schedules_seed()
    task = PeriodicTask.objects.get(name="Webhook delivery")
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now() - dt.timedelta(hours=1))
    PeriodicTask.objects.exclude(pk=task.pk).update(enabled=False)
    down = beat(closed_broker_app)

    started = time.monotonic()
    down.tick()
    took = time.monotonic() - started

    missed = JobRun.objects.get()
    assert (missed.job, missed.status) == ("webhook_delivery", "missed")
    assert missed.error.startswith("Beat could not send it to the broker (")
    assert took < 15, took  # one connection try and one failed send, not Celery's hundred tries


def test_a_missed_job_that_ran_since_needs_no_catch_up(roofing, idle_queue):
    now = timezone.now()
    JobRun.objects.create(job="daily_report", status="missed", queued_at=now, finished_at=now, error="down")
    JobRun.objects.create(
        job="daily_report", status="succeeded", queued_at=now + dt.timedelta(minutes=5),
        started_at=now + dt.timedelta(minutes=5), finished_at=now + dt.timedelta(minutes=6),
    )  # fmt: skip
    JobRun.objects.create(job="lead_expiry", status="missed", queued_at=now, finished_at=now, error="down")
    busy = job_run_request(job="lead_expiry")  # already queued: it is the catch-up

    assert jobs_missed_catch_up() == []
    assert JobRun.objects.filter(status="queued").get() == busy
