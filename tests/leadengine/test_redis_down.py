"""Redis down degrades instead of breaking: the cache goes without it (misses, dropped writes, one warning
per outage), the API, the admin login and the dashboard work on PostgreSQL alone, throttles fail open and
count again once Redis is back, /readyz names what is down, and sending a task to a dead broker fails fast.
Outages are real: the cache pointed at a closed port, at a socket that never answers, or at a throw-away
redis-server killed in the test. The cache and the broker are on databases apart, so clearing one never
empties the other."""

import re
import socket
import subprocess
import time

import pytest
import redis
from celery import Celery
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from kombu.exceptions import OperationalError

from core import cache as cached_answers
from core import cache_backend
from core.cache_backend import CacheUnavailable
from leadengine.config import broker_database, redis_location
from leads.models import Lead
from tests.leads.conftest import market  # noqa: F401  (fixture)
from tests.leads.factories import api_client

CLOSED_PORT = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every connection is refused at once
LEADS = "/api/v1/leads/"


def cache_at(settings, location: str) -> None:
    """Point the default cache at `location`, with the project's backend and options (Django drops the cache
    objects already made when CACHES changes)."""
    settings.CACHES = {"default": {**django_settings.CACHES["default"], "LOCATION": location}}


def warnings_of(caplog, logger: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == logger and record.levelname == "WARNING"]


@pytest.fixture
def redis_down(settings):
    cache_at(settings, CLOSED_PORT)


@pytest.fixture(autouse=True)
def outages_forgotten():
    """Each test starts with no outage known to the process (an outage is logged once, when it starts) and
    leaves no generation bump owed to the next."""
    cache_backend._outages.clear()
    yield
    cache_backend._outages.clear()
    cached_answers._bumps_owed.clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowAwayRedis:
    """A redis-server of the test's own, without persistence, that the test may kill and start again."""

    def __init__(self):
        self.port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=0.2).ping()
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the throw-away redis-server did not start"
                time.sleep(0.05)
            else:
                return

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def throw_away_redis():
    server = ThrowAwayRedis()
    server.start()
    yield server
    server.kill()


# The cache and the broker apart


def test_the_broker_is_on_the_database_after_the_caches():
    cache_where = redis_location(django_settings.CACHE_URL, name="CACHE_URL")
    broker_where = redis_location(django_settings.CELERY_BROKER_URL, name="CELERY_BROKER_URL")

    assert broker_where[:3] == cache_where[:3]  # the same server
    assert broker_where[3] == broker_database(cache_where[3]) != cache_where[3]


def test_a_message_waiting_on_the_broker_survives_clearing_the_cache(idle_queue):
    from leadengine.celery import app

    app.send_task("leadengine.tasks.job_run", args=[1])
    cache.set("answer", 42)

    cache.clear()

    assert cache.get("answer") is None
    assert [message["headers"]["task"] for message in idle_queue()] == ["leadengine.tasks.job_run"]


# The API, the admin and the dashboard on PostgreSQL alone


def test_with_redis_down_a_contractor_lists_reads_and_accepts_its_leads(market, redis_down, caplog):  # noqa: F811
    acme, _, (first, second, _) = market
    client = api_client(acme)

    listed = client.get(LEADS)
    read = client.get(f"{LEADS}{first.pk}/")
    accepted = client.post(f"{LEADS}{first.pk}/accept/")
    profile = client.get("/api/v1/profile/")

    assert listed.status_code == 200
    assert [lead["id"] for lead in listed.json()["results"]] == [second.pk, first.pk]
    assert (read.status_code, read.json()["state"]) == (200, "delivered")
    assert (accepted.status_code, accepted.json()["state"]) == (200, "accepted")
    first.refresh_from_db()
    assert first.state == Lead.State.ACCEPTED
    assert (profile.status_code, profile.json()["usage"]["today"]) == (200, 2)  # computed, not cached
    outage_warnings = warnings_of(caplog, "core.cache")
    assert len(outage_warnings) == 1, outage_warnings  # one per outage, not one per call
    assert outage_warnings[0].startswith("Redis cache at redis://127.0.0.1:1/0 is unavailable (ConnectionError: ")


def test_with_redis_down_the_admin_login_logs_in_and_the_dashboard_renders(market, redis_down, caplog):  # noqa: F811
    get_user_model().objects.create_user("alice", password="correct-horse-battery", is_staff=True, is_superuser=True)
    client = Client()

    login = client.post("/admin/login/", {"username": "alice", "password": "correct-horse-battery", "next": "/admin/"})
    dashboard = client.get("/admin/")

    assert (login.status_code, login["Location"]) == (302, "/admin/")
    assert dashboard.status_code == 200
    html = dashboard.content.decode()
    assert '<div id="dashboard">' in html
    assert re.search(r'<span><a href="[^"]*"><b>3</b> generated</a></span>', html)  # computed from PostgreSQL
    assert warnings_of(caplog, "leadengine.security") == [
        "Login guard off while Redis is unavailable: admin logins are checked uncounted"
    ]


def test_with_redis_down_a_wrong_password_is_still_refused(db, redis_down):
    get_user_model().objects.create_user("alice", password="correct-horse-battery", is_staff=True)

    response = Client().post("/admin/login/", {"username": "alice", "password": "guess", "next": "/admin/"})

    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_unlocking_a_login_with_redis_down_says_it_could_not(db, redis_down):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="Redis is unavailable: the failed logins could not be read or forgotten"):
        call_command("unlock_login", "alice")


def test_a_redis_that_never_answers_costs_a_request_one_short_timeout(market, settings):  # noqa: F811
    acme, _, _ = market
    client = api_client(acme)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers a command
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        cache_at(settings, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")

        started = time.monotonic()
        response = client.get(LEADS)
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    # One 0.5 s timeout, then the cache leaves Redis alone; the rest of the request takes well under a second.
    assert elapsed < 2.0, elapsed


# Cached answers


def test_with_redis_down_cached_answers_are_computed_each_time(redis_down):
    computed = []

    def compute():
        computed.append(1)
        return len(computed)

    first = cached_answers.cached("answer", [1], depends_on=[cached_answers.SCORES], compute=compute)
    second = cached_answers.cached("answer", [1], depends_on=[cached_answers.SCORES], compute=compute)

    assert (first, second) == (1, 2)


def test_a_generation_bump_made_while_redis_is_down_is_made_once_it_answers(
    db, settings, django_capture_on_commit_callbacks
):
    before = cached_answers.generation(cached_answers.SCORES)
    real_cache = django_settings.CACHES
    cache_at(settings, CLOSED_PORT)

    with django_capture_on_commit_callbacks(execute=True):
        cached_answers.generation_bump(cached_answers.SCORES)  # no error: the bump is owed

    assert cached_answers._bumps_owed == {cached_answers.SCORES}
    settings.CACHES = real_cache  # Redis answers again
    assert cached_answers.generation(cached_answers.SCORES) == before + 1
    assert cached_answers._bumps_owed == set()


def test_counters_cannot_be_answered_without_redis(redis_down):
    with pytest.raises(CacheUnavailable, match=r"Redis cache at redis://127.0.0.1:1/0 is unavailable"):
        cache.incr("counter")
    assert (cache.get("counter", "missing"), cache.add("counter", 1), cache.set_many({"a": 1})) == (
        "missing",
        False,
        ["a"],
    )


# Throttles


def test_throttles_fail_open_while_redis_is_down_and_count_again_once_it_is_back(
    market,  # noqa: F811
    settings,
    throw_away_redis,
    monkeypatch,
    caplog,
):
    acme, _, _ = market
    client = api_client(acme)
    settings.API_RATE = "2/min"
    monkeypatch.setattr(cache_backend, "RETRY_SECONDS", 0.0)  # try Redis again at the next call
    cache_at(settings, throw_away_redis.url)
    assert [client.get(LEADS).status_code for _ in range(3)] == [200, 200, 429]

    throw_away_redis.kill()
    while_down = [client.get(LEADS).status_code for _ in range(4)]
    throttle_warnings = warnings_of(caplog, "core.api.throttling")
    throw_away_redis.start()  # empty: no persistence
    back = [client.get(LEADS).status_code for _ in range(3)]

    assert while_down == [200, 200, 200, 200]
    assert throttle_warnings == [
        f"API throttles let requests through uncounted while Redis ({throw_away_redis.url}) is unavailable"
    ]
    assert back == [200, 200, 429]
    cache_messages = [record.getMessage() for record in caplog.records if record.name == "core.cache"]
    assert [message.split(" (")[0].split(" after ")[0] for message in cache_messages] == [
        f"Redis cache at {throw_away_redis.url} is unavailable",
        f"Redis cache at {throw_away_redis.url} answers again",
    ]


# Readiness


def test_readyz_names_redis_when_the_cache_is_down(db, client, redis_down):
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unavailable: ConnectionError", "broker": "ok"},
    }


def test_readyz_names_the_broker_when_it_is_down(db, client, monkeypatch):
    from leadengine.celery import app

    monkeypatch.setattr(app.conf, "broker_url", CLOSED_PORT)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "ok", "broker": "unavailable: OperationalError"},
    }


# Sending tasks


def celery_with_broker(url: str) -> Celery:
    """A Celery app with the project's settings, on another broker."""
    app = Celery("broker-probe")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = url
    return app


def test_sending_a_task_to_a_refusing_broker_fails_within_seconds():
    app = celery_with_broker(CLOSED_PORT)

    started = time.monotonic()
    with pytest.raises(OperationalError, match="Connection refused"):
        app.send_task("leadengine.tasks.job_run", args=[1])

    assert time.monotonic() - started < 3.0  # three tries, 0.2 s apart: about 1 s


def test_sending_a_task_to_a_broker_that_never_answers_fails_within_seconds():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        app = celery_with_broker(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")

        started = time.monotonic()
        with pytest.raises(OperationalError, match="Timeout"):
            app.send_task("leadengine.tasks.job_run", args=[1])
        elapsed = time.monotonic() - started

    assert elapsed < 10.0, elapsed  # without the socket timeouts it waits forever


def test_an_outage_is_logged_once_however_many_calls_go_without_redis(redis_down, caplog):
    for _ in range(50):
        cache.get("anything")

    assert len(warnings_of(caplog, "core.cache")) == 1
