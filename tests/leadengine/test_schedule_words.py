"""Schedules in words: each crontab form the schedules use or staff make of them, intervals, and no sentence
at all (the cron text alone) for a form that cannot be said exactly."""

import json
import re

import pytest
from celery.schedules import crontab
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from leadengine.schedule_words import WEEKDAYS, _weekdays, crontab_words, interval_words, periodic_task_words
from leadengine.services.schedules import schedules_default, schedules_seed


@pytest.mark.parametrize(
    ("minute", "hour", "words"),
    [
        ("0", "2", "every day at 02:00 America/Denver"),
        ("30", "6", "every day at 06:30 America/Denver"),
        ("20", "*", "every hour at minute 20"),
        ("0", "*", "every hour at minute 0"),
        ("0,30", "*", "every hour at minutes 0 and 30"),
        ("*/15", "*", "every 15 minutes"),
        ("*/2", "*", "every 2 minutes"),
        ("*/1", "*", "every minute"),
        ("*", "*", "every minute"),
        ("0", "6,18", "every day at 06:00 and 18:00 America/Denver"),
        ("15", "*/6", "every 6 hours from 00:15 America/Denver"),
        ("5", "9-17", "every hour from 09:05 to 17:05 America/Denver"),
        (" 0 ", " 02 ", "every day at 02:00 America/Denver"),
    ],
)
def test_a_crontab_within_every_day_in_words(minute, hour, words):
    assert crontab_words(minute=minute, hour=hour, time_zone="America/Denver") == words


@pytest.mark.parametrize(
    ("day_of_week", "words"),
    [
        ("1", "Mondays at 06:30 UTC"),
        ("mon", "Mondays at 06:30 UTC"),
        ("1,4", "Mondays and Thursdays at 06:30 UTC"),
        ("1,3,5", "Mondays, Wednesdays and Fridays at 06:30 UTC"),
        ("1-5", "Monday to Friday at 06:30 UTC"),
        ("mon-fri", "Monday to Friday at 06:30 UTC"),
        ("0,6", "Saturdays and Sundays at 06:30 UTC"),
        ("5,6,0", "Friday to Sunday at 06:30 UTC"),
        ("0", "Sundays at 06:30 UTC"),
        ("0-6", "every day at 06:30 UTC"),
    ],
)
def test_a_crontab_on_some_weekdays_in_words(day_of_week, words):
    assert crontab_words(minute="30", hour="6", day_of_week=day_of_week) == words


@pytest.mark.parametrize("day_of_week", ["0", "1", "6", "1-5", "mon,thu", "sat", "0,6", "tue-thu"])
def test_the_weekdays_named_are_the_days_celery_runs_on(day_of_week):
    """Celery's day numbers (0 is Sunday), read by Celery itself."""
    assert _weekdays(day_of_week) == crontab(day_of_week=day_of_week).day_of_week
    assert WEEKDAYS[0] == "Sunday"


def test_a_crontab_on_days_of_the_month_and_within_the_hour_on_some_days():
    assert crontab_words(minute="0", hour="0", day_of_month="1") == "on the 1st of each month at 00:00 UTC"
    assert crontab_words(minute="0", hour="3", day_of_month="2,15,23") == (
        "on the 2nd, 15th and 23rd of each month at 03:00 UTC"
    )
    assert crontab_words(minute="*/15", hour="*", day_of_week="1-5", time_zone="America/Denver") == (
        "every 15 minutes, Monday to Friday (America/Denver)"
    )
    assert crontab_words(minute="0", hour="*/6", day_of_week="1") == "Mondays, every 6 hours from 00:00 UTC"


@pytest.mark.parametrize(
    "fields",
    [
        {"minute": "*/7", "hour": "*"},  # 4 minutes between :56 and :00: not "every 7 minutes"
        {"minute": "*/5", "hour": "*/5"},
        {"minute": "0", "hour": "*/5"},  # 4 hours between 20:00 and 00:00
        {"minute": "*", "hour": "2"},
        {"minute": "*/15", "hour": "9-17"},
        {"minute": "0", "hour": "1-23/2"},
        {"minute": "0", "hour": "17-9"},
        {"minute": "0", "hour": "24"},
        {"minute": "60", "hour": "*"},
        {"minute": "0", "hour": "2", "month_of_year": "1"},
        {"minute": "0", "hour": "2", "day_of_month": "31"},  # not in every month
        {"minute": "0", "hour": "2", "day_of_month": "1", "day_of_week": "1"},  # Celery: both; cron: either
        {"minute": "0", "hour": "2", "day_of_week": "7"},  # Sunday in cron, refused by Celery
        {"minute": "0", "hour": "2", "day_of_week": "sat-mon"},
        {"minute": "0", "hour": "2", "day_of_week": "*/2"},
        {"minute": "0", "hour": "2", "day_of_week": "xyz"},
        {"minute": "0,15,30,45", "hour": "6,18"},  # eight times a day: the cron text says it better
        {"minute": "", "hour": "*"},
    ],
)
def test_a_form_not_phrased_gives_no_sentence(fields):
    assert crontab_words(**fields) is None


@pytest.mark.parametrize(
    ("every", "period", "words"),
    [
        (1, "days", "every day"),
        (1, "hours", "every hour"),
        (2, "hours", "every 2 hours"),
        (15, "minutes", "every 15 minutes"),
        (30, "seconds", "every 30 seconds"),
        (1500, "seconds", "every 1,500 seconds"),
        (0, "seconds", None),
        (5, "fortnights", None),
    ],
)
def test_an_interval_in_words(every, period, words):
    assert interval_words(every=every, period=period) == words


@pytest.mark.django_db
def test_every_default_schedule_is_in_words(settings):
    schedules_seed()
    tasks = {task.name: task for task in PeriodicTask.objects.select_related("crontab", "interval")}
    zone = settings.TIME_ZONE

    assert {default.name: periodic_task_words(tasks[default.name]) for default in schedules_default()} == {
        "Nightly run": f"every day at 02:00 {zone}",
        "Webhook delivery": "every 2 minutes",
        "Lead expiry": "every hour at minute 5",
        "Waitlist offer expiry": "every hour at minute 10",
        "Lead email digest": f"every day at 07:00 {zone}",
        "Daily report": f"every day at 06:30 {zone}",
        "Lead quality evaluation": f"every day at 05:00 {zone}",
        "Month close": "every hour at minute 20",
        "Overdue job check": "every 15 minutes",
        "Recovery sweep": "every minute",
    }


@pytest.mark.django_db
def test_a_periodic_task_in_words_by_its_kind_of_schedule():
    denver = CrontabSchedule.objects.create(minute="30", hour="6", day_of_week="1", timezone="America/Denver")
    every = IntervalSchedule.objects.create(every=90, period=IntervalSchedule.SECONDS)
    solar = SolarSchedule.objects.create(event="sunrise", latitude=40, longitude=-105)
    clocked = ClockedSchedule.objects.create(clocked_time=timezone.now())

    def task(name, **schedule):
        return PeriodicTask.objects.create(name=name, task="leadengine.jobs_recover", **schedule)

    assert periodic_task_words(task("a", crontab=denver)) == "Mondays at 06:30 America/Denver"
    assert periodic_task_words(task("b", interval=every)) == "every 90 seconds"
    assert periodic_task_words(task("c", solar=solar)) is None
    assert periodic_task_words(task("d", clocked=clocked, one_off=True)) is None


SCHEDULES = "/admin/django_celery_beat/periodictask/"


@pytest.mark.django_db
def test_the_admin_lists_no_solar_or_clocked_schedules(admin_client):
    index = admin_client.get("/admin/").content.decode()

    assert "Solar events" not in index
    assert "solarschedule" not in index
    assert "Clocked" not in index
    assert "clockedschedule" not in index
    for kept in (
        "/admin/django_celery_beat/crontabschedule/",
        "/admin/django_celery_beat/intervalschedule/",
        SCHEDULES,
    ):
        assert f'href="{kept}"' in index
    assert admin_client.get("/admin/django_celery_beat/solarschedule/").status_code == 404
    assert admin_client.get("/admin/django_celery_beat/clockedschedule/add/").status_code == 404


@pytest.mark.django_db
def test_the_schedules_list_shows_each_in_words_beside_its_cron_text(admin_client, settings):
    schedules_seed()
    odd = CrontabSchedule.objects.create(minute="0", hour="2", day_of_month="1", day_of_week="1", timezone="UTC")
    PeriodicTask.objects.create(name="First Monday", task="leadengine.jobs_recover", crontab=odd)
    every = IntervalSchedule.objects.create(every=90, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="Often", task="leadengine.jobs_recover", interval=every)

    page = admin_client.get(SCHEDULES).content.decode()

    def cell(name: str) -> str:
        row = re.search(rf"<tr>(?:(?!</tr>).)*?>{name}</a>.*?</tr>", page, re.S).group(0)
        return re.search(r'<td class="field-schedule">(.*?)</td>', row, re.S).group(1)

    zone = settings.TIME_ZONE
    assert cell("Nightly run") == f'every day at 02:00 {zone} <span class="schedule-cron">0 2 * * *</span>'
    assert cell("Overdue job check") == 'every 15 minutes <span class="schedule-cron">*/15 * * * *</span>'
    assert cell("First Monday") == "0 2 1 * 1 (m/h/dM/MY/d) UTC"  # not phrased: the cron text alone
    assert cell("Often") == "every 90 seconds"


@pytest.mark.django_db
def test_a_schedules_page_offers_crontabs_in_words_and_no_solar_or_clocked_field(admin_client):
    schedules_seed()
    nightly = PeriodicTask.objects.get(name="Nightly run")
    odd = CrontabSchedule.objects.create(minute="*/7", hour="*", timezone="UTC")

    page = admin_client.get(f"{SCHEDULES}{nightly.pk}/change/").content.decode()

    zone = str(nightly.crontab.timezone)
    assert f'<option value="{nightly.crontab_id}" selected>every day at 02:00 {zone} (0 2 * * *)</option>' in page
    assert f'<option value="{odd.pk}">*/7 * * * * (m/h/dM/MY/d) UTC</option>' in page
    readable = json.loads(
        re.search(r'<script id="readable-crontabs" type="application/json">(.*?)</script>', page).group(1)
    )
    assert readable[str(nightly.crontab_id)] == f"every day at 02:00 {zone}"
    assert str(odd.pk) not in readable  # no sentence rather than a wrong one
    assert 'name="solar"' not in page
    assert 'name="clocked"' not in page
    assert 'name="interval"' in page
    assert 'name="crontab"' in page


@pytest.mark.django_db
def test_a_schedule_made_with_a_solar_event_still_shows_it(admin_client):
    solar = SolarSchedule.objects.create(event="sunrise", latitude=40, longitude=-105)
    task = PeriodicTask.objects.create(name="At sunrise", task="leadengine.jobs_recover", solar=solar)

    page = admin_client.get(f"{SCHEDULES}{task.pk}/change/").content.decode()

    assert 'name="solar"' in page
    assert 'name="clocked"' not in page
