"""The nightly run: chained, not clocked. One schedule ("Nightly run", 02:00) starts a run of the job
nightly_run, which starts one chain per trade with an active scoring model (read when it fires, so a trade
whose model was activated yesterday is in it):

    scoring of the trade  ->  lead generation and routing of the trade (flows.leads_make, which asks for a
                              webhook delivery run at once when leads went to webhooks)

Each step is a JobRun of its own (job scoring, then lead_generation; `chain` names the nightly run), so
staff see it in the admin and on the dashboard, and the recovery sweep and the overdue check treat it as
any run. A step starts when the one before it SUCCEEDED. A step that fails (or is skipped, because a run of
its job for the trade was already under way) stops its trade's chain: the later steps are not run, the
failure is recorded on the step's run and emailed to ops (job_failure_notify), and another trade's chain
goes on. The nightly run's counts say, per trade, how each step ended and whether its chain completed or
stopped; once every chain has ended it ends too: succeeded when all completed, else failed, with the
stopped chains in its error (not emailed again: each failed step was).

Waiting, not blocking. The scoring step sends its partitions to the workers (runs.scoring_run_dispatch,
as `score --distributed` does) and its run then waits (JobRun.waiting) without holding a worker; so does
the nightly run while its chains go on. A worker has two pool processes: a step that sat in one polling
its scoring run would leave one process for the partitions, and two chains at once (two trades) would
take both and wait for ever for partitions nobody scores. Instead the scoring run's close moves the chain
on: the last partition to end closes the run and, once that commits, sends the task
SCORING_RUN_ENDED_TASK by name (scoring cannot import leadengine), whose body is scoring_run_ended here:
it closes the waiting step from its scoring run and starts the next step. A message that is lost (the
broker was away, a worker died) is made up for by the recovery sweep (chains_recover, every minute), which
closes the waiting steps whose scoring run has ended and moves every waiting nightly run on, starting a
step whose predecessor succeeded but that was never recorded. Every move takes the nightly run's row lock
and looks at what is recorded, so doing it twice (the task and the sweep) starts each step once.

The same schedule delivered twice starts one chain: a redelivered task finds its run (task id), and a
second nightly run while one is under way (waiting) is refused like any second run of a job (skipped).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from leadengine.models import JobRun
from leadengine.services.jobs import JobBusy, JobError, _dashboard_refresh, job_failure_notify, job_run_request
from scoring.models import ScoringRun, Trade
from scoring.selectors import trades_with_active_model

Job, Status = JobRun.Job, JobRun.Status
log = logging.getLogger(__name__)

# The steps of a trade's chain, in order.
STEPS: tuple[str, ...] = (Job.SCORING.value, Job.LEAD_GENERATION.value)
COMPLETED, STOPPED, RUNNING = "completed", "stopped", "running"


def _step_record(*, nightly: JobRun, job: str, trade: Trade) -> JobRun:
    """The next step of the trade's chain, queued (sent once this commits); a skipped step when a run of its
    job for the trade is already under way (it stops the chain: that run was not asked for by this one)."""
    try:
        return job_run_request(job=job, trade=trade, chain=nightly)
    except JobError as refused:
        reason = (
            f"Run {refused.run.pk} of the job was still under way; the nightly chain of {trade.slug} stops here."
            if isinstance(refused, JobBusy)
            else str(refused)
        )
        now = timezone.now()
        return JobRun.objects.create(
            job=job, trade=trade, chain=nightly, status=Status.SKIPPED, queued_at=now, started_at=now,
            finished_at=now, error=reason,
        )  # fmt: skip


def nightly_chains_start(*, nightly: JobRun) -> dict[str, Any]:
    """The first step (scoring) of the chain of every trade with an active scoring model that has none yet in
    this nightly run (a run taken up again starts no second chain); returns the chains' state (counts)."""
    for trade in trades_with_active_model():
        with transaction.atomic():
            JobRun.objects.select_for_update().filter(pk=nightly.pk).first()  # one start of a chain at a time
            if not JobRun.objects.filter(chain=nightly, trade=trade).exists():
                _step_record(nightly=nightly, job=STEPS[0], trade=trade)
    return _chains_state(nightly)[0]


def _chains_state(nightly: JobRun) -> tuple[dict[str, Any], list[str]]:
    """The nightly run's counts (per trade: each step's status and the chain's, and the totals) and a line per
    stopped chain."""
    latest: dict[str, dict[str, JobRun]] = {}
    for step in nightly.steps.select_related("trade").order_by("pk"):
        latest.setdefault(step.trade.slug, {})[step.job] = step  # type: ignore[union-attr]  # steps have a trade
    trades: dict[str, dict[str, str]] = {}
    stopped_lines = []
    for slug, steps in sorted(latest.items()):
        state = {job: steps[job].status for job in STEPS if job in steps}
        last = steps[max((job for job in steps), key=STEPS.index)]
        if last.status in JobRun.ACTIVE or (last.status == Status.SUCCEEDED and last.job != STEPS[-1]):
            state["chain"] = RUNNING
        elif last.status == Status.SUCCEEDED:
            state["chain"] = COMPLETED
        else:
            state["chain"] = STOPPED
            stopped_lines.append(
                f"{slug}: stopped at {last.get_job_display().lower()} (run {last.pk}, {last.status}): {last.error}"
            )
        trades[slug] = state
    chains = [state["chain"] for state in trades.values()]
    counts = {
        "trades": trades,
        "chains_completed": chains.count(COMPLETED),
        "chains_stopped": chains.count(STOPPED),
        "chains_running": chains.count(RUNNING),
    }
    return counts, stopped_lines


def chain_advance(*, nightly_id: int) -> JobRun:
    """Move the nightly run on: each trade whose last step succeeded gets its next step (once: under the
    nightly run's row lock, looking at what is recorded); its counts are brought up to date; once no chain
    is running, it ends, succeeded when every chain completed, else failed with the stopped chains. A
    nightly run that is not waiting (still starting its chains, or ended) is left as it is."""
    with transaction.atomic():
        nightly = JobRun.objects.select_for_update().get(pk=nightly_id)
        if nightly.job != Job.NIGHTLY_RUN or nightly.status != Status.RUNNING or not nightly.waiting:
            return nightly
        latest: dict[int, dict[str, JobRun]] = {}
        for step in nightly.steps.select_related("trade").order_by("pk"):
            latest.setdefault(step.trade_id, {})[step.job] = step  # type: ignore[arg-type]  # steps have a trade
        for steps in latest.values():
            for done, following in itertools.pairwise(STEPS):
                if following not in steps and done in steps and steps[done].status == Status.SUCCEEDED:
                    _step_record(nightly=nightly, job=following, trade=steps[done].trade)  # type: ignore[arg-type]
        counts, stopped = _chains_state(nightly)
        nightly.counts = counts
        if not counts["chains_running"]:
            nightly.waiting, nightly.finished_at = False, timezone.now()
            if stopped:
                nightly.status = Status.FAILED
                nightly.error = f"{len(stopped)} of {len(counts['trades'])} chains stopped:\n" + "\n".join(stopped)
            else:
                nightly.status = Status.SUCCEEDED
        nightly.save(update_fields=["counts", "waiting", "finished_at", "status", "error"])
    if nightly.status != Status.RUNNING:
        log.info("nightly run %s ended %s: %s", nightly.pk, nightly.status, nightly.counts)
    return nightly


def scoring_step_settle(*, run_id: int) -> JobRun | None:
    """Close a scoring job's run that waits for its scoring run, once that has closed: succeeded with its
    counts, or failed with its error (emailed); then its chain moves on. None when there is nothing to do
    (not waiting, or the scoring run goes on). Under the run's row lock: the task and the sweep close it once."""
    with transaction.atomic():
        run = JobRun.objects.select_for_update(of=("self",)).select_related("trade").get(pk=run_id)
        if run.status != Status.RUNNING or not run.waiting or run.scoring_run_id is None:
            return None
        scoring = ScoringRun.objects.get(pk=run.scoring_run_id)
        if scoring.status == ScoringRun.Status.RUNNING:
            return None
        run.counts = {
            "scoring_run": scoring.pk,
            "properties_scored": scoring.properties_scored,
            "scores_changed": scoring.scores_changed,
        }
        run.waiting, run.finished_at = False, timezone.now()
        if scoring.status == ScoringRun.Status.SUCCEEDED:
            run.status, run.error = Status.SUCCEEDED, ""
        else:
            run.status, run.error = Status.FAILED, f"Scoring run {scoring.pk} failed: {scoring.error}"
        run.save(update_fields=["counts", "waiting", "finished_at", "status", "error"])
    if run.status == Status.FAILED:
        log.warning("job run %s failed: %s", run.pk, run.error)
        job_failure_notify(run=run)
    _dashboard_refresh(run)
    if run.chain_id is not None:
        chain_advance(nightly_id=run.chain_id)
    return run


def waiting_run_check(*, run_id: int) -> None:
    """A waiting run moved on if its work ended meanwhile: a scoring job's run closed, a nightly run
    advanced (it ends at once when it has no chain, or every chain stopped at its start)."""
    run = JobRun.objects.get(pk=run_id)
    if run.job == Job.NIGHTLY_RUN:
        chain_advance(nightly_id=run.pk)
    elif run.scoring_run_id is not None:
        scoring_step_settle(run_id=run.pk)


def scoring_run_ended(*, scoring_run_id: int) -> int:
    """The scoring run closed (SCORING_RUN_ENDED_TASK): the job runs waiting for it are closed and their
    chains moved on; how many."""
    closed = 0
    for run_id in JobRun.objects.filter(scoring_run_id=scoring_run_id, waiting=True).values_list("pk", flat=True):
        closed += scoring_step_settle(run_id=run_id) is not None
    return closed


def chains_recover() -> dict[str, int]:
    """The recovery sweep's part (see the module): the waiting scoring steps whose scoring run has ended are
    closed, and every waiting nightly run is moved on. Returns how many steps it closed and how many nightly
    runs ended. A failure on one run is logged and the others go on."""
    done = {"steps_closed": 0, "nightly_runs_ended": 0}
    waiting = JobRun.objects.filter(waiting=True).order_by("pk")
    for run_id in waiting.filter(job=Job.SCORING).values_list("pk", flat=True):
        try:
            done["steps_closed"] += scoring_step_settle(run_id=run_id) is not None
        except Exception:
            log.exception("the recovery sweep could not close the scoring job run %s", run_id)
    for run_id in waiting.filter(job=Job.NIGHTLY_RUN).values_list("pk", flat=True):
        try:
            done["nightly_runs_ended"] += chain_advance(nightly_id=run_id).status != Status.RUNNING
        except Exception:
            log.exception("the recovery sweep could not move nightly run %s on", run_id)
    return done
