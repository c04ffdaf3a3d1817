"""The nightly run replaces the per-trade default schedules ("Nightly scoring: SLUG" at 02:00, "Lead
generation: SLUG" at 03:00): where a database has them, they are disabled, and the "Nightly run" schedule is
created in the same transaction, so scoring never runs twice in a night and no night goes without it
between this migration and the next seeding.

Disabled rather than deleted: staff may have edited them (a time, an argument), and the disabled rows keep
that visible in the admin until someone deletes them; seeding no longer names them, so nothing brings them
back. A database without them (a new one) gets its "Nightly run" from seeding, like every default.
"""

import json

from django.conf import settings
from django.db import migrations
from django.utils import timezone

OLD_DEFAULTS = {"Nightly scoring: ": "scoring", "Lead generation: ": "lead_generation"}
NIGHTLY_RUN = "Nightly run"


def _old_default(task) -> bool:
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError:
        return False
    return any(
        task.name.startswith(prefix) and isinstance(kwargs, dict) and kwargs.get("job") == job
        for prefix, job in OLD_DEFAULTS.items()
    )


def forwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    old = [task.pk for task in PeriodicTask.objects.filter(task="leadengine.job_scheduled") if _old_default(task)]
    if not old:
        return
    PeriodicTask.objects.filter(pk__in=old, enabled=True).update(enabled=False)
    if not PeriodicTask.objects.filter(name=NIGHTLY_RUN).exists():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute="0", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
        )
        PeriodicTask.objects.create(
            name=NIGHTLY_RUN, task="leadengine.job_scheduled", crontab=crontab,
            kwargs=json.dumps({"job": "nightly_run"}),
            description="Per trade with an active scoring model, a chain: score every property on the workers, "
            "then make the trade's leads and route them to ZIP owners (webhooks posted at once). A failed step "
            "stops its trade's chain only; the run's counts say how each trade's chain ended.",
        )  # fmt: skip
    # Beat reloads its schedules when this row changes (django-celery-beat's signals do it for saves).
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("leadengine", "0007_nightly_chain"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
