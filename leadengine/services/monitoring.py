"""What operations staff are told: overdue jobs (as they fall behind) and the daily report, both emailed to
OPS_EMAILS with Django's email backend. A mail server that refuses is logged and fails the job's run (so
it shows in red in the admin), never silently dropped."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone

from leadengine.models import JobRun
from leadengine.selectors import jobs_overdue
from leads.models import Lead
from leads.selectors import FUNNEL_STEPS, leads_funnel


def _ops_email(subject: str, body: str) -> bool:
    """Send to OPS_EMAILS; False when there is nobody to tell. Raises OSError when the server refuses."""
    if not settings.OPS_EMAILS:
        return False
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, settings.OPS_EMAILS)
    return True


def _last_overdue_names() -> set[str]:
    """The schedules the previous successful check found overdue (recorded in its counts)."""
    last = JobRun.objects.filter(job=JobRun.Job.OVERDUE_CHECK, status=JobRun.Status.SUCCEEDED).first()
    return set(last.counts.get("overdue_jobs", [])) if last else set()


def overdue_check(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Find the overdue job schedules (leadengine.selectors.jobs_overdue) and email the ones that were not
    overdue at the previous check, so ops hear of each once when it falls behind, and again only after it
    caught up and fell behind anew. Its counts name the overdue schedules, the next check's memory."""
    now = now or timezone.now()
    overdue = jobs_overdue(now=now)
    new = [state for state in overdue if state.name not in _last_overdue_names()]
    emailed = False
    if new:
        zone = ZoneInfo(settings.TIME_ZONE)
        lines = [
            f"- {state.name}: due {state.due_at.astimezone(zone):%Y-%m-%d %H:%M %Z}; last succeeded "  # type: ignore[union-attr]  # overdue: due
            + (f"{state.last_success_at.astimezone(zone):%Y-%m-%d %H:%M %Z}" if state.last_success_at else "never")
            for state in new
        ]
        subject = f"LeadEngine: {len(new)} job{'s' if len(new) != 1 else ''} overdue"
        body = (
            "These scheduled jobs have not succeeded since they were due "
            f"(more than {settings.JOB_OVERDUE_GRACE_MINUTES} minutes ago):\n\n" + "\n".join(lines) + "\n\n"
            "Check that beat and a worker are running, and the jobs' last runs in the admin.\n"
        )
        emailed = _ops_email(subject, body)
    return {"overdue": len(overdue), "newly_overdue": len(new), "emailed": emailed,
            "overdue_jobs": [state.name for state in overdue]}  # fmt: skip


@dataclass(frozen=True)
class DailyReport:
    day: dt.date
    funnel: dict[str, dict[str, int]]  # per trade slug: leads per funnel step
    runs: dict[str, int]  # job runs of the day per status
    failed_runs: list[JobRun]
    overdue: list[str]
    webhook_failed: int
    pool: int  # unassigned leads waiting for an owner

    @property
    def totals(self) -> dict[str, int]:
        return {step: sum(trade[step] for trade in self.funnel.values()) for step in FUNNEL_STEPS}


def daily_report_build(*, day: dt.date) -> DailyReport:
    """The figures of `day` (a day in TIME_ZONE): the lead funnel per trade, the job runs and their
    failures; and as of now: overdue jobs, leads whose webhook failed, the unassigned pool."""
    zone = ZoneInfo(settings.TIME_ZONE)
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    runs = JobRun.objects.filter(queued_at__gte=start, queued_at__lt=end)
    by_status = dict.fromkeys(JobRun.Status.values, 0)
    for status in runs.values_list("status", flat=True):
        by_status[status] += 1
    return DailyReport(
        day=day,
        funnel=leads_funnel(start=start, end=end),
        runs=by_status,
        failed_runs=list(runs.filter(status=JobRun.Status.FAILED).select_related("trade").order_by("queued_at")),
        overdue=[state.name for state in jobs_overdue()],
        webhook_failed=Lead.objects.webhook_failed().count(),
        pool=Lead.objects.filter(state=Lead.State.GENERATED).count(),
    )


def daily_report_send(*, day: dt.date | None = None) -> dict[str, Any]:
    """Email the report of `day` (default: yesterday in TIME_ZONE) to OPS_EMAILS; returns its totals."""
    day = day or timezone.localdate() - dt.timedelta(days=1)
    report = daily_report_build(day=day)
    body = render_to_string("leadengine/email/daily_report.txt", {"report": report})
    emailed = _ops_email(f"LeadEngine daily report, {day:%a %d %b %Y}", body)
    return {"day": day.isoformat(), **report.totals, "runs_failed": report.runs[JobRun.Status.FAILED],
            "overdue": len(report.overdue), "webhook_failed": report.webhook_failed, "emailed": emailed}  # fmt: skip
