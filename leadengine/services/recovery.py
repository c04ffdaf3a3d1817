"""Runs that cannot end by themselves are taken over, and scheduled runs beat could not send are caught up.

The recovery sweep (jobs_recover, the "Recovery sweep" schedule, every minute) looks at every queued or
running run:

- queued and never sent (the broker refused its task): sent now, once it is a minute old;
- queued and sent JOB_QUEUE_TIMEOUT_MINUTES ago without a worker taking it (its message was lost, e.g.
  Redis restarted empty): sent again, once; failed with its reason if it still waits that long after;
- running while its advisory lock is free (its worker died): put back in the queue and sent again, once,
  so it completes unattended; failed with its reason when it had been requeued already.

A waiting run (a scoring job whose partitions the workers score, a nightly run whose chains go on) has no
worker by design and is not taken over: the sweep moves it on instead (leadengine.services.chains.
chains_recover), closing a scoring job whose scoring run ended and starting a chain's step that is due.

A copy of a run sent twice is a no-op (job_run_execute checks its status and its lock), so sending again
is always safe. Each run it changes is logged, and says so itself (`requeues`, `error`); failures are
emailed like any. The sweep records no run of its own: a run every minute would bury the others.

Imports (scoring.services.imports.uploads.import_runs_recover): an import run whose process died is closed as
failed, and a file uploaded in the admin whose task was lost (or never sent) is sent again while it waits.

Missed runs: when beat cannot hand a scheduled job to the broker (leadengine/scheduler.py), the miss is
recorded as a run with status "missed" and the reason. Once publishing works again, each job and trade
whose latest run is a missed one gets one catch-up run (three missed deliveries: one catch-up).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from leadengine.models import JobRun
from leadengine.services.jobs import (
    JobBusy,
    JobError,
    _lock_held,
    job_failure_notify,
    job_run_request,
    job_run_send,
    job_trade_check,
)
from scoring.models import ImportRun, Trade

Status = JobRun.Status
log = logging.getLogger(__name__)

UNSENT_GRACE = dt.timedelta(minutes=1)  # a run's own request sends it at once; the sweep only what it could not
MAX_REQUEUES = 1


def _run_recover(*, run_id: int, now: dt.datetime) -> str | None:
    """What the sweep did to the run (see the module): "sent", "requeued", "failed" or None (left alone: it is
    alive, ended, or not yet due). Holds the run's row: a worker starting it waits, or it is skipped here."""
    run = (
        JobRun.objects.select_for_update(skip_locked=True)
        .filter(pk=run_id, status__in=JobRun.ACTIVE, waiting=False)
        .first()
    )
    if run is None or _lock_held(run):
        return None  # ended, being started right now, or running on a live worker
    timeout = dt.timedelta(minutes=settings.JOB_QUEUE_TIMEOUT_MINUTES)
    if run.status == Status.RUNNING:
        if run.requeues < MAX_REQUEUES:
            run.status, run.started_at, run.sent_at, run.requeues = Status.QUEUED, None, None, run.requeues + 1
            run.save(update_fields=["status", "started_at", "sent_at", "requeues"])
            return "requeued"
        run.error = "Abandoned: the worker running it stopped, again after the run was requeued."
    elif run.sent_at is None:
        return "sent" if now - run.queued_at >= UNSENT_GRACE else None
    elif now - run.sent_at < timeout:
        return None
    elif run.requeues < MAX_REQUEUES:
        run.sent_at, run.requeues = None, run.requeues + 1
        run.save(update_fields=["sent_at", "requeues"])
        return "requeued"
    else:
        minutes = settings.JOB_QUEUE_TIMEOUT_MINUTES
        run.error = f"Never started: no worker took it within {minutes} minutes, though its task was sent twice."
    run.status, run.finished_at = Status.FAILED, now
    run.save(update_fields=["status", "finished_at", "error"])
    return "failed"


def _scoring_recover(now: dt.datetime) -> dict[str, Any] | None:
    """Scoring runs' own recovery (partitions whose worker died); a failure of it is logged, never a stop of
    the sweep."""
    from scoring.services.runs import scoring_runs_recover

    try:
        return scoring_runs_recover(now=now)
    except Exception:
        log.exception("the recovery of scoring runs failed; the sweep tries again in a minute")
        return None


def _imports_recover(now: dt.datetime) -> dict[str, Any] | None:
    """Import runs' own recovery (abandoned runs closed, lost uploads sent again); a failure of it is logged,
    never a stop of the sweep."""
    from scoring.services.imports.uploads import import_runs_recover

    try:
        return import_runs_recover(now=now)
    except Exception:
        log.exception("the recovery of import runs failed; the sweep tries again in a minute")
        return None


def _fast_path_recover(now: dt.datetime) -> dict[str, bool] | None:
    """The storm fast path's safety net: its task sent again when an import's rescoring has been pending
    for over a minute (the task was lost, or failed), and an urgent email run asked for when an urgent lead
    has waited for it that long (a run under way had already read its recipients). A failure is logged,
    never a stop of the sweep."""
    from leads.selectors import urgent_leads_waiting
    from scoring.services.imports.run import rescoring_send

    try:
        pending = ImportRun.objects.filter(rescoring=ImportRun.Rescoring.PENDING)
        rescoring = pending.filter(finished_at__lt=now - UNSENT_GRACE).exists()
        if rescoring:
            rescoring_send()
        urgent = urgent_leads_waiting(since=now - UNSENT_GRACE)
        if urgent:
            with contextlib.suppress(JobError):  # one is queued or running: it sends them
                job_run_request(job=JobRun.Job.URGENT_EMAIL)
    except Exception:
        log.exception("the storm fast path's recovery failed; the sweep tries again in a minute")
        return None
    return {"rescoring_sent": rescoring, "urgent_email_asked": urgent}


def _chains_recover() -> dict[str, int] | None:
    """The nightly chains' part (waiting runs moved on); a failure of it is logged, never a stop of the sweep."""
    from leadengine.services.chains import chains_recover

    try:
        return chains_recover()
    except Exception:
        log.exception("the recovery of the nightly chains failed; the sweep tries again in a minute")
        return None


def jobs_recover(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """The recovery sweep (see the module); returns how many runs it sent, requeued and failed, and what the
    scoring runs', the imports' and the chains' recoveries did (None: it failed, and is logged). The chains
    come last, so a scoring run the scoring recovery just closed ends its waiting job in the same sweep."""
    now = now or timezone.now()
    done = {"sent": 0, "requeued": 0, "failed": 0}
    active = JobRun.objects.filter(status__in=JobRun.ACTIVE, waiting=False)
    for run_id in active.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            outcome = _run_recover(run_id=run_id, now=now)
        if outcome is None:
            continue
        run = JobRun.objects.select_related("trade").get(pk=run_id)
        if outcome == "failed":
            log.warning("job run %s failed by the recovery sweep: %s", run_id, run.error)
            job_failure_notify(run=run)
        else:
            log.warning("job run %s %s by the recovery sweep (%s)", run_id, outcome, run)
            if not job_run_send(run_id=run_id):
                continue  # still unsent: the next sweep tries again, counting no new requeue
        done[outcome] += 1
    scoring, imports = _scoring_recover(now), _imports_recover(now)
    return {
        **done,
        "scoring": scoring,
        "imports": imports,
        "chains": _chains_recover(),
        "fast_path": _fast_path_recover(now),
    }


def job_run_missed_record(*, job: str, trade: str | None, reason: str, now: dt.datetime | None = None) -> JobRun | None:
    """Record that the schedule of `job` (for the trade with slug `trade`) was due and could not be sent:
    a run with status missed and `reason`. None for a schedule naming no known job or trade, whose runs
    fail anyway (logged)."""
    now = now or timezone.now()
    trade_row = Trade.objects.filter(slug=trade).first() if trade else None
    try:
        job_trade_check(job=job, trade=trade_row)
    except JobError as error:
        log.error("a schedule of %r (trade %r) was missed and names no job to catch up: %s", job, trade, error)
        return None
    if trade and trade_row is None:
        log.error("a schedule of %s for the unknown trade %r was missed", job, trade)
        return None
    return JobRun.objects.create(job=job, trade=trade_row, status=Status.MISSED, queued_at=now, finished_at=now,
                                 error=reason)  # fmt: skip


def jobs_missed_pending() -> list[tuple[str, int | None]]:
    """The (job, trade id) whose latest run is a missed one: a schedule was missed and nothing ran since."""
    missed = JobRun.objects.filter(status=Status.MISSED).values("job", "trade_id").annotate(last=Max("queued_at"))
    return sorted(
        (row["job"], row["trade_id"])
        for row in missed
        if not JobRun.objects.filter(job=row["job"], trade_id=row["trade_id"], queued_at__gte=row["last"])
        .exclude(status=Status.MISSED)
        .exists()
    )


def jobs_missed_catch_up(*, covered: tuple[str, str | None] | None = None) -> list[JobRun]:
    """One catch-up run (job_run_request) of each job and trade whose latest run was missed, however many
    times it was missed; returns the runs queued. `covered` (job, trade slug) was just sent by its schedule:
    its own run is the catch-up. A job already queued or running needs none."""
    queued = []
    trades = Trade.objects.in_bulk()
    for job, trade_id in jobs_missed_pending():
        trade = trades.get(trade_id) if trade_id else None
        if covered == (job, trade.slug if trade else None):
            continue
        try:
            queued.append(job_run_request(job=job, trade=trade))
        except JobBusy:
            continue
        except JobError as error:
            log.warning("the catch-up run of %s was not recorded: %s", job, error)
    return queued
