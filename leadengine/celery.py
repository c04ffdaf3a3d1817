"""The Celery application: Redis as broker, configuration from Django settings (CELERY_*).

Logging is Django's (LOGGING, core/logs.py) in workers and beat too: Celery's own set-up would replace the root
logger's handler with one in its format (and leave Django's beside it), so it is told not to (setup_logging).
Every line a task logs carries its task's id and name (task_prerun/task_postrun)."""

import os
from collections.abc import Mapping
from contextvars import Token
from typing import Any

from celery import Celery, signals

from core.logs import log_context_reset, log_context_set, logging_configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadengine.settings")

app = Celery("leadengine")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def logging_setup(**_) -> None:
    """A receiver of setup_logging makes Celery leave logging alone; this one applies LOGGING (as Django does):
    LOG_LEVEL, not the command's `-l`, sets the level."""
    from django.conf import settings

    logging_configure(settings.LOGGING)


# The context tokens of the tasks under way in this process, by task id (an eager task may run inside another).
_task_contexts: dict[str, Token[Mapping[str, Any]]] = {}


@signals.task_prerun.connect
def task_context_bind(task_id: str, task, **_) -> None:
    _task_contexts[task_id] = log_context_set(task_id=task_id, task_name=task.name)


@signals.task_postrun.connect
def task_context_unbind(task_id: str, **_) -> None:
    token = _task_contexts.pop(task_id, None)
    if token is not None:
        log_context_reset(token)
