import os

import pytest

from scoring.models import ZipCode


def pytest_configure(config):
    """With the embedded PostgreSQL (no DATABASE_URL), each test session gets its own database, so
    that two sessions on one checkout never drop each other's."""
    if not os.environ.get("DATABASE_URL"):
        from django.conf import settings

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
def zip_codes(db):
    """The ZIP reference; reloaded when a transactional test emptied the tables."""
    if not ZipCode.objects.exists():
        from scoring.services.zip_codes import zip_codes_load

        zip_codes_load()


@pytest.fixture
def fresh_cache():
    """Django's cache (Redis: throttle counters, cached answers) emptied before and after the test."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
