"""The default schedules (django-celery-beat periodic tasks, edited by staff in the admin). Seeding creates
the ones missing by name and never touches one that exists: a time, an enabled flag or arguments staff
changed stay as they are. To stop a default job, disable it; a deleted one comes back at the next seeding.

Until the nightly run was one chain per trade, the defaults held two schedules per trade, "Nightly scoring:
SLUG" (02:00) and "Lead generation: SLUG" (03:00). Migration leadengine 0008 disables those rows where they
exist and creates the "Nightly run" in the same step, so a database that had them never scores a trade
twice a night, nor skips a night between the migration and the next seeding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from leadengine.models import JobRun
from leads.services.quality import EVALUATION_DAYS

RECOVERY_TASK = "leadengine.jobs_recover"  # leadengine.tasks.jobs_recover_task
NIGHTLY_RUN = "Nightly run"


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str
    minute: str
    hour: str
    kwargs: dict[str, Any]
    description: str


def schedules_default() -> list[DefaultSchedule]:
    """The nightly run at 02:00 (per trade with an active scoring model, read when it fires: scoring on the
    workers, then lead generation and routing; leadengine/services/chains.py); for every trade: webhook
    delivery every two minutes, lead expiry, waitlist offer expiry and the month close every hour, lead
    quality evaluation at 05:00, the daily report at 06:30, the contractors' lead email digest at 07:00, the
    overdue check every 15 minutes, and the recovery sweep (leadengine.services.recovery) every minute. None is per
    trade: a trade added, or given an active model, in the admin is in the next nightly run, with no
    schedule to create."""
    return [
        DefaultSchedule(
            name=NIGHTLY_RUN, task="leadengine.job_scheduled", minute="0", hour="2",
            kwargs={"job": JobRun.Job.NIGHTLY_RUN},
            description="Per trade with an active scoring model, a chain: score every property on the workers, "
            "then make the trade's leads and route them to ZIP owners (webhooks posted at once). A failed step "
            "stops its trade's chain only; the run's counts say how each trade's chain ended.",
        ),
        DefaultSchedule(
            name="Webhook delivery", task="leadengine.job_scheduled", minute="*/2", hour="*",
            kwargs={"job": JobRun.Job.WEBHOOK_DELIVERY},
            description="POST newly assigned leads to contractors' webhooks, and retry the failed ones when due.",
        ),
        DefaultSchedule(
            name="Lead expiry", task="leadengine.job_scheduled", minute="5", hour="*",
            kwargs={"job": JobRun.Job.LEAD_EXPIRY}, description="Expire leads past their pool time or acceptance SLA.",
        ),
        DefaultSchedule(
            name="Waitlist offer expiry", task="leadengine.job_scheduled", minute="10", hour="*",
            kwargs={"job": JobRun.Job.OFFER_EXPIRY},
            description="Expire waitlist offers that ran out and offer each territory to the next in line.",
        ),
        DefaultSchedule(
            name="Lead email digest", task="leadengine.job_scheduled", minute="0", hour="7",
            kwargs={"job": JobRun.Job.EMAIL_DIGEST},
            description="Email contractors without a webhook their new leads, and mark them delivered.",
        ),
        DefaultSchedule(
            name="Daily report", task="leadengine.job_scheduled", minute="30", hour="6",
            kwargs={"job": JobRun.Job.DAILY_REPORT},
            description="Email ops yesterday's lead funnel per trade, job runs and failures, and what needs a look.",
        ),
        DefaultSchedule(
            name="Lead quality evaluation", task="leadengine.job_scheduled", minute="0", hour="5",
            kwargs={"job": JobRun.Job.EVALUATION},
            description=f"Evaluate every scoring model version's leads with known outcomes over the last "
            f"{EVALUATION_DAYS} days (AUC, deciles, lift, calibration, per reason), so the figures have a history.",
        ),
        DefaultSchedule(
            name="Month close", task="leadengine.job_scheduled", minute="20", hour="*",
            kwargs={"job": JobRun.Job.MONTH_CLOSE},
            description="On the 1st in each contractor's time zone, close its last month: charge its territory "
            "fees and write its statement. Every other hour finds nothing to close.",
        ),
        DefaultSchedule(
            name="Overdue job check", task="leadengine.job_scheduled", minute="*/15", hour="*",
            kwargs={"job": JobRun.Job.OVERDUE_CHECK},
            description="Email ops the jobs that have not succeeded since their schedule was due.",
        ),
        DefaultSchedule(
            name="Recovery sweep", task=RECOVERY_TASK, minute="*", hour="*", kwargs={},
            description="Send again the runs whose task was lost or never sent, take over those whose worker "
            "died, catch up scoring runs, and move the nightly chains on. Records no run of its own; what it "
            "recovers is logged.",
        ),
    ]  # fmt: skip


@transaction.atomic
def schedules_seed() -> list[str]:
    """Create the default schedules that do not exist yet (by name); returns the names created."""
    created = []
    for default in schedules_default():
        if PeriodicTask.objects.filter(name=default.name).exists():
            continue
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=default.minute, hour=default.hour, day_of_week="*", day_of_month="*", month_of_year="*",
            timezone=settings.TIME_ZONE,
        )  # fmt: skip
        PeriodicTask.objects.create(
            name=default.name, task=default.task, crontab=crontab, kwargs=json.dumps(default.kwargs),
            description=default.description,
        )  # fmt: skip
        created.append(default.name)
    return created
