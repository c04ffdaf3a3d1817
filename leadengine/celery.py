"""The Celery application: Redis as broker, configuration from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadengine.settings")

app = Celery("leadengine")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
