"""The API throttles count in one atomic Redis step: two processes racing at the limit get exactly the rate
between them, Retry-After is the seconds left in the window, a window rolls over, a throttle check is one
round trip (EVALSHA), and while Redis is down the throttles let everything through with one warning. Real Redis
throughout (the test's cache database, or a closed port)."""

import os
import time

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.exceptions import Throttled
from rest_framework.request import Request

from core import cache_backend
from core.api.throttling import AddressRateThrottle, AuthFailureThrottle, ClientRateThrottle
from tests.core.throttle_race import requests_allowed
from tests.racing import race_processes

CLOSED_PORT = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every connection is refused at once
LEADS = "/api/v1/leads/"


def anonymous_request(address: str = "203.0.113.7") -> Request:
    return Request(RequestFactory().get(LEADS, REMOTE_ADDR=address))


def raw_redis() -> redis.Redis:
    """A connection of the test's own to the cache's Redis, to look at and age the counters."""
    return redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])


@pytest.fixture(autouse=True)
def outages_forgotten():
    cache_backend._outages.clear()
    yield
    cache_backend._outages.clear()


# Two processes at the limit


def test_two_processes_racing_at_the_limit_get_exactly_the_rate_between_them():
    assert os.environ.get("DJANGO_SETTINGS_MODULE")  # the spawned processes set Django up from it

    allowed = race_processes(requests_allowed, [("core.api.throttling.AddressRateThrottle", "100/min", 300)] * 2)

    assert sum(allowed) == 100
    assert all(count > 0 for count in allowed), allowed  # both raced: neither was done before the other began
    key = cache.make_key("throttle:address:203.0.113.7")
    assert int(raw_redis().get(key)) == 600  # every request counted, the refused too
    assert 0 < raw_redis().pttl(key) <= 60_000


# Retry-After and the window


def test_a_new_window_starts_when_the_last_one_ends(settings):
    settings.API_ANON_RATE = "2/s"
    request = anonymous_request()

    first = [AddressRateThrottle().allow_request(request, None) for _ in range(3)]
    refused = AddressRateThrottle()
    assert refused.allow_request(request, None) is False
    wait = refused.wait()
    assert wait is not None
    assert 0 < wait <= 1
    assert Throttled(wait).wait == 1
    time.sleep(wait + 0.05)
    after = [AddressRateThrottle().allow_request(request, None) for _ in range(3)]

    assert first == [True, True, False]
    assert after == [True, True, False]


def test_each_address_and_each_key_has_a_window_of_its_own(settings):
    settings.API_ANON_RATE = "1/min"

    assert AddressRateThrottle().allow_request(anonymous_request("203.0.113.7"), None) is True
    assert AddressRateThrottle().allow_request(anonymous_request("203.0.113.7"), None) is False
    assert AddressRateThrottle().allow_request(anonymous_request("203.0.113.8"), None) is True
    assert ClientRateThrottle().allow_request(anonymous_request("203.0.113.7"), None) is True  # no key: not its


def test_refused_keys_are_counted_per_address_with_the_seconds_left(settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    failures = [AuthFailureThrottle() for _ in range(3)]

    refusals = [failure.allow_request(anonymous_request(), None) for failure in failures]

    assert refusals == [True, True, False]
    assert 59 < failures[-1].wait() <= 60
    assert AuthFailureThrottle().allow_request(anonymous_request("203.0.113.8"), None) is True


# Round trips


def test_a_throttle_check_is_one_round_trip_to_redis(settings, monkeypatch):
    settings.API_ANON_RATE = "5/min"
    request = anonymous_request()
    AddressRateThrottle().allow_request(anonymous_request("192.0.2.1"), None)  # connected, script loaded
    sent = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(connection, command, check_health=True):
        sent.append(b"".join(command) if isinstance(command, list | tuple) else command)
        return send(connection, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)

    AddressRateThrottle().allow_request(request, None)

    assert len(sent) == 1
    assert sent[0].startswith(b"*5\r\n$7\r\nEVALSHA\r\n")


# Redis down


def test_throttles_let_everything_through_while_redis_is_down_with_one_warning(settings, caplog):
    settings.CACHES = {"default": {**django_settings.CACHES["default"], "LOCATION": CLOSED_PORT}}
    settings.API_ANON_RATE = settings.API_AUTH_FAILURE_RATE = "1/min"
    request = anonymous_request()

    allowed = [AddressRateThrottle().allow_request(request, None) for _ in range(3)]
    refusals = [AuthFailureThrottle().allow_request(request, None) for _ in range(3)]

    assert allowed == refusals == [True] * 3
    assert [record.getMessage() for record in caplog.records if record.name == "core.api.throttling"] == [
        f"API throttles let requests through uncounted while Redis ({CLOSED_PORT}) is unavailable"
    ]
