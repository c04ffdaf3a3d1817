"""Default schedules seeded into django-celery-beat without overwriting what staff changed, and the task
a schedule starts: a recorded run, or a skipped one while the job is under way."""

import base64
import importlib
import io
import json
import threading
import time

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from leadengine.models import JobRun
from leadengine.services.schedules import schedules_seed
from leadengine.tasks import job_scheduled
from leads.models import Lead
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import owner, scored_home
from tests.workers import database_url

NIGHTLY = ("leadengine.job_scheduled", {"job": "nightly_run"})


def schedules() -> dict:
    return {
        task.name: (task.task, json.loads(task.kwargs), task.crontab.hour, task.crontab.minute, task.enabled)
        for task in PeriodicTask.objects.select_related("crontab").exclude(name__startswith="celery.")
    }


def test_seeding_creates_one_nightly_run_and_nothing_per_trade(roofing):
    created = schedules_seed()

    assert created == [
        "Nightly run",
        "Webhook delivery",
        "Lead expiry",
        "Waitlist offer expiry",
        "Lead email digest",
        "Daily report",
        "Lead quality evaluation",
        "Month close",
        "Overdue job check",
        "Recovery sweep",
    ]
    assert schedules() == {
        "Nightly run": (*NIGHTLY, "2", "0", True),
        "Webhook delivery": ("leadengine.job_scheduled", {"job": "webhook_delivery"}, "*", "*/2", True),
        "Lead expiry": ("leadengine.job_scheduled", {"job": "lead_expiry"}, "*", "5", True),
        "Waitlist offer expiry": ("leadengine.job_scheduled", {"job": "offer_expiry"}, "*", "10", True),
        "Lead email digest": ("leadengine.job_scheduled", {"job": "email_digest"}, "7", "0", True),
        "Daily report": ("leadengine.job_scheduled", {"job": "daily_report"}, "6", "30", True),
        "Lead quality evaluation": ("leadengine.job_scheduled", {"job": "evaluation"}, "5", "0", True),
        "Month close": ("leadengine.job_scheduled", {"job": "month_close"}, "*", "20", True),
        "Overdue job check": ("leadengine.job_scheduled", {"job": "overdue_check"}, "*", "*/15", True),
        "Recovery sweep": ("leadengine.jobs_recover", {}, "*", "*", True),
    }


def test_seeding_again_keeps_what_staff_changed_in_the_admin(roofing):
    schedules_seed()
    edited = PeriodicTask.objects.get(name="Nightly run")
    edited.crontab = CrontabSchedule.objects.create(minute="30", hour="4", timezone="UTC")
    edited.enabled = False
    edited.save()
    PeriodicTask.objects.filter(name="Daily report").delete()

    out = io.StringIO()
    call_command("seed_schedules", stdout=out)

    assert out.getvalue() == "created: Daily report\n1 schedule created\n"
    assert {name: schedule for name, schedule in schedules().items() if name in ("Nightly run", "Daily report")} == {
        "Nightly run": (*NIGHTLY, "4", "30", False),
        "Daily report": ("leadengine.job_scheduled", {"job": "daily_report"}, "6", "30", True),
    }
    assert schedules_seed() == []


def test_a_scheduled_run_is_recorded_and_does_its_work(roofing):
    acme = owner(roofing, "80202")
    scored_home(roofing, score=90, zip_code="80202")

    status = job_scheduled.apply(kwargs={"job": "lead_generation", "trade": "roofing"}).get()

    run = JobRun.objects.get()
    assert (status, run.status, run.requested_by, run.counts) == (
        "succeeded", "succeeded", None, {"leads_generated": 1, "leads_routed": 1, "leads_in_pool": 0},
    )  # fmt: skip
    assert Lead.objects.get().contractor == acme


def test_a_scheduled_run_while_one_is_under_way_is_recorded_skipped_and_does_nothing(roofing):
    scored_home(roofing, score=90, zip_code="80203")
    busy = JobRun.objects.create(job="lead_generation", trade=roofing, queued_at=timezone.now())

    status = job_scheduled.apply(kwargs={"job": "lead_generation", "trade": "roofing"}).get()

    skipped = JobRun.objects.exclude(pk=busy.pk).get()
    assert (status, skipped.status, skipped.error) == (
        "skipped", "skipped", f"Run {busy.pk} of the job was still under way.",
    )  # fmt: skip
    assert skipped.started_at == skipped.finished_at
    assert Lead.objects.count() == 0


def test_staff_run_a_schedule_now_from_the_admin(roofing, admin_client, idle_queue):
    schedules_seed()
    task = PeriodicTask.objects.get(name="Nightly run")

    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "run_tasks", "_selected_action": [task.pk]},
        follow=True,
    )

    assert "1 task was successfully run" in response.content.decode()
    (message,) = idle_queue()
    body = json.loads(base64.b64decode(message["body"]))
    assert (message["headers"]["task"], body[1]) == (
        "leadengine.job_scheduled",
        {"job": "nightly_run"},
    )
    assert message["headers"]["periodic_task_name"] == "Nightly run"


@pytest.mark.django_db(transaction=True)
def test_two_copies_of_a_schedule_started_together_run_once_and_the_other_is_skipped(roofing):
    """Two beats (or a beat and staff's "run now") start the same job at once, on two connections: the
    first holds the job while its work waits on a lock this test holds; the second is recorded skipped."""
    owner(roofing, "80202")
    for score in (90, 80):
        scored_home(roofing, score=score, zip_code="80202")
    results: dict[str, str] = {}

    def start(name: str) -> None:
        try:
            results[name] = job_scheduled.apply(kwargs={"job": "lead_generation", "trade": "roofing"}).get()
        finally:
            connection.close()

    with psycopg.connect(database_url(), autocommit=False) as holder:
        holder.execute(f"LOCK TABLE {Lead._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")  # generation waits
        first = threading.Thread(target=start, args=("first",))
        first.start()
        deadline = time.monotonic() + 30
        while not JobRun.objects.filter(status="running").exists():
            assert time.monotonic() < deadline, "the first copy never started"
            time.sleep(0.05)
        second = threading.Thread(target=start, args=("second",))
        second.start()
        second.join(timeout=30)
        holder.rollback()  # the first copy's work goes on
    first.join(timeout=30)

    assert results == {"first": "succeeded", "second": "skipped"}
    ran, skipped = JobRun.objects.order_by("pk")
    assert (ran.status, ran.counts["leads_generated"]) == ("succeeded", 2)
    assert (skipped.status, skipped.error) == ("skipped", f"Run {ran.pk} of the job was still under way.")
    assert Lead.objects.count() == 2


def _old_schedule(name: str, kwargs: dict, hour: str) -> PeriodicTask:
    crontab, _ = CrontabSchedule.objects.get_or_create(minute="0", hour=hour, timezone="UTC")
    return PeriodicTask.objects.create(
        name=name, task="leadengine.job_scheduled", crontab=crontab, kwargs=json.dumps(kwargs)
    )


def test_the_migration_disables_the_per_trade_defaults_of_before_and_starts_the_nightly_run_in_their_place(roofing):
    from django.apps import apps

    migration = importlib.import_module("leadengine.migrations.0008_nightly_run_replaces_per_trade_schedules")
    _old_schedule("Nightly scoring: roofing", {"job": "scoring", "trade": "roofing"}, "2")
    _old_schedule("Lead generation: roofing", {"job": "lead_generation", "trade": "roofing"}, "3")
    _old_schedule("Nightly scoring: solar", {"job": "scoring", "trade": "solar"}, "4")  # re-timed by staff
    _old_schedule("Lead generation: extra", {"job": "lead_expiry"}, "3")  # staff's own, another job: kept
    _old_schedule("Scoring: windows", {"job": "scoring", "trade": "windows"}, "1")  # staff's own: kept

    migration.forwards(apps, None)
    migration.forwards(apps, None)  # a second time changes nothing

    assert {name: (hour, enabled) for name, (_task, _kwargs, hour, _minute, enabled) in schedules().items()} == {
        "Nightly scoring: roofing": ("2", False),
        "Lead generation: roofing": ("3", False),
        "Nightly scoring: solar": ("4", False),
        "Lead generation: extra": ("3", True),
        "Scoring: windows": ("1", True),
        "Nightly run": ("2", True),
    }
    assert schedules()["Nightly run"] == (*NIGHTLY, "2", "0", True)
    assert "Nightly run" not in schedules_seed()  # seeding adds the other defaults, never the old ones again
    assert not PeriodicTask.objects.filter(name__startswith="Nightly scoring: ", enabled=True).exists()


def test_the_migration_leaves_a_database_without_the_old_defaults_to_seeding(roofing):
    from django.apps import apps

    migration = importlib.import_module("leadengine.migrations.0008_nightly_run_replaces_per_trade_schedules")
    migration.forwards(apps, None)

    assert schedules() == {}
    assert schedules_seed()[0] == "Nightly run"


def test_staff_create_the_missing_default_schedules_from_the_admin(roofing, admin_client):
    schedules_seed()
    PeriodicTask.objects.filter(name="Nightly run").delete()  # by mistake
    PeriodicTask.objects.filter(name="Daily report").update(enabled=False)  # on purpose: stays so

    listing = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert 'href="/admin/django_celery_beat/periodictask/seed/"' in listing
    page = admin_client.get("/admin/django_celery_beat/periodictask/seed/").content.decode()
    assert "Missing: Nightly run." in page
    response = admin_client.post("/admin/django_celery_beat/periodictask/seed/", follow=True)

    assert "Created: Nightly run." in response.content.decode()
    assert schedules()["Nightly run"] == (*NIGHTLY, "2", "0", True)
    assert schedules()["Daily report"][-1] is False
    again = admin_client.post("/admin/django_celery_beat/periodictask/seed/", follow=True)
    assert "Every default schedule exists already." in again.content.decode()


def test_a_role_that_may_not_add_schedules_cannot_seed_them(roofing, client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)

    assert client.get("/admin/django_celery_beat/periodictask/seed/").status_code == 403
    assert client.post("/admin/django_celery_beat/periodictask/seed/").status_code == 403
    assert not PeriodicTask.objects.exists()
