"""The nightly run, chained per trade: one schedule starts, per trade with an active scoring model, scoring on
the workers, then lead generation and routing; a failed step stops its trade's chain only and is reported;
the same schedule delivered twice starts one chain; the recovery sweep moves a chain on whose message was
lost. Through a real worker where it matters, in process where a step's outcome is set up exactly."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from leadengine.models import JobRun
from leadengine.services import chains
from leadengine.services.jobs import job_run_execute
from leadengine.services.recovery import jobs_recover
from leadengine.services.schedules import schedules_seed
from leadengine.tasks import job_scheduled
from leads.models import Lead
from scoring.models import Factor, Score, ScoringModel, ScoringPartition, ScoringRun, Trade
from scoring.services import runs
from scoring.services.scoring_models import scoring_model_activate
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leadengine.test_automation import (
    OWNED,
    PROPERTIES,
    backend_alive,
    blocked_by,
    last_run_id,
    market,
    run_by_name,
    runs_after,
    wait_for,
)
from tests.leads.factories import filters, home, owner
from tests.workers import database_url

# Solar's scoring job fails on a worker (another run of the trade is under way), which logs it with its traceback.
WORKER_MAY_LOG = "ScoringRunBusy"
NIGHTLY = "Nightly run"
CHAIN_DONE = {"scoring": "succeeded", "lead_generation": "succeeded", "chain": "completed"}


def model_for(trade: Trade) -> ScoringModel:
    """A new active version for `trade`: one roof-age factor, as the admin makes and activates one."""
    last = ScoringModel.objects.filter(trade=trade).order_by("-version").first()
    model = ScoringModel.objects.create(trade=trade, version=(last.version + 1) if last else 1)
    Factor.objects.create(
        model=model, position=0, feature="roof_age", transform="ramp", params={"low": 10, "high": 30}, weight=1,
        reason="Roof is {value:.0f} years old",
        reason_fallback="No roof replacement on record; home built in {year_built:.0f}",
    )  # fmt: skip
    return scoring_model_activate(model=model)


def busy(model: ScoringModel) -> ScoringRun:
    """A live scoring run of the model's trade (as `manage.py score` holds one): another cannot start."""
    return ScoringRun.objects.create(trade=model.trade, model=model, as_of=timezone.localdate())


def nightly_scheduled(task_id: str = "beat-1") -> JobRun:
    """What beat's "Nightly run" starts, here in process (the task's body), as task `task_id`."""
    job_scheduled.apply(kwargs={"job": "nightly_run"}, task_id=task_id).get()
    return JobRun.objects.get(job="nightly_run", task_id=task_id)


def step(nightly: JobRun, trade: Trade, job: str) -> JobRun:
    return JobRun.objects.get(chain=nightly, trade=trade, job=job)


def partitions_score(run: ScoringRun) -> None:
    """The run's partitions scored as the workers' tasks would (a lease of their own each)."""
    for partition in ScoringPartition.objects.filter(run=run).order_by("number"):
        assert runs.scoring_partition_attempt(partition_id=partition.pk, lease=f"task-{partition.pk}") is False


# --- Through a real worker -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_nightly_run_scores_on_the_workers_then_generates_and_a_failed_scoring_stops_only_its_trade(
    roofing,
    trades,  # noqa: F811
    workers,
):
    workers(SCORING_PARTITION_ROWS="100")
    acme = owner(roofing, *OWNED)
    market()
    solar = trades["solar"]
    filters(solar)
    under_way = busy(model_for(solar))
    assert NIGHTLY in schedules_seed()

    before = last_run_id()
    run_by_name(NIGHTLY)
    nightly, *_ = runs_after(before, timeout=90)

    assert (nightly.job, nightly.status, nightly.waiting) == ("nightly_run", "failed", False)
    assert nightly.counts == {
        "trades": {"roofing": CHAIN_DONE, "solar": {"scoring": "failed", "chain": "stopped"}},
        "chains_completed": 1, "chains_stopped": 1, "chains_running": 0,
    }  # fmt: skip
    failed = step(nightly, solar, "scoring")
    assert failed.status == "failed"
    assert failed.error.startswith(f"ScoringRunBusy: a scoring run of Solar is already running (run {under_way.pk})")
    assert nightly.error == (
        f"1 of 2 chains stopped:\nsolar: stopped at score every property (run {failed.pk}, failed): {failed.error}"
    )
    # Solar's chain stopped at scoring: no lead generation for it; roofing's went on to the end.
    assert not JobRun.objects.filter(job="lead_generation", trade=solar).exists()
    assert not Lead.objects.filter(trade=solar).exists()
    scoring = step(nightly, roofing, "scoring")
    run = ScoringRun.objects.get(trade=roofing)
    assert (scoring.status, scoring.counts) == (
        "succeeded", {"scoring_run": run.pk, "properties_scored": PROPERTIES, "scores_changed": PROPERTIES},
    )  # fmt: skip
    assert (run.status, run.distributed, run.partitions) == ("succeeded", True, 3)
    leases = ScoringPartition.objects.filter(run=run).values_list("lease", flat=True)
    assert len(leases) == 3
    assert not any(lease.startswith("process-") for lease in leases)
    generation = step(nightly, roofing, "lead_generation")
    assert (generation.status, generation.counts) == (
        "succeeded", {"leads_generated": PROPERTIES, "leads_routed": sum(OWNED.values()),
                      "leads_in_pool": PROPERTIES - sum(OWNED.values())},
    )  # fmt: skip
    assert generation.started_at >= scoring.finished_at
    assert Lead.objects.filter(trade=roofing, contractor=acme).count() == sum(OWNED.values())


@pytest.mark.django_db(transaction=True)
def test_staff_started_scoring_sends_the_partitions_to_the_workers(roofing, staff_api, workers):
    workers(SCORING_PARTITION_ROWS="2")
    homes = [home(zip_code="80202") for _ in range(5)]
    _user, client = staff_api

    queued = client.post("/api/v1/runs/", {"job": "scoring", "trade": "roofing"}, format="json").json()
    [done] = runs_after(queued["id"] - 1)

    run = ScoringRun.objects.get(trade=roofing)
    assert (done.status, done.scoring_run, done.counts) == (
        "succeeded", run, {"scoring_run": run.pk, "properties_scored": 5, "scores_changed": 5},
    )  # fmt: skip
    assert (run.status, run.distributed, run.partitions, run.properties_scored) == ("succeeded", True, 3, len(homes))
    partitions = ScoringPartition.objects.filter(run=run)
    assert sorted(p.status for p in partitions) == ["succeeded"] * 3
    assert not any(p.lease.startswith("process-") for p in partitions)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_chain_leaves_it_to_the_sweep_which_sees_it_through(roofing, workers):
    market()
    schedules_seed()
    first = workers()
    with psycopg.connect(database_url()) as holder:  # roofing's partition waits to write its scores
        holder.execute(f"LOCK TABLE {Score._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        before = last_run_id()
        run_by_name(NIGHTLY)
        blocked = wait_for("the scores' write to wait for the test's lock", lambda: blocked_by(holder))
        first.kill()
        holder.rollback()
    for pid, _ in blocked:
        wait_for("the killed worker's database sessions to end", lambda pid=pid: not backend_alive(pid), timeout=30)
    nightly = JobRun.objects.get(job="nightly_run")
    assert (nightly.status, nightly.waiting) == ("running", True)

    # A new worker; the sweep (beat's, every minute) finds the partition's lease silent and sends it again.
    workers(SCORING_RUN_STALE_SECONDS="1")
    with override_settings(SCORING_RUN_STALE_SECONDS=1):
        stale = timezone.now() + dt.timedelta(seconds=1.5)
        wait_for("the killed partition to be stale", lambda: timezone.now() > stale, timeout=30)
        jobs_recover()
    nightly, *_ = runs_after(before, timeout=90)

    assert (nightly.status, nightly.counts["trades"]) == ("succeeded", {"roofing": CHAIN_DONE})
    assert [run.status for run in ScoringRun.objects.filter(trade=roofing)] == ["succeeded"]
    assert Lead.objects.filter(trade=roofing).count() == PROPERTIES
    assert list(JobRun.objects.filter(chain=nightly).order_by("pk").values_list("job", "status")) == [
        ("scoring", "succeeded"),
        ("lead_generation", "succeeded"),
    ]


# --- In process: each step's outcome set up exactly --------------------------------------------------------


def test_a_failed_scoring_run_fails_its_step_emails_ops_and_stops_only_its_chain(
    roofing,
    trades,  # noqa: F811
    settings,
    admin_client,
):
    settings.OPS_EMAILS = ["ops@example.com"]
    solar = trades["solar"]
    filters(solar)
    model_for(solar)
    home(zip_code="80202")
    nightly = nightly_scheduled()
    assert (nightly.status, nightly.waiting) == ("running", True)
    assert nightly.counts["trades"] == {
        "roofing": {"scoring": "queued", "chain": "running"},
        "solar": {"scoring": "queued", "chain": "running"},
    }

    # Each scoring step sends its run's partitions out and waits, holding no worker.
    for trade in (roofing, solar):
        waiting = job_run_execute(run_id=step(nightly, trade, "scoring").pk)
        assert (waiting.status, waiting.waiting, waiting.finished_at) == ("running", True, None)
        assert waiting.counts == {"scoring_run": waiting.scoring_run_id}
        assert waiting.scoring_run.distributed
    roofing_run = ScoringRun.objects.get(trade=roofing)
    solar_run = ScoringRun.objects.get(trade=solar)
    listing = admin_client.get("/admin/leadengine/jobrun/").content.decode()
    assert listing.count("Running (waiting for its scoring run)") == 2
    assert listing.count("Running (waiting for its chains)") == 1
    # A waiting step is left alone by a second copy of its task and by the sweep's takeovers.
    assert job_run_execute(run_id=step(nightly, roofing, "scoring").pk).status == "running"
    assert (jobs_recover()["requeued"], jobs_recover()["failed"]) == (0, 0)

    # Roofing's partitions are scored; solar's partition fails on the worker.
    partitions_score(roofing_run)
    ScoringPartition.objects.filter(run=solar_run).update(status="failed", error="RuntimeError: disk full")
    runs.scoring_run_close_if_complete(run_id=solar_run.pk)
    # The runs' close sends SCORING_RUN_ENDED_TASK once it commits; its body:
    assert chains.scoring_run_ended(scoring_run_id=solar_run.pk) == 1
    assert chains.scoring_run_ended(scoring_run_id=roofing_run.pk) == 1
    assert chains.scoring_run_ended(scoring_run_id=roofing_run.pk) == 0  # delivered twice: closed once

    failed = step(nightly, solar, "scoring")
    solar_run.refresh_from_db()
    assert (failed.status, failed.waiting, failed.error) == (
        "failed", False, f"Scoring run {solar_run.pk} failed: {solar_run.error}",
    )  # fmt: skip
    first_id, last_id = ScoringPartition.objects.filter(run=solar_run).values_list("first_id", "last_id").get()
    assert solar_run.error == f"partition 1 (properties {first_id}-{last_id}): RuntimeError: disk full"
    [email] = mail.outbox
    assert (email.to, email.subject) == (
        ["ops@example.com"],
        f"LeadEngine: score every property failed (run {failed.pk})",
    )
    assert f"Scoring run {solar_run.pk} failed" in email.body
    # Solar's chain stopped; roofing's next step is queued.
    assert not JobRun.objects.filter(job="lead_generation", trade=solar).exists()
    generation = step(nightly, roofing, "lead_generation")
    assert generation.status == "queued"
    nightly.refresh_from_db()
    assert (nightly.status, nightly.counts["chains_running"], nightly.counts["chains_stopped"]) == ("running", 1, 1)

    assert job_run_execute(run_id=generation.pk).status == "succeeded"
    nightly.refresh_from_db()
    assert (nightly.status, nightly.waiting) == ("failed", False)
    assert nightly.counts == {
        "trades": {"roofing": CHAIN_DONE, "solar": {"scoring": "failed", "chain": "stopped"}},
        "chains_completed": 1, "chains_stopped": 1, "chains_running": 0,
    }  # fmt: skip
    assert len(mail.outbox) == 1  # the step's failure was emailed; the nightly run's end is not again


def test_a_trade_given_an_active_model_after_seeding_is_in_the_next_nightly_run(roofing, trades):  # noqa: F811
    assert NIGHTLY in schedules_seed()
    hvac = trades["hvac"]
    model_for(hvac)  # activated in the admin (the service its action calls), after seeding

    assert schedules_seed() == []  # nothing per trade to create: no shell needed
    nightly = nightly_scheduled()

    assert sorted(JobRun.objects.filter(chain=nightly).values_list("trade__slug", "job", "status")) == [
        ("hvac", "scoring", "queued"),
        ("roofing", "scoring", "queued"),
    ]


def test_the_same_schedule_delivered_twice_starts_one_chain(roofing, trades):  # noqa: F811
    first = nightly_scheduled(task_id="beat-1")
    again = nightly_scheduled(task_id="beat-1")  # redelivered: finds its run
    other = nightly_scheduled(task_id="beat-2")  # sent twice by beat (or staff's "run now"): skipped

    assert again.pk == first.pk
    assert (other.status, other.error) == ("skipped", f"Run {first.pk} of the job was still under way.")
    assert list(JobRun.objects.filter(job="scoring").values_list("chain", "trade")) == [(first.pk, roofing.pk)]


def test_the_sweep_starts_a_step_whose_predecessor_succeeded_and_closes_a_step_whose_run_ended(roofing, idle_queue):
    home(zip_code="80202")
    nightly = nightly_scheduled()
    scoring = job_run_execute(run_id=step(nightly, roofing, "scoring").pk)
    partitions_score(scoring.scoring_run)  # the run closed, and its message was lost (never sent here)
    assert JobRun.objects.get(pk=scoring.pk).status == "running"

    done = jobs_recover()

    assert done["chains"] == {"steps_closed": 1, "nightly_runs_ended": 0}
    assert step(nightly, roofing, "scoring").status == "succeeded"
    generation = step(nightly, roofing, "lead_generation")
    assert generation.status == "queued"

    # The step was recorded but its predecessor's follow-up died before it: recorded again, never twice.
    generation.delete()
    assert jobs_recover()["chains"] == {"steps_closed": 0, "nightly_runs_ended": 0}
    generation = step(nightly, roofing, "lead_generation")
    assert jobs_recover()["chains"] == {"steps_closed": 0, "nightly_runs_ended": 0}
    assert JobRun.objects.filter(chain=nightly, job="lead_generation").count() == 1

    # Its message was lost too: sent again by the sweep's usual rule, then it runs and the nightly run ends.
    assert job_run_execute(run_id=generation.pk).status == "succeeded"
    nightly.refresh_from_db()
    assert (nightly.status, nightly.counts["trades"]) == ("succeeded", {"roofing": CHAIN_DONE})


def test_a_nightly_run_with_no_trade_to_score_ends_at_once(trades):  # noqa: F811
    ScoringModel.objects.filter(status="active").update(status="retired")

    nightly = nightly_scheduled()

    assert (nightly.status, nightly.waiting, nightly.error) == ("succeeded", False, "")
    assert nightly.counts == {"trades": {}, "chains_completed": 0, "chains_stopped": 0, "chains_running": 0}
    assert nightly.finished_at <= timezone.now()
