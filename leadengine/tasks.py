"""Celery tasks of operations: thin wrappers around leadengine/services/jobs.py and recovery.py.

Time limits: a job may run JOB_SOFT_TIME_LIMIT seconds (then it is told to stop, and its run fails with
the reason) and is killed at JOB_TIME_LIMIT; the longest real job, scoring a trade, takes about 10-20 s
per million properties in process, so half an hour is ample. The broker's visibility timeout
(CELERY_BROKER_TRANSPORT_OPTIONS) is just above the longest hard limit of any task.
"""

import functools
import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from core.retry import db_retry
from leadengine import flows
from leadengine.services import jobs
from leadengine.services.recovery import jobs_recover
from scoring.models import Trade
from scoring.services.imports.run import RESCORING_TASK

log = logging.getLogger(__name__)

JOB_SOFT_TIME_LIMIT = 1_800
JOB_TIME_LIMIT = 1_860
# The database was unreachable for longer than the service's own retries (DB_RETRY_SECONDS): the task is
# tried again after 10 s, 20 s, 40 s, 80 s, 160 s; what ends meanwhile is a no-op on the next try.
DB_ERRORS = (OperationalError, InterfaceError)
DB_RETRY_OPTIONS = {
    "autoretry_for": DB_ERRORS,
    "retry_backoff": 10,
    "retry_backoff_max": 160,
    "retry_jitter": False,
    "max_retries": 5,
}


@shared_task(
    name="leadengine.job_run",
    acks_late=True,
    soft_time_limit=JOB_SOFT_TIME_LIMIT,
    time_limit=JOB_TIME_LIMIT,
    **DB_RETRY_OPTIONS,
)
def job_run(run_id: int) -> str:
    """Execute a queued job run; returns its status."""
    return jobs.job_run_execute(run_id=run_id).status


@shared_task(
    name="leadengine.job_scheduled",
    bind=True,
    acks_late=True,
    soft_time_limit=JOB_SOFT_TIME_LIMIT,
    time_limit=JOB_TIME_LIMIT,
    **DB_RETRY_OPTIONS,
)
def job_scheduled(self, job: str, trade: str | None = None) -> str:
    """What a schedule (django-celery-beat) starts: a run of `job` for the trade with slug `trade` (none: a
    job of every trade). Its task id marks the run, so the same task delivered again finds it."""
    trade_row = db_retry(lambda: Trade.objects.get(slug=trade), what="reading a schedule's trade") if trade else None
    return jobs.job_run_scheduled(job=job, trade=trade_row, task_id=self.request.id or "").status


@shared_task(
    name=RESCORING_TASK,
    acks_late=True,
    soft_time_limit=JOB_SOFT_TIME_LIMIT,
    time_limit=JOB_TIME_LIMIT,
    **DB_RETRY_OPTIONS,
)
def imports_rescore() -> str:
    """The storm fast path (flows.imports_rescore), sent as an import that changed what scores read commits.
    Safe twice: a second copy finds nothing pending. A fault of the code is noted on the pending imports and
    raised; the recovery sweep sends the task again a minute later."""
    try:
        done = flows.imports_rescore()
    except DB_ERRORS:
        raise
    except Exception as error:
        log.exception("the rescoring of the pending imports failed")
        db_retry(functools.partial(flows.imports_rescore_failed, error=error), what="noting a failed rescoring")
        raise
    return str(done) if done is not None else "nothing pending"


@shared_task(name="leadengine.jobs_recover", soft_time_limit=120, time_limit=130)
def jobs_recover_task() -> dict:
    """The recovery sweep (every minute, "Recovery sweep"): sends, requeues or fails the runs that cannot
    end by themselves. It records no run; what it did is logged and returned. No retries: the next minute's
    sweep is the retry (two at once are safe: each run's row is taken by one)."""
    done = jobs_recover()
    if done["sent"] or done["requeued"] or done["failed"]:
        log.warning("recovery sweep: %s", done)
    return done


@shared_task(name="leadengine.scoring_run_ended", acks_late=True, soft_time_limit=120, time_limit=130)
def scoring_run_ended(scoring_run_id: int) -> int:
    """A distributed scoring run closed (sent by name from scoring, SCORING_RUN_ENDED_TASK): the scoring job
    waiting for it ends and its nightly chain moves on; how many job runs it closed. No retries: the
    recovery sweep does the same every minute."""
    from leadengine.services.chains import scoring_run_ended as ended

    return ended(scoring_run_id=scoring_run_id)
