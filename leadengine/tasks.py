"""Celery tasks of operations: thin wrappers around leadengine/services/jobs.py."""

from celery import shared_task
from django.db import OperationalError

from leadengine.services import jobs
from scoring.models import Trade


@shared_task(
    name="leadengine.job_run",
    acks_late=True,
    autoretry_for=(OperationalError,),  # the database was unreachable: transient
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=3_600,
    time_limit=3_660,
)
def job_run(run_id: int) -> str:
    """Execute a queued job run; returns its status."""
    return jobs.job_run_execute(run_id=run_id).status


@shared_task(
    name="leadengine.job_scheduled",
    acks_late=True,
    autoretry_for=(OperationalError,),  # the run could not be recorded: the database was unreachable
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=3_600,
    time_limit=3_660,
)
def job_scheduled(job: str, trade: str | None = None) -> str:
    """What a schedule (django-celery-beat) starts: a run of `job` for the trade with slug `trade` (none: a
    job of every trade)."""
    return jobs.job_run_scheduled(job=job, trade=Trade.objects.get(slug=trade) if trade else None).status
