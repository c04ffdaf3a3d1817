import json
import os
import uuid

import pytest

from scoring.models import ZipCode
from tests.workers import Worker


def pytest_configure(config):
    """With the embedded PostgreSQL (no DATABASE_URL), each test session gets its own database, so
    that two sessions on one checkout never drop each other's. Test users' passwords are hashed with a
    fast hasher: the real one takes 0.4 s per password by design, which hundreds of test users multiply."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Static files as development has them, whatever DEBUG the settings were read with (pytest-django turns DEBUG
    # off for the tests): plain names, files read from the apps' folders. Production's storage needs a
    # collectstatic first (its manifest), or every page that names a static file fails; tests render pages
    # without one. Production's storage and WhiteNoise's answers are tested on a real gunicorn after a real
    # collectstatic (tests/browser/test_production.py).
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True  # and STATIC_ROOT, which tests never fill, is not read at start
    if not os.environ.get("DATABASE_URL"):
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_leadengine_{os.getpid()}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Load the real US ZIP reference once into the test database, as `make run` does."""
    from scoring.services.zip_codes import zip_codes_load

    with django_db_blocker.unblock():
        zip_codes_load()


@pytest.fixture
def staff_client(client, db):
    """A client logged in as a staff superuser."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("staff", password="pw-for-tests-only", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def staff_api(db):
    """A staff user and an API client signed in as them."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    user = get_user_model().objects.create_user("ops", password="pw-for-tests-only", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    return user, client


@pytest.fixture
def zip_codes(db):
    """The ZIP reference; reloaded when a transactional test emptied the tables."""
    if not ZipCode.objects.exists():
        from scoring.services.zip_codes import zip_codes_load

        zip_codes_load()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Django's cache (Redis: throttle counters, cached answers) emptied before and after every test: a
    test's database is rolled back, so an answer cached for it must not be read by the next."""
    from django.core.cache import cache

    from contractors.services.api_keys import KEYS

    cache.clear()
    KEYS.clear()  # the API keys this process cached: their generation was in the Redis just emptied
    yield
    cache.clear()
    KEYS.clear()


@pytest.fixture
def workers(request, tmp_path):
    """Start real Celery workers (`workers(**env)`, tests/workers.py) for transaction=True tests; tasks go
    to the newest one's queue. All are stopped after the test, and may have logged no traceback but one
    containing the test module's WORKER_MAY_LOG (a fault the test made)."""
    from leadengine.celery import app as celery_app

    started: list[Worker] = []
    default_queue = celery_app.conf.task_default_queue

    def start(**env: str) -> Worker:
        worker = Worker(tmp_path / f"worker-{len(started)}.log", env)
        started.append(worker)
        celery_app.conf.task_default_queue = worker.queue
        return worker

    yield start
    celery_app.conf.task_default_queue = default_queue
    allowed = getattr(request.module, "WORKER_MAY_LOG", None)
    for worker in started:
        output = worker.stop()
        worker.forget_its_messages()
        assert "Traceback" not in output or (allowed is not None and allowed in output), output


@pytest.fixture
def worker(workers):
    """One real Celery worker (see `workers`)."""
    return workers()


@pytest.fixture
def idle_queue():
    """Tasks go to a queue of their own that no worker reads; yields a function returning the messages
    waiting there (decoded), and deletes the queue after the test."""
    from leadengine.celery import app as celery_app

    queue = f"test-idle-{uuid.uuid4().hex[:8]}"
    default_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    with celery_app.connection_for_write() as broker:
        client = broker.default_channel.client
        yield lambda: [json.loads(message) for message in client.lrange(queue, 0, -1)]
        client.delete(queue)
    celery_app.conf.task_default_queue = default_queue
