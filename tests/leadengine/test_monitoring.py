"""Overdue jobs (a schedule was due and no run of its job has succeeded since) flagged in the admin and
emailed to ops once, and the daily report."""

import base64
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from leadengine.models import JobRun
from leadengine.selectors import crontab_previous, jobs_overdue, schedule_states
from leadengine.services.jobs import job_run_execute
from leadengine.services.monitoring import daily_report_send, overdue_check
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_accept, lead_convert, leads_deliver
from leads.services.routing import leads_route
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import owner, scored_home

DENVER = ZoneInfo("America/Denver")
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=DENVER)  # a Wednesday


def cron(minute="*", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", zone="America/Denver"):
    return CrontabSchedule(
        minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month, month_of_year=month_of_year,
        timezone=zone,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (cron(minute="*/2"), dt.datetime(2026, 11, 25, 12, 0)),  # due this very minute
        (cron(minute="5"), dt.datetime(2026, 11, 25, 11, 5)),
        (cron(minute="0", hour="2"), dt.datetime(2026, 11, 25, 2, 0)),
        (cron(minute="0", hour="13"), dt.datetime(2026, 11, 24, 13, 0)),  # later today: yesterday's
        (cron(minute="0", hour="9", day_of_week="mon"), dt.datetime(2026, 11, 23, 9, 0)),
        (cron(minute="0", hour="9", day_of_week="sun"), dt.datetime(2026, 11, 22, 9, 0)),  # celery: sunday = 0
        (cron(minute="30", hour="6", day_of_month="1"), dt.datetime(2026, 11, 1, 6, 30)),
        (cron(minute="0", hour="0", day_of_month="29", month_of_year="2"), dt.datetime(2024, 2, 29, 0, 0)),
    ],
)
def test_the_last_due_time_of_a_crontab(schedule, expected):
    assert crontab_previous(schedule, NOW) == expected.replace(tzinfo=DENVER)


def test_the_last_due_time_is_read_in_the_schedules_own_time_zone():
    # 02:00 in New York is 00:00 in Denver: due today at 02:00 New York time.
    due = crontab_previous(cron(minute="0", hour="2", zone="America/New_York"), NOW)
    assert due == dt.datetime(2026, 11, 25, 2, 0, tzinfo=ZoneInfo("America/New_York"))


def test_a_crontab_that_names_no_real_day_has_no_due_time():
    assert crontab_previous(cron(minute="0", hour="0", day_of_month="31", month_of_year="2"), NOW) is None


def schedule(
    name: str,
    job: str,
    *,
    trade: str | None = None,
    enabled: bool = True,
    created: dt.datetime | None = None,
    **crontab,
) -> PeriodicTask:
    """A job schedule, created (or last edited) at `created`: by default a month before NOW and before today."""
    crontab_row, _ = CrontabSchedule.objects.get_or_create(**{"minute": "0", "hour": "*", **crontab})
    kwargs = {"job": job, **({"trade": trade} if trade else {})}
    task = PeriodicTask.objects.create(
        name=name, task="leadengine.job_scheduled", crontab=crontab_row, kwargs=json.dumps(kwargs), enabled=enabled
    )
    created = created or min(NOW, timezone.now()) - dt.timedelta(days=30)
    PeriodicTask.objects.filter(pk=task.pk).update(date_changed=created)  # update(): auto_now leaves it as given
    task.refresh_from_db()
    return task


def ran(job: str, at: dt.datetime, *, status: str = "succeeded", trade=None, error: str = "") -> JobRun:
    return JobRun.objects.create(
        job=job, trade=trade, status=status, queued_at=at, started_at=at, finished_at=at + dt.timedelta(minutes=1),
        error=error,
    )  # fmt: skip


def overdue_names(now: dt.datetime) -> list[str]:
    return [state.name for state in jobs_overdue(now=now)]


def test_a_job_is_overdue_once_its_due_time_plus_the_grace_passes_without_a_success(roofing, settings):
    settings.JOB_OVERDUE_GRACE_MINUTES = 30
    schedule("Lead expiry", "lead_expiry", minute="5", hour="*")  # due 11:05, and 12:05 (not 30 min old)
    ran("lead_expiry", dt.datetime(2026, 11, 25, 10, 5, tzinfo=DENVER))

    assert overdue_names(NOW) == ["Lead expiry"]  # 10:05's success predates 11:05's due time
    (state,) = schedule_states(now=NOW)
    assert (state.due_at, state.last_success_at) == (
        dt.datetime(2026, 11, 25, 11, 5, tzinfo=DENVER),
        dt.datetime(2026, 11, 25, 10, 6, tzinfo=DENVER),
    )

    ran("lead_expiry", dt.datetime(2026, 11, 25, 11, 5, tzinfo=DENVER))
    assert overdue_names(NOW) == []
    # 12:05's run is not overdue at 12:34, and is at 12:36 if it has not succeeded.
    assert overdue_names(NOW + dt.timedelta(minutes=34)) == []
    assert overdue_names(NOW + dt.timedelta(minutes=36)) == ["Lead expiry"]


def test_failed_and_skipped_runs_do_not_count_as_on_time(roofing):
    schedule("Lead expiry", "lead_expiry", minute="5", hour="*")
    ran("lead_expiry", dt.datetime(2026, 11, 25, 10, 5, tzinfo=DENVER))
    ran("lead_expiry", dt.datetime(2026, 11, 25, 11, 5, tzinfo=DENVER), status="failed")
    ran("lead_expiry", dt.datetime(2026, 11, 25, 11, 6, tzinfo=DENVER), status="skipped")

    assert overdue_names(NOW) == ["Lead expiry"]


def test_a_per_trade_job_is_watched_for_its_own_trade(roofing, trades):  # noqa: F811
    schedule("Nightly scoring: roofing", "scoring", trade="roofing", hour="2")
    schedule("Nightly scoring: solar", "scoring", trade="solar", hour="2")
    ran("scoring", dt.datetime(2026, 11, 25, 2, 0, tzinfo=DENVER), trade=roofing)
    ran("scoring", dt.datetime(2026, 11, 24, 2, 0, tzinfo=DENVER), trade=trades["solar"])

    assert overdue_names(NOW) == ["Nightly scoring: solar"]


def test_a_schedule_never_tried_is_not_overdue_but_one_sent_and_never_successful_is(roofing):
    task = schedule("Daily report", "daily_report", minute="30", hour="6")
    assert overdue_names(NOW) == []  # seeded today: nothing has run yet

    task.last_run_at = NOW - dt.timedelta(hours=5)  # beat sent it; no worker recorded a run
    task.save()
    assert overdue_names(NOW) == ["Daily report"]


def test_disabled_one_off_and_other_tasks_are_not_watched(roofing):
    schedule("Lead expiry", "lead_expiry", minute="5", enabled=False)
    ran("lead_expiry", dt.datetime(2026, 11, 20, 10, 5, tzinfo=DENVER))
    one_off = schedule("Offers once", "offer_expiry", minute="10")
    one_off.one_off = True
    one_off.save()
    ran("offer_expiry", dt.datetime(2026, 11, 20, 10, 5, tzinfo=DENVER))
    PeriodicTask.objects.create(
        name="Other", task="celery.backend_cleanup", crontab=CrontabSchedule.objects.first(), last_run_at=NOW
    )

    assert schedule_states(now=NOW) == []


def test_an_interval_schedule_is_overdue_an_interval_and_the_grace_after_its_last_success(roofing, settings):
    settings.JOB_OVERDUE_GRACE_MINUTES = 10
    every, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(
        name="Webhooks", task="leadengine.job_scheduled", interval=every, kwargs='{"job": "webhook_delivery"}'
    )
    PeriodicTask.objects.filter(name="Webhooks").update(date_changed=NOW - dt.timedelta(days=1))
    ran("webhook_delivery", NOW - dt.timedelta(minutes=12))  # finished 11 minutes ago

    assert overdue_names(NOW) == []
    assert overdue_names(NOW + dt.timedelta(minutes=2)) == ["Webhooks"]


def test_overdue_jobs_are_emailed_once_when_they_fall_behind_and_again_after_catching_up(roofing, settings, mailoutbox):
    settings.OPS_EMAILS = ["ops@example.com"]
    schedule("Lead expiry", "lead_expiry", minute="5", hour="*")
    ran("lead_expiry", timezone.now() - dt.timedelta(hours=3))

    def check() -> JobRun:
        return job_run_execute(run_id=JobRun.objects.create(job="overdue_check", queued_at=timezone.now()).pk)

    first = check()
    assert (first.status, first.counts) == (
        "succeeded",
        {
            "overdue": 1,
            "newly_overdue": 1,
            "emailed": True,
            "overdue_jobs": ["Lead expiry"],
            "abandoned_closed": 0,
            "requeued": 0,
        },
    )
    (mail,) = mailoutbox
    assert (mail.subject, mail.to) == ("LeadEngine: 1 job overdue", ["ops@example.com"])
    assert "- Lead expiry: due " in mail.body
    assert "; last succeeded " in mail.body

    second = check()  # still overdue: not emailed again
    assert (second.counts["overdue"], second.counts["newly_overdue"], len(mailoutbox)) == (1, 0, 1)

    ran("lead_expiry", timezone.now())
    assert check().counts == {
        "overdue": 0, "newly_overdue": 0, "emailed": False, "overdue_jobs": [], "abandoned_closed": 0, "requeued": 0,
    }  # fmt: skip

    JobRun.objects.filter(job="lead_expiry").update(finished_at=timezone.now() - dt.timedelta(hours=3))
    assert check().counts["newly_overdue"] == 1
    assert len(mailoutbox) == 2


def test_the_overdue_check_also_recovers_runs_that_can_no_longer_end_and_emails_the_failed(
    roofing, settings, mailoutbox, idle_queue
):
    """The check recovers as the sweep does (leadengine.services.recovery), should the sweep's schedule be off."""
    settings.OPS_EMAILS = ["ops@example.com"]
    settings.JOB_QUEUE_TIMEOUT_MINUTES = 3
    now = timezone.now()
    dead = JobRun.objects.create(job="scoring", trade=roofing, status="running", queued_at=now, started_at=now)
    dead_again = JobRun.objects.create(
        job="lead_generation", trade=roofing, status="running", queued_at=now, started_at=now, requeues=1
    )
    stuck = JobRun.objects.create(
        job="lead_expiry", queued_at=now - dt.timedelta(minutes=8), sent_at=now - dt.timedelta(minutes=4), requeues=1
    )
    waiting = JobRun.objects.create(job="offer_expiry", queued_at=now, sent_at=now)  # sent a moment ago: left alone

    check = job_run_execute(run_id=JobRun.objects.create(job="overdue_check", queued_at=now).pk)

    assert (check.status, check.counts["abandoned_closed"], check.counts["requeued"]) == ("succeeded", 2, 1)
    for run in (dead, dead_again, stuck, waiting):
        run.refresh_from_db()
    assert (dead.status, dead.started_at, dead.requeues, dead.error) == ("queued", None, 1, "")
    assert (dead_again.status, dead_again.error) == (
        "failed",
        "Abandoned: the worker running it stopped, again after the run was requeued.",
    )
    assert (stuck.status, stuck.error) == (
        "failed",
        "Never started: no worker took it within 3 minutes, though its task was sent twice.",
    )
    assert (waiting.status, waiting.requeues) == ("queued", 0)
    assert sorted(mail.subject for mail in mailoutbox) == [
        f"LeadEngine: expire overdue leads failed (run {stuck.pk})",
        f"LeadEngine: generate and route leads failed (run {dead_again.pk})",
    ]
    assert "queued " in next(mail.body for mail in mailoutbox if str(stuck.pk) in mail.subject)
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in idle_queue()] == [[dead.pk]]


def test_overdue_check_with_nobody_to_tell_still_records_what_it_found(roofing, settings, mailoutbox):
    settings.OPS_EMAILS = []
    schedule("Lead expiry", "lead_expiry", minute="5", hour="*")
    ran("lead_expiry", timezone.now() - dt.timedelta(hours=3))

    assert overdue_check()["overdue_jobs"] == ["Lead expiry"]
    assert mailoutbox == []


def test_staff_see_overdue_schedules_flagged_in_the_admin(roofing, admin_client):
    schedule("Lead expiry", "lead_expiry", minute="5", hour="*")
    schedule("Waitlist offer expiry", "offer_expiry", minute="10", hour="*")
    ran("lead_expiry", timezone.now() - dt.timedelta(hours=3))
    ran("offer_expiry", timezone.now())

    schedules_page = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    runs_page = admin_client.get("/admin/leadengine/jobrun/").content.decode()

    warning = "Overdue (not succeeded since due): Lead expiry. Check that beat and a worker run."
    assert warning in schedules_page
    assert warning in runs_page
    assert schedules_page.count('<strong class="status-alert">Overdue</strong>') == 1
    assert '<td class="field-on_time">Yes</td>' in schedules_page


def test_no_warning_when_every_job_is_on_time(roofing, admin_client):
    schedule("Waitlist offer expiry", "offer_expiry", minute="10", hour="*")
    ran("offer_expiry", timezone.now())

    page = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "Overdue (not succeeded since due)" not in page
    assert 'class="status-alert"' not in page


# --- The daily report ------------------------------------------------------------------------------------


def test_the_daily_report_emails_yesterdays_funnel_job_runs_and_what_needs_a_look(roofing, settings, mailoutbox):
    settings.OPS_EMAILS = ["ops@example.com"]
    acme = owner(roofing, "80202")
    for score in (95, 90, 85):
        scored_home(roofing, score=score, zip_code="80202")
    scored_home(roofing, score=80, zip_code="80203")  # nobody owns it: the pool
    leads_generate(trade=roofing)
    leads_route(trade_ids=[roofing.pk])
    held = list(Lead.objects.filter(contractor=acme).order_by("id"))
    leads_deliver(lead_ids=[lead.pk for lead in held[:2]], via="api")
    lead_accept(lead=held[0], actor="contractor")
    lead_convert(lead=held[0], actor="contractor", job_value="12000")
    # Move the day's events to yesterday, and one failed run with them.
    yesterday = timezone.now() - dt.timedelta(days=1)
    LeadEvent.objects.update(at=yesterday)
    ran("lead_expiry", yesterday, status="failed", error="boom")
    ran("offer_expiry", yesterday)

    counts = daily_report_send()

    day = timezone.localdate() - dt.timedelta(days=1)
    assert counts == {
        "day": day.isoformat(), "generated": 4, "assigned": 3, "delivered": 2, "accepted": 1, "converted": 1,
        "rejected": 0, "returned": 0, "expired": 0, "runs_failed": 1, "overdue": 0, "webhook_failed": 0,
        "emailed": True,
    }  # fmt: skip
    (mail,) = mailoutbox
    assert mail.subject == f"LeadEngine daily report, {day:%a %d %b %Y}"
    assert (
        "roofing: generated 4, assigned 3, delivered 2, accepted 1, converted 1, rejected 0, returned 0, expired 0"
        in mail.body
    )
    assert "Job runs: queued 0, running 0, succeeded 1, failed 1, skipped 0, missed 0" in mail.body
    assert "- FAILED: Expire overdue leads #" in mail.body
    assert ": boom" in mail.body
    assert "- unassigned leads in the pool: 1" in mail.body


def test_the_daily_report_counts_only_its_day(roofing, settings, mailoutbox):
    settings.OPS_EMAILS = ["ops@example.com"]
    owner(roofing, "80202")
    scored_home(roofing, score=95, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route(trade_ids=[roofing.pk])  # today: not yesterday's report

    counts = daily_report_send()

    assert (counts["generated"], counts["assigned"]) == (0, 0)
    assert daily_report_send(day=timezone.localdate())["generated"] == 1


def test_a_schedule_created_after_its_last_due_time_is_not_overdue_until_it_is_due_again(roofing, settings):
    settings.JOB_OVERDUE_GRACE_MINUTES = 30
    ran("daily_report", NOW - dt.timedelta(days=2))  # the job succeeded once, started by hand
    schedule("Daily report", "daily_report", minute="30", hour="6", created=NOW - dt.timedelta(hours=2))

    assert overdue_names(NOW) == []  # due at 06:30, created at 10:00: not due since
    assert overdue_names(NOW + dt.timedelta(days=1)) == ["Daily report"]  # 06:30 tomorrow passed, no success


def test_the_overdue_check_never_flags_itself(roofing):
    schedule("Overdue job check", "overdue_check", minute="*/15")
    ran("overdue_check", NOW - dt.timedelta(days=3), status="failed")

    (state,) = schedule_states(now=NOW)
    assert (state.name, state.overdue, state.due_at) == ("Overdue job check", False, None)
