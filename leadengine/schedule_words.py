"""A schedule in words, for staff reading django-celery-beat's schedules: "every day at 02:00 America/Denver"
beside "0 2 * * *". Only the forms that can be said exactly are phrased (those of the default schedules,
leadengine.services.schedules, and the usual variations staff make of them: other times, weekdays, a day of
the month, a few times a day, intervals). Any other form gives None and the cron text is shown alone: a wrong
sentence about when a job runs is worse than none.

Crontab fields are read as Celery reads them: day_of_week 0 is Sunday, names ("mon", "friday") allowed;
a schedule restricted by both day of month and day of week runs only on days that match both (Celery),
not either (cron), so such a schedule is left unphrased rather than risk the reader's cron habit.
"""

from __future__ import annotations

import re
from typing import Any

from core.text import counted

WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
WEEKDAY_NUMBERS = {name[:3].lower(): number for number, name in enumerate(WEEKDAYS)}
MONDAY_FIRST = [1, 2, 3, 4, 5, 6, 0]
# A day of the month past the 28th is not in every month: "on the 30th of each month" would be wrong in February.
LAST_DAY_IN_EVERY_MONTH = 28
# More fixed times than this in a day read better as the cron text.
MOST_TIMES = 6
INTERVAL_NOUNS = {"days": "day", "hours": "hour", "minutes": "minute", "seconds": "second",
                  "microseconds": "microsecond"}  # fmt: skip


def _and(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _number(text: str, low: int, high: int) -> int | None:
    return int(text) if re.fullmatch(r"[0-9]{1,2}", text) and low <= int(text) <= high else None


def _numbers(text: str, low: int, high: int) -> list[int] | None:
    """The values of a comma-separated list of numbers ("0", "6,18"), sorted; None for any other form."""
    values = [_number(item, low, high) for item in text.split(",")]
    if any(value is None for value in values):
        return None
    return sorted({value for value in values if value is not None})


def _step(text: str, period: int) -> int | None:
    """N for "*/N" (and 1 for "*") when N divides the period, so that the gap is N everywhere, across the hour
    or the day too; None otherwise ("*/7" minutes leaves 4 minutes between :56 and :00)."""
    if text == "*":
        return 1
    match = re.fullmatch(r"\*/([0-9]{1,2})", text)
    if match is None:
        return None
    step = int(match.group(1))
    return step if 0 < step < period and period % step == 0 else None


def _weekday(text: str) -> int | None:
    if text.isdigit():
        return _number(text, 0, 6)  # Celery refuses 7, which cron reads as Sunday
    return WEEKDAY_NUMBERS.get(text[:3].lower()) if text.isalpha() and len(text) >= 3 else None


def _weekdays(text: str) -> set[int] | None:
    """The days of a day_of_week field ("1", "1-5", "mon,thu", "mon-fri"); None for a form not read here
    (steps, and ranges that wrap past Saturday)."""
    days: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        start, end = _weekday(first), _weekday(last) if dash else _weekday(first)
        if start is None or end is None or end < start:
            return None
        days.update(range(start, end + 1))
    return days


def _weekdays_words(days: set[int]) -> str:
    """ "Mondays", "Mondays and Thursdays", "Monday to Friday" (three days or more in a row, Monday first)."""
    order = [day for day in MONDAY_FIRST if day in days]
    positions = [MONDAY_FIRST.index(day) for day in order]
    if len(order) >= 3 and positions == list(range(positions[0], positions[0] + len(order))):
        return f"{WEEKDAYS[order[0]]} to {WEEKDAYS[order[-1]]}"
    return _and([f"{WEEKDAYS[day]}s" for day in order])


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _days_words(day_of_week: str, day_of_month: str) -> str | None:
    """The days the schedule runs on: "" for every day, "Mondays", "on the 1st of each month"; None when
    the form is not phrased."""
    if day_of_week == "*" and day_of_month == "*":
        return ""
    if day_of_month == "*":
        weekdays = _weekdays(day_of_week)
        if weekdays is None:
            return None
        return "" if len(weekdays) == len(WEEKDAYS) else _weekdays_words(weekdays)
    if day_of_week == "*":
        month_days = _numbers(day_of_month, 1, LAST_DAY_IN_EVERY_MONTH)
        if month_days is None:
            return None
        return f"on the {_and([_ordinal(day) for day in month_days])} of each month"
    return None


def _within_hour_words(minute: str) -> str | None:
    """An hour field of "*": "every minute", "every 15 minutes", "every hour at minute 20"."""
    step = _step(minute, 60)
    if step is not None:
        return "every minute" if step == 1 else f"every {step} minutes"
    minutes = _numbers(minute, 0, 59)
    if minutes is None:
        return None
    if len(minutes) == 1:
        return f"every hour at minute {minutes[0]}"
    return f"every hour at minutes {_and([str(value) for value in minutes])}"


def _times_words(minute: str, hour: str, time_zone: str) -> str | None:
    """Fixed hours: "at 02:00 UTC", "at 06:00 and 18:00 UTC", "every 2 hours from 00:05 UTC", "every hour from
    09:00 to 17:00 UTC"."""
    minutes = _numbers(minute, 0, 59)
    if minutes is None:
        return None
    step = _step(hour, 24)
    match = re.fullmatch(r"([0-9]{1,2})-([0-9]{1,2})", hour)
    if len(minutes) == 1 and step is not None and step > 1:
        return f"every {step} hours from 00:{minutes[0]:02d} {time_zone}"
    if len(minutes) == 1 and match is not None:
        first, last = _number(match.group(1), 0, 23), _number(match.group(2), 0, 23)
        if first is not None and last is not None and first < last:
            return f"every hour from {first:02d}:{minutes[0]:02d} to {last:02d}:{minutes[0]:02d} {time_zone}"
        return None
    hours = _numbers(hour, 0, 23)
    if hours is None or len(hours) * len(minutes) > MOST_TIMES:
        return None
    return f"at {_and([f'{h:02d}:{m:02d}' for h in hours for m in minutes])} {time_zone}"


def crontab_words(
    *,
    minute: str,
    hour: str,
    day_of_week: str = "*",
    day_of_month: str = "*",
    month_of_year: str = "*",
    time_zone: str = "UTC",
) -> str | None:
    """The crontab in words ("every day at 02:00 America/Denver", "every hour at minute 20", "every 15
    minutes", "Mondays at 06:30 UTC"), or None when its form is not one phrased here (see the module)."""
    minute, hour, day_of_week, day_of_month, month_of_year = (
        re.sub(r"\s+", "", field) for field in (minute, hour, day_of_week, day_of_month, month_of_year)
    )
    if month_of_year != "*":
        return None
    days = _days_words(day_of_week, day_of_month)
    if days is None:
        return None
    if hour == "*":
        within_hour = _within_hour_words(minute)
        if within_hour is None:
            return None
        # The days begin and end at midnight in the schedule's time zone: then it matters.
        return f"{within_hour}, {days} ({time_zone})" if days else within_hour
    times = _times_words(minute, hour, time_zone)
    if times is None:
        return None
    at_fixed_times = times.startswith("at ")
    if not days:
        return f"every day {times}" if at_fixed_times else times
    return f"{days} {times}" if at_fixed_times else f"{days}, {times}"


def interval_words(*, every: int, period: str) -> str | None:
    """ "every hour", "every 30 seconds"; None for a period django-celery-beat does not have or no interval."""
    noun = INTERVAL_NOUNS.get(period)
    if noun is None or every < 1:
        return None
    return f"every {noun}" if every == 1 else f"every {counted(every, noun)}"


def periodic_task_words(task: Any) -> str | None:
    """A django-celery-beat PeriodicTask's schedule in words: its crontab's or its interval's; None for the
    other kinds (solar, clocked) and for a form not phrased."""
    if task.crontab is not None:
        crontab = task.crontab
        return crontab_words(
            minute=crontab.minute,
            hour=crontab.hour,
            day_of_week=crontab.day_of_week,
            day_of_month=crontab.day_of_month,
            month_of_year=crontab.month_of_year,
            time_zone=str(crontab.timezone),
        )
    if task.interval is not None:
        return interval_words(every=task.interval.every, period=task.interval.period)
    return None


def crontab_text(crontab: Any) -> str:
    """The crontab's five fields in cron's order (minute, hour, day of month, month, day of week): "0 2 * * *"."""
    fields = (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week)
    return " ".join(re.sub(r"\s+", "", field) for field in fields)
