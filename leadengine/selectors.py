"""Reads of operations: whether each scheduled job has run as its schedule says (overdue jobs)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Count, DurationField, ExpressionWrapper, F, Func, Max, Q
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from leadengine.models import JobRun

SCHEDULED_TASK = "leadengine.job_scheduled"  # the task every job schedule starts (leadengine.tasks)
CRONTAB_SEARCH_DAYS = 366 * 4 + 1  # far enough back for any crontab (29 February included)


def crontab_previous(schedule: CrontabSchedule, at: dt.datetime) -> dt.datetime | None:
    """The last time at or before `at` (to the minute) that `schedule` is due, in its time zone; None
    when celery refuses it (beat never runs it either: e.g. 31 February) or it is not due in four years."""
    zone = ZoneInfo(str(schedule.timezone))
    try:
        fields = crontab(
            minute=schedule.minute, hour=schedule.hour, day_of_week=schedule.day_of_week,
            day_of_month=schedule.day_of_month, month_of_year=schedule.month_of_year,
        )  # fmt: skip
    except ValueError:
        return None
    local = at.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    hours, minutes = sorted(fields.hour, reverse=True), sorted(fields.minute, reverse=True)
    day = local.date()
    for _ in range(CRONTAB_SEARCH_DAYS):
        # celery numbers weekdays from Sunday = 0
        if (
            day.month in fields.month_of_year
            and day.day in fields.day_of_month
            and day.isoweekday() % 7 in fields.day_of_week
        ):
            for hour in hours:
                for minute in minutes:
                    due = dt.datetime.combine(day, dt.time(hour, minute))
                    if due <= local:
                        # A time skipped by a daylight-saving change counts at the instant it maps to.
                        return due.replace(tzinfo=zone)
        day -= dt.timedelta(days=1)
        local = dt.datetime.combine(day, dt.time(23, 59))
    return None


def schedule_due_before(task: PeriodicTask, at: dt.datetime) -> dt.datetime | None:
    """When the schedule of `task` last wanted it to run, at or before `at`: its crontab's previous time,
    or one interval before `at` for an interval schedule. None for other kinds (solar, clocked), which
    have no steady rhythm to fall behind."""
    if task.crontab_id:
        return crontab_previous(task.crontab, at)
    if task.interval_id:
        return at - dt.timedelta(**{task.interval.period: task.interval.every})
    return None


@dataclass(frozen=True)
class ScheduleState:
    """A job schedule as its monitoring sees it."""

    task_id: int
    name: str
    job: str
    trade: str | None  # trade slug; None: a job of every trade
    due_at: dt.datetime | None  # the last due time that is at least JOB_OVERDUE_GRACE_MINUTES old
    last_success_at: dt.datetime | None
    overdue: bool


def _job_of(task: PeriodicTask) -> tuple[str, str | None] | None:
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError:
        return None  # its runs fail and are emailed as failures; there is no job to watch
    job = kwargs.get("job") if isinstance(kwargs, dict) else None
    return (job, kwargs.get("trade")) if job in JobRun.Job.values else None


def schedule_states(*, now: dt.datetime | None = None) -> list[ScheduleState]:
    """Every enabled, repeating job schedule (a periodic task of leadengine.job_scheduled), by name, with whether it is
    overdue: its schedule was due at least JOB_OVERDUE_GRACE_MINUTES ago and no run of its job (for its
    trade) has succeeded since. A job that has never succeeded is overdue only once it has been tried
    (a run of it is recorded, or beat has sent it). A schedule beat has never sent is not overdue for a
    due time before it was created or last edited (date_changed: beat's own saves change it too, but only
    once it has sent the task): a schedule seeded today is not overdue for last night. The overdue check
    watches the others, never itself (were it behind, it would not be running to say so)."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=settings.JOB_OVERDUE_GRACE_MINUTES)
    tasks = list(
        PeriodicTask.objects.filter(enabled=True, one_off=False, task=SCHEDULED_TASK)
        .select_related("crontab", "interval")
        .order_by("name")
    )
    history: dict[tuple[str, str | None], Mapping[str, Any]] = {
        (row["job"], row["trade__slug"]): row
        for row in JobRun.objects.values("job", "trade__slug").annotate(
            last_success=Max("finished_at", filter=Q(status=JobRun.Status.SUCCEEDED)), last_queued=Max("queued_at")
        )
    }
    states = []
    for task in tasks:
        job_of = _job_of(task)
        if job_of is None:
            continue
        job, trade = job_of
        runs = history.get((job, trade), {})
        last_success, tried = runs.get("last_success"), runs.get("last_queued") is not None or task.last_run_at
        due = schedule_due_before(task, cutoff)
        if job == JobRun.Job.OVERDUE_CHECK:
            due = None  # never overdue: shown with its last success, flagged by nobody
        elif due is not None and task.last_run_at is None and task.date_changed and due < task.date_changed:
            due = None  # not due once since it was created (or re-timed)
        if due is None:
            overdue = False
        elif last_success is None:
            overdue = bool(tried)
        else:
            overdue = last_success < due
        states.append(
            ScheduleState(
                task_id=task.pk, name=task.name, job=job, trade=trade, due_at=due, last_success_at=last_success,
                overdue=overdue,
            )
        )  # fmt: skip
    return states


def jobs_overdue(*, now: dt.datetime | None = None) -> list[ScheduleState]:
    """The enabled job schedules that are overdue (schedule_states), by name."""
    return [state for state in schedule_states(now=now) if state.overdue]


@dataclass(frozen=True)
class JobRunGroup:
    """The runs of one job, for one trade (None: a job of every trade), in one status, among the runs a
    job_run_groups read counted."""

    job: str
    trade: str | None  # trade slug
    status: str
    runs: int
    last_finished_at: dt.datetime | None  # the latest end of one of them that had started
    last_duration: dt.timedelta | None  # that run's, from its start to its end


class _First(Func):
    """The first element of an array (PostgreSQL arrays count from 1); NULL for an empty or NULL one."""

    template = "(%(expressions)s)[1]"


def job_run_groups(*, since: dt.datetime) -> list[JobRunGroup]:
    """The job runs queued since `since`, and those still queued or running whenever they were queued, grouped by
    job, trade and status, in one grouped query: how many, and the latest that ended after starting, with its
    duration. The index on queued_at and the partial index of active runs (one_active_per_trade) pick the rows,
    so the cost follows the window, not the table's years of history."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    ran = Q(started_at__isnull=False, finished_at__isnull=False)
    rows = (
        JobRun.objects.filter(Q(queued_at__gte=since) | Q(status__in=JobRun.ACTIVE))
        .values("job", "trade__slug", "status")
        .annotate(
            runs=Count("id"),
            last_finished_at=Max("finished_at", filter=ran),
            last_duration=_First(
                ArrayAgg(duration, filter=ran, order_by=(F("finished_at").desc(), F("id").desc())),
                output_field=DurationField(),
            ),
        )
        .order_by("job", "trade__slug", "status")
    )
    return [
        JobRunGroup(
            job=row["job"], trade=row["trade__slug"], status=row["status"], runs=row["runs"],
            last_finished_at=row["last_finished_at"], last_duration=row["last_duration"],
        )
        for row in rows
    ]  # fmt: skip
