"""Beat's scheduler (CELERY_BEAT_SCHEDULER): django-celery-beat's DatabaseScheduler, which also keeps a
record of the scheduled jobs it could not send.

When the broker refuses a due job (leadengine.job_scheduled), the miss is recorded as a "missed" run
with the reason (leadengine.services.recovery.job_run_missed_record), and beat goes on as before: the
schedule is not sent again for that due time. Once a task is sent again, each job and trade whose latest
run is a missed one gets one catch-up run, however many times it was missed. A beat that starts looks
for misses once, after its first send: the previous beat may have stopped before catching up. Other
tasks (the recovery sweep) are only logged when missed: the sweep itself runs every minute.
"""

from __future__ import annotations

import logging

from celery.beat import SchedulingError
from django_celery_beat.schedulers import DatabaseScheduler

from leadengine.selectors import SCHEDULED_TASK

log = logging.getLogger(__name__)


def _job_of(entry) -> tuple[str, str | None] | None:
    """The (job, trade slug) a schedule entry starts; None for any other task."""
    if entry.task != SCHEDULED_TASK or not isinstance(entry.kwargs, dict) or "job" not in entry.kwargs:
        return None
    return entry.kwargs["job"], entry.kwargs.get("trade")


class JobScheduler(DatabaseScheduler):
    """DatabaseScheduler that records missed job runs and catches them up once (see the module)."""

    def __init__(self, *args, **kwargs):
        self.catch_up_due = True
        super().__init__(*args, **kwargs)

    @property
    def producer(self):
        """Beat's producer, connected with one try rather than Celery's default of up to a hundred: a broker
        that is down when beat starts would otherwise hold every due job back, unrecorded, for as long as it
        is down. None while the broker cannot be reached: the due job's send then fails at once (the publish
        retry policy, settings) and is recorded as missed; the next tick tries to connect again."""
        producer = self.__dict__.get("_connected_producer")
        if producer is None:
            try:
                producer = self.Producer(self.connection.ensure_connection(max_retries=1), auto_declare=False)
            except Exception as error:
                log.warning("beat cannot reach the broker: %s", error)
                return None
            self.__dict__["_connected_producer"] = producer
        return producer

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        try:
            result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except SchedulingError as error:
            self.miss_record(entry, error)
            raise
        if self.catch_up_due:
            self.catch_up(covered=_job_of(entry))
        return result

    def miss_record(self, entry, error: SchedulingError) -> None:
        """Record the job `entry` could not send as a missed run; a database that is down too is logged."""
        from leadengine.services.recovery import job_run_missed_record

        job_of = _job_of(entry)
        if job_of is None:
            return
        cause = error.__cause__ or error
        reason = (
            f"Beat could not send it to the broker ({type(cause).__name__}: {cause}); one catch-up run follows "
            "once the broker is back."
        )
        try:
            run = job_run_missed_record(job=job_of[0], trade=job_of[1], reason=reason)
        except Exception:
            log.exception("the missed run of %s was not recorded either", entry.name)
            return
        if run is not None:
            log.warning("schedule %r missed (run %s): %s", entry.name, run.pk, reason)
        self.catch_up_due = True

    def catch_up(self, *, covered: tuple[str, str | None] | None = None) -> None:
        """Queue one catch-up run per job and trade whose latest run was missed; tried again after the next
        send when the database fails."""
        from leadengine.services.recovery import jobs_missed_catch_up

        try:
            runs = jobs_missed_catch_up(covered=covered)
        except Exception:
            log.exception("the missed runs were not caught up; trying again after the next send")
            return
        self.catch_up_due = False
        for run in runs:
            log.warning("catch-up run %s queued for the missed %s", run.pk, run)
