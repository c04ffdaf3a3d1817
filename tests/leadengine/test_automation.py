"""The automation end to end: the default schedules, triggered by name as beat (or staff in the admin) would,
executed by a real Celery worker process on the real Redis broker and the test database; webhooks
received by a local HTTP server; and a worker killed in the middle of a job."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Callable

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

import leadengine.tasks  # noqa: F401  (registers the tasks the schedules name)
from contractors.models import Contractor
from leadengine.celery import app as celery_app
from leadengine.models import JobRun
from leadengine.services import jobs
from leadengine.services.recovery import jobs_recover
from leadengine.services.schedules import schedules_seed
from leads.models import Lead, LeadEvent, WebhookAttempt
from leads.services.webhooks import idempotency_key
from scoring.models import Property, Score, ScoringPartition, ScoringRun
from scoring.services import runs as scoring_runs
from territories.models import Territory, WaitlistEntry
from territories.services.ownership import territory_release
from territories.services.waitlist import waitlist_join
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import owner
from tests.receiver import RECEIVER_ENV, receiver_fixture, signature_valid  # noqa: F401  (fixture)
from tests.workers import database_url

# Properties per ZIP: the contractor owns the first two; the others' leads wait in the pool.
OWNED = {"80202": 30, "80203": 30}
UNOWNED = {"80204": 60, "80205": 60, "80206": 60}
PROPERTIES = sum(OWNED.values()) + sum(UNOWNED.values())
ASSIGNED = sum(OWNED.values())
NIGHTLY = "Nightly run"
# Schedules staff may still make per trade (the defaults have none): a job of one trade, by name.
SCORING, GENERATION = "Scoring: roofing", "Lead generation: roofing"
WEBHOOKS, LEAD_EXPIRY, OFFER_EXPIRY = "Webhook delivery", "Lead expiry", "Waitlist offer expiry"


def market() -> list[Property]:
    """PROPERTIES homes in the ZIPs of OWNED and UNOWNED, roofs 5 to 44 years old (scores 0 to 100)."""
    homes = [
        Property(
            parcel_id=f"AUTO-{code}-{n:03d}", address=f"{n} Automation Ave", city="Denver", state="CO",
            zip_code_id=code, owner_occupied=True, year_built=timezone.localdate().year - 5 - n % 40,
        )
        for code, count in (OWNED | UNOWNED).items()
        for n in range(count)
    ]  # fmt: skip
    return Property.objects.bulk_create(homes)


def trade_schedule(name: str, job: str, trade: str) -> None:
    """A schedule staff made in the admin for one trade's job (the defaults hold none per trade)."""
    crontab, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="4", timezone="UTC")
    PeriodicTask.objects.create(
        name=name, task="leadengine.job_scheduled", crontab=crontab, kwargs=json.dumps({"job": job, "trade": trade})
    )


def run_by_name(name: str) -> None:
    """Start the schedule called `name` now, as django-celery-beat's admin action "Run selected tasks"
    (PeriodicTaskAdmin.run_tasks) does: its task, with its arguments, on its queue (else the default)."""
    schedule = PeriodicTask.objects.get(name=name)
    options = {"queue": schedule.queue} if schedule.queue else {}
    celery_app.tasks[schedule.task].apply_async(
        args=json.loads(schedule.args),
        kwargs=json.loads(schedule.kwargs),
        headers={"periodic_task_name": schedule.name},
        **options,
    )


def last_run_id() -> int:
    return JobRun.objects.aggregate(last=Max("pk"))["last"] or 0


def wait_for(what: str, check: Callable, *, timeout: float = 60):
    """Poll `check` until it returns something true (returned); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def runs_after(after: int, *, ended: bool = True, timeout: float = 60) -> list[JobRun]:
    """The runs recorded after run `after`, once there are some and all have ended (or started: `ended`
    false)."""

    def check():
        new = list(JobRun.objects.filter(pk__gt=after).select_related("trade").order_by("pk"))
        wanted = (lambda run: run.status not in JobRun.ACTIVE) if ended else (lambda run: run.status != "queued")
        return new if new and all(wanted(run) for run in new) else None

    try:
        return wait_for(f"the runs after {after} to {'end' if ended else 'start'}", check, timeout=timeout)
    except AssertionError as late:
        seen = JobRun.objects.filter(pk__gt=after).values_list("pk", "job", "status", "error")
        raise AssertionError(f"{late}; runs: {list(seen)}") from None


def triggered(name: str) -> JobRun:
    """Run the schedule `name` on the worker and return its run, once it and any run it asked for ended."""
    after = last_run_id()
    run_by_name(name)
    run = runs_after(after)[0]
    assert run.job == json.loads(PeriodicTask.objects.get(name=name).kwargs)["job"]
    return run


# --- The schedules on a real worker ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_scheduled_jobs_run_by_name_on_a_real_worker_score_generate_route_and_deliver_signed_webhooks(
    roofing, staff_api, receiver, workers
):
    _user, client = staff_api
    # The receiver is on 127.0.0.1; partitions of 100 properties, so the run's three go to the pool processes.
    workers(**RECEIVER_ENV, WEBHOOK_BACKOFF_SECONDS="1", WEBHOOK_TIMEOUT_SECONDS="5", SCORING_PARTITION_ROWS="100")
    acme = owner(roofing, *OWNED, webhook_url=receiver.url)
    receiver.each_key = [500, 500]  # every lead's first two posts fail, the third is taken
    homes = market()

    assert {NIGHTLY, WEBHOOKS, LEAD_EXPIRY, OFFER_EXPIRY} <= set(schedules_seed())

    # The nightly run: roofing's chain, scoring on the workers, then lead generation and routing.
    nightly = triggered(NIGHTLY)
    assert (nightly.job, nightly.trade, nightly.status, nightly.error, nightly.waiting) == (
        "nightly_run", None, "succeeded", "", False,
    )  # fmt: skip
    assert nightly.counts == {
        "trades": {"roofing": {"scoring": "succeeded", "lead_generation": "succeeded", "chain": "completed"}},
        "chains_completed": 1, "chains_stopped": 0, "chains_running": 0,
    }  # fmt: skip
    scoring, generation = nightly.steps.order_by("pk")
    scoring_run = ScoringRun.objects.get(trade=roofing)
    assert (scoring.job, scoring.trade, scoring.status, scoring.error) == ("scoring", roofing, "succeeded", "")
    assert (scoring.scoring_run, scoring.waiting) == (scoring_run, False)
    assert scoring.counts == {
        "scoring_run": scoring_run.pk,
        "properties_scored": PROPERTIES,
        "scores_changed": PROPERTIES,
    }
    assert (scoring_run.status, scoring_run.distributed, scoring_run.partitions) == (ScoringRun.Status.SUCCEEDED,
                                                                                     True, 3)  # fmt: skip
    # Every partition scored by a worker's task (its lease is the task's id), none by the job's own process.
    partitions = ScoringPartition.objects.filter(run=scoring_run)
    assert [p.status for p in partitions] == ["succeeded"] * 3
    assert not any(p.lease.startswith("process-") for p in partitions)
    assert set(Score.objects.filter(trade=roofing).values_list("property_id", flat=True)) == {h.pk for h in homes}
    assert generation.started_at >= scoring.finished_at  # chained: generation started once scoring ended

    # Lead generation: one lead per property (the filters take every score), the owned ZIPs' routed to acme.
    assert (generation.job, generation.trade, generation.status, generation.error) == (
        "lead_generation", roofing, "succeeded", "",
    )  # fmt: skip
    # Leads routed to a webhook: the generation asked for a delivery run at once (the first delivery).
    follow_up = generation.counts.pop("webhook_run")
    assert generation.counts == {
        "leads_generated": PROPERTIES, "leads_routed": ASSIGNED, "leads_in_pool": PROPERTIES - ASSIGNED,
    }  # fmt: skip
    by_place = Lead.objects.filter(trade=roofing).values_list("zip_code", "state", "contractor_id")
    assert sorted(set(by_place)) == sorted(
        [(code, "assigned", acme.pk) for code in OWNED] + [(code, "generated", None) for code in UNOWNED]
    )
    assert Lead.objects.count() == Lead.objects.values("property_id").distinct().count() == PROPERTIES
    assigned = {lead.pk: lead for lead in Lead.objects.filter(state="assigned")}
    assert len(assigned) == ASSIGNED
    # The API detail of each (staff reading delivers nothing), what its webhook must carry.
    details = {pk: client.get(f"/api/v1/leads/{pk}/").json() for pk in assigned}
    assert {detail["state"] for detail in details.values()} == {"assigned"}

    # Webhook delivery, run again once the backoff (1 s, then 2 s, plus jitter) has passed, until the 200s.
    for _ in range(5):
        if not Lead.objects.filter(state="assigned").exists():
            break
        due = WebhookAttempt.objects.filter(outcome="retry").aggregate(last=Max("next_at"))["last"]
        if due is not None:
            wait_for("the retries to be due", lambda due=due: timezone.now() > due, timeout=30)
        triggered(WEBHOOKS)
    deliveries = list(JobRun.objects.filter(job="webhook_delivery").order_by("pk"))
    assert follow_up == deliveries[0].pk
    no_notices = {"notices_delivered": 0, "notices_retried": 0, "notices_gave_up": 0, "notices_refused": 0}
    failed = {"delivered": 0, "retried": ASSIGNED, "gave_up": 0, "refused": 0} | no_notices
    assert [(run.trade, run.status, run.counts) for run in deliveries] == [
        (None, "succeeded", failed),
        (None, "succeeded", failed),
        (None, "succeeded", {"delivered": ASSIGNED, "retried": 0, "gave_up": 0, "refused": 0} | no_notices),
    ]
    posts = defaultdict(list)
    for headers, body in receiver.requests:
        posts[json.loads(body)["id"]].append((headers, body))
    assert set(posts) == set(assigned)
    other_secret = Contractor(name="Nobody").webhook_secret
    for pk, lead in assigned.items():
        assert len(posts[pk]) == 3
        for headers, body in posts[pk]:
            assert signature_valid(acme.webhook_secret, headers, body)
            assert not signature_valid(other_secret, headers, body)
            assert (headers["Content-Type"], headers["X-LeadEngine-Event"]) == ("application/json", "lead.assigned")
            assert json.loads(body) == {"event": "lead.assigned", **details[pk]}
        assert {headers["Idempotency-Key"] for headers, _ in posts[pk]} == {
            idempotency_key(lead_id=pk, assigned_at=lead.assigned_at)
        }
        assert list(
            WebhookAttempt.objects.filter(lead_id=pk).order_by("number").values_list("number", "status_code", "outcome")
        ) == [(1, 500, "retry"), (2, 500, "retry"), (3, 200, "delivered")]
    delivered = Lead.objects.filter(pk__in=assigned)
    assert set(delivered.values_list("state", "contractor_id")) == {("delivered", acme.pk)}
    assert not delivered.filter(delivered_at__isnull=True).exists()
    events = LeadEvent.objects.filter(lead_id__in=assigned, action="deliver")
    assert sorted(events.values_list("lead_id", flat=True)) == sorted(assigned)
    assert set(events.values_list("reason", "actor", "from_state", "to_state")) == {
        ("webhook", "system", "assigned", "delivered")
    }
    assert not Lead.objects.webhook_failed().exists()

    # Lead expiry: three pool leads past their pool time and a delivered one past its acceptance SLA.
    past = timezone.now() - dt.timedelta(minutes=1)
    pool_ids = list(Lead.objects.filter(state="generated").order_by("pk").values_list("pk", flat=True)[:3])
    Lead.objects.filter(pk__in=[*pool_ids, min(assigned)]).update(expires_at=past)
    expiry = triggered(LEAD_EXPIRY)
    assert (expiry.job, expiry.status, expiry.counts) == (
        "lead_expiry", "succeeded", {"unassigned_expired": 3, "unaccepted_expired": 1},
    )  # fmt: skip
    assert sorted(Lead.objects.filter(state="expired").values_list("pk", flat=True)) == sorted(
        [*pool_ids, min(assigned)]
    )

    # Waitlist offer expiry: cobalt waits for bolt's 80210, bolt lets it go, cobalt's offer runs out.
    bolt, cobalt = owner(roofing, "80210"), owner(roofing)
    entry = waitlist_join(contractor=cobalt, trade=roofing, zip_code="80210")
    territory_release(territory=Territory.objects.get(contractor=bolt, zip_code_id="80210"))
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.OFFERED
    WaitlistEntry.objects.filter(pk=entry.pk).update(offered_at=past - dt.timedelta(days=2), offer_expires_at=past)
    offers = triggered(OFFER_EXPIRY)
    assert (offers.job, offers.status, offers.counts) == (
        "offer_expiry", "succeeded", {"offers_expired": 1, "territories_given": 0, "leads_routed": 0},
    )  # fmt: skip
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.EXPIRED

    # Every run a schedule started, in order: recorded, by nobody, succeeded.
    assert list(JobRun.objects.order_by("pk").values_list("job", "status", "requested_by")) == [
        ("nightly_run", "succeeded", None),
        ("scoring", "succeeded", None),
        ("lead_generation", "succeeded", None),
        *[("webhook_delivery", "succeeded", None)] * 3,
        ("lead_expiry", "succeeded", None),
        ("offer_expiry", "succeeded", None),
    ]


# --- A worker killed in the middle of a job -----------------------------------------------------------------


def blocked_by(holder: psycopg.Connection) -> list[tuple[int, str]]:
    """The backends (pid, query) waiting for a lock `holder` holds. Asked on another connection: within the
    holder's transaction, pg_stat_activity would answer the snapshot of its first read."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [holder.info.backend_pid]
        )
        return cursor.fetchall()


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def duplicate_insert(lead: Lead) -> None:
    """Insert a copy of `lead` (a second open lead of its property and trade) straight into its table."""
    table, columns = Lead._meta.db_table, ", ".join(f.column for f in Lead._meta.concrete_fields if not f.primary_key)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} WHERE id = %s", [lead.pk])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stopped_in", ["generation", "routing"])
def test_a_worker_killed_mid_job_leaves_an_abandoned_run_and_the_next_run_completes_the_work_once(
    roofing, workers, stopped_in
):
    acme = owner(roofing, *OWNED)
    homes = market()
    scoring_runs.trade_score(trade=roofing)
    schedules_seed()
    trade_schedule(GENERATION, "lead_generation", "roofing")
    first = workers()

    # The test's own connection holds a lock the job needs, so the worker stops at a known point:
    # generation's INSERT of the leads (it needs ROW EXCLUSIVE on the table), or routing's lock of the
    # owner's row (generation has committed its leads by then; none is assigned yet).
    # Fresh planner statistics first: the earlier tests' writes must not make the job ANALYZE the lead table
    # (core.statistics), which would wait for the test's lock before the INSERT does.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Lead._meta.db_table}, {Score._meta.db_table}")
    with psycopg.connect(database_url()) as holder:
        if stopped_in == "generation":
            holder.execute(f"LOCK TABLE {Lead._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        else:
            holder.execute(f"SELECT 1 FROM {Contractor._meta.db_table} WHERE id = %s FOR UPDATE", [acme.pk])
        before = last_run_id()
        run_by_name(GENERATION)
        [(pid, query)] = wait_for("the job to wait for the test's lock", lambda: blocked_by(holder))
        assert ("INSERT INTO" if stopped_in == "generation" else "FOR UPDATE") in query
        [killed] = runs_after(before, ended=False)
        assert (killed.job, killed.status) == ("lead_generation", "running")
        first.kill()
        holder.rollback()
    # Its task was taken, not acknowledged (acks_late): not lost, held for redelivery after the timeout.
    assert [message["headers"]["task"] for message in first.unacknowledged().values()] == ["leadengine.job_scheduled"]
    # The dead worker's session: the server ends it (rolling back its transaction and freeing the run's
    # advisory lock) when it next talks to its client and finds the socket closed, here as soon as it
    # has its lock. A killed worker in a deployment leaves it the same way; nothing is terminated here.
    wait_for("the killed worker's database session to end", lambda: not backend_alive(pid), timeout=30)

    killed.refresh_from_db()
    assert (killed.status, killed.finished_at) == ("running", None)  # until the next run of the job looks
    left = Lead.objects.filter(trade=roofing)
    if stopped_in == "generation":
        assert not left.exists()  # the INSERT rolled back with the session
    else:
        assert (left.count(), set(left.values_list("state", flat=True))) == (PROPERTIES, {"generated"})

    # The schedule again, on a fresh worker: the abandoned run is closed failed, the new one does the rest.
    workers()
    rerun = triggered(GENERATION)
    killed.refresh_from_db()
    assert (killed.status, killed.error) == ("failed", "Abandoned: the worker running it stopped.")
    assert killed.finished_at is not None
    assert (rerun.status, rerun.error) == ("succeeded", "")
    assert rerun.counts == {
        "leads_generated": PROPERTIES if stopped_in == "generation" else 0,
        "leads_routed": ASSIGNED,
        "leads_in_pool": PROPERTIES - ASSIGNED,
    }

    # Exactly one lead per property and trade, routed as a single clean run would have.
    assert Lead.objects.count() == PROPERTIES
    assert not Lead.objects.values("property_id", "trade_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert set(Lead.objects.values_list("property_id", flat=True)) == {h.pk for h in homes}
    assert Lead.objects.filter(state="assigned", contractor=acme).count() == ASSIGNED
    assert Lead.objects.filter(state="generated", zip_code__in=list(UNOWNED)).count() == PROPERTIES - ASSIGNED
    assert set(LeadEvent.objects.values_list("action").annotate(n=Count("id"))) == {
        ("generate", PROPERTIES),
        ("assign", ASSIGNED),
    }
    # And a second open lead of a property cannot exist, whoever writes it.
    with pytest.raises(IntegrityError, match="leads_lead_one_open_per_property"), transaction.atomic():
        duplicate_insert(Lead.objects.first())
    # Nothing holds the job's lock any more; the last run's record is the truth.
    assert jobs._lock_try(rerun)
    jobs._lock_release(rerun)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_scoring_leaves_a_partition_the_sweep_sends_again_and_the_waiting_job_ends_with_its_run(
    roofing, workers
):
    homes = market()
    schedules_seed()
    trade_schedule(SCORING, "scoring", "roofing")
    first = workers()
    with psycopg.connect(database_url()) as holder:  # the partition's write of the scores waits for it
        holder.execute(f"LOCK TABLE {Score._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        before = last_run_id()
        run_by_name(SCORING)
        blocked = wait_for("the scores' write to wait for the test's lock", lambda: blocked_by(holder))
        assert all(f"COPY {Score._meta.db_table}" in query for _, query in blocked)
        [waiting] = runs_after(before, ended=False)
        # The job sent the partitions to the workers and let its pool process go: it waits for its run.
        assert (waiting.job, waiting.status, waiting.waiting) == ("scoring", "running", True)
        first.kill()
        holder.rollback()
    for pid, _ in blocked:
        wait_for("the killed worker's database sessions to end", lambda pid=pid: not backend_alive(pid), timeout=30)
    [left] = ScoringRun.objects.all()
    assert (left.status, left.distributed, Score.objects.count()) == (ScoringRun.Status.RUNNING, True, 0)
    assert waiting.scoring_run_id == left.pk

    # A waiting job has no worker by design: the sweep neither requeues nor fails it, and a second scoring of
    # the trade meanwhile is skipped.
    assert jobs.job_run_scheduled(job="scoring", trade=roofing).status == "skipped"

    # The partition's lease has its own heartbeat: it is taken as lost after SCORING_RUN_STALE_SECONDS
    # without one (60 s by default; one second here), and the sweep sends it to the (new) worker again. Its
    # close ends the waiting job, by the task the run's close sends or by the next sweep.
    workers(SCORING_RUN_STALE_SECONDS="1")
    with override_settings(SCORING_RUN_STALE_SECONDS=1):
        stale = timezone.now() + dt.timedelta(seconds=1.5)
        wait_for("the killed partition to be stale", lambda: timezone.now() > stale, timeout=30)
        done = jobs_recover()
    assert (done["requeued"], done["failed"], done["scoring"]["partitions_resent"]) == (0, 0, 1)

    def ended():
        waiting.refresh_from_db()
        return waiting.status not in JobRun.ACTIVE

    wait_for("the waiting job to end with its scoring run", ended)
    left.refresh_from_db()
    assert (waiting.status, waiting.error, waiting.waiting, waiting.requeues) == ("succeeded", "", False, 0)
    assert waiting.counts == {"scoring_run": left.pk, "properties_scored": PROPERTIES, "scores_changed": PROPERTIES}
    assert left.status == ScoringRun.Status.SUCCEEDED
    assert ScoringPartition.objects.get(run=left).attempts == 2
    assert Score.objects.count() == PROPERTIES
    assert set(Score.objects.values_list("property_id", flat=True)) == {h.pk for h in homes}
