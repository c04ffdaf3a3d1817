import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from scoring.models import ZipCode


def pytest_configure(config):
    """With the embedded PostgreSQL (no DATABASE_URL), each test session gets its own database, so
    that two sessions on one checkout never drop each other's. Test users' passwords are hashed with a
    fast hasher: the real one takes 0.4 s per password by design, which hundreds of test users multiply."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
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

    cache.clear()
    yield
    cache.clear()


ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The test database as a DATABASE_URL for a worker process."""
    db = connection.settings_dict
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    if (db["HOST"] or "").startswith("/"):
        return f"postgres://{user}{password}@/{db['NAME']}?host={quote(db['HOST'])}&port={db['PORT'] or 5432}"
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(request):
    """A real Celery worker (a child process, two processes) on the real Redis broker and the test
    database, on a queue of its own so no other worker takes the tasks; for transaction=True tests.
    It may log no traceback but one containing the test module's WORKER_MAY_LOG (a fault the test made)."""
    from leadengine.celery import app as celery_app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "leadengine.settings",
    }
    command = [sys.executable, "-m", "celery", "-A", "leadengine", "worker", "-Q", queue, "-c", "2",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    default_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    yield process
    celery_app.conf.task_default_queue = default_queue
    process.terminate()
    output = process.communicate(timeout=30)[0].decode()
    allowed = getattr(request.module, "WORKER_MAY_LOG", None)
    assert "Traceback" not in output or (allowed is not None and allowed in output), output


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
