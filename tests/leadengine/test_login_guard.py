"""The admin login's protection against password guessing (leadengine/security.py), through the real
/admin/login/ with the real Redis and PostgreSQL."""

import logging
import threading
import time
from io import StringIO

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from leadengine import security
from tests.racing import race

LOGIN = "/admin/login/"
PASSWORD = "correct-horse-battery"
OFFICE = "192.0.2.10"
ELSEWHERE = "198.51.100.7"
INVALID = "Please enter the correct username and password for a staff account."
ACCOUNT_LOCKED = "Too many failed logins for this account. Try again in 15 minutes."
ADDRESS_LOCKED = "Too many failed logins from this address. Try again in 15 minutes."


class CountingBackend(ModelBackend):
    """Django's usual backend, counting the password checks it is asked for, from any thread; each check
    takes `seconds` at least."""

    calls = 0
    seconds = 0.0
    _lock = threading.Lock()

    def authenticate(self, request, username=None, password=None, **kwargs):
        with CountingBackend._lock:
            CountingBackend.calls += 1
        time.sleep(CountingBackend.seconds)
        return super().authenticate(request, username=username, password=password, **kwargs)


@pytest.fixture(autouse=True)
def password_checks(settings):
    """The number of password checks made so far (CountingBackend is the only backend)."""
    settings.AUTHENTICATION_BACKENDS = [f"{__name__}.CountingBackend"]
    settings.LOGIN_FAILURES_PER_USER = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    settings.LOGIN_LOCKOUT_MINUTES = 15
    CountingBackend.calls = 0
    CountingBackend.seconds = 0.0
    return lambda: CountingBackend.calls


@pytest.fixture
def slow_password_checks():
    """Password checks as slow as production's (the real hasher takes about 0.4 s; the tests' is instant): a
    guard that only looked for a lock before the check and counted the failure after it would let every
    concurrent guess through, as django-axes does (bench/login_guard.py)."""
    CountingBackend.seconds = 0.3


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password=PASSWORD, is_staff=True)


def log_in(client, username, password, address=OFFICE):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def fail(times, username="alice", address=OFFICE):
    for attempt in range(times):
        response = log_in(Client(), username, f"wrong-{attempt}", address)
        assert response.status_code == 200
        assert INVALID in response.content.decode()


def assert_logged_in(response):
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def assert_refused(response, message):
    assert response.status_code == 200
    assert message in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def redis_ttl(key):
    return redis.Redis.from_url(django_settings.CACHE_URL).ttl(cache.make_key(key))


def test_fewer_failures_than_the_limit_still_allow_the_right_password(alice, password_checks):
    fail(4)

    assert_logged_in(log_in(Client(), "alice", PASSWORD))
    assert password_checks() == 5


def test_the_limit_of_failures_refuses_the_right_password_without_checking_it(alice, password_checks):
    fail(5)

    assert_refused(log_in(Client(), "alice", PASSWORD), ACCOUNT_LOCKED)
    assert_refused(log_in(Client(), "alice", "another-guess"), ACCOUNT_LOCKED)
    assert password_checks() == 5
    alice.refresh_from_db()
    assert alice.last_login is None


def test_the_username_is_counted_whatever_its_case_and_spacing(alice, password_checks):
    for username in ["alice", "Alice", "ALICE", " alice ", "aLiCe"]:
        fail(1, username=username)

    assert_refused(log_in(Client(), "alice", PASSWORD), ACCOUNT_LOCKED)
    assert password_checks() == 5


def test_an_unknown_username_is_locked_out_like_a_real_one(alice, password_checks):
    fail(5, username="mallory")

    assert_refused(log_in(Client(), "mallory", "guess"), ACCOUNT_LOCKED)
    assert password_checks() == 5
    assert_logged_in(log_in(Client(), "alice", PASSWORD))


def test_the_address_limit_locks_out_every_username_from_that_address(alice, settings, password_checks):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    for username in ["bob", "carol", "dave"]:
        fail(1, username=username)

    assert_refused(log_in(Client(), "alice", PASSWORD), ADDRESS_LOCKED)
    assert password_checks() == 3
    assert_logged_in(log_in(Client(), "alice", PASSWORD, address=ELSEWHERE))


def test_ipv6_addresses_in_one_64_network_share_their_failures(alice, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 2
    fail(1, username="bob", address="2001:db8::1")
    fail(1, username="carol", address="2001:db8::2")

    assert_refused(log_in(Client(), "alice", PASSWORD, address="2001:db8::ffff"), ADDRESS_LOCKED)
    assert_logged_in(log_in(Client(), "alice", PASSWORD, address="2001:db8:0:1::1"))


def test_a_forwarded_for_header_does_not_change_the_counted_address(alice, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 2
    for index, username in enumerate(["bob", "carol"]):
        response = Client().post(
            LOGIN,
            {"username": username, "password": "wrong"},
            REMOTE_ADDR=OFFICE,
            HTTP_X_FORWARDED_FOR=f"203.0.113.{index}",
        )
        assert INVALID in response.content.decode()

    response = Client().post(
        LOGIN, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR=OFFICE, HTTP_X_FORWARDED_FOR="203.0.113.99"
    )

    assert_refused(response, ADDRESS_LOCKED)


def test_behind_a_trusted_proxy_the_address_the_proxy_saw_is_counted(alice, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 2
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}  # TRUSTED_PROXIES=1
    proxy = "10.0.0.5"
    for username in ["bob", "carol"]:  # a client behind the proxy, claiming another address further out
        response = Client().post(
            LOGIN,
            {"username": username, "password": "wrong"},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7",
        )
        assert INVALID in response.content.decode()

    locked = Client().post(
        LOGIN, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    assert_refused(locked, ADDRESS_LOCKED)
    other = Client().post(
        LOGIN,
        {"username": "alice", "password": PASSWORD, "next": "/admin/"},
        REMOTE_ADDR=proxy,
        HTTP_X_FORWARDED_FOR="203.0.113.8",
    )
    assert_logged_in(other)


def test_a_success_forgets_the_usernames_failures_but_not_the_addresss(alice, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 9
    fail(4)
    assert_logged_in(log_in(Client(), "alice", PASSWORD))
    fail(4)
    # 8 failures for alice in all, over her limit of 5 had the success not forgotten them; the successes
    # themselves are not counted for the address, or the 9th failure below would not be needed.
    assert_logged_in(log_in(Client(), "alice", PASSWORD))

    fail(1, username="bob")

    assert_refused(log_in(Client(), "alice", PASSWORD), ADDRESS_LOCKED)


def test_the_lock_lasts_the_configured_minutes_from_the_failure_that_set_it(alice):
    fail(5)

    counter = security._account_counter("alice")
    assert 899 <= redis_ttl(counter.key) <= 900
    assert 899 <= redis_ttl(counter.locked_until_key) <= 900
    assert cache.get(counter.key) == 5


def test_the_lock_ends_on_time_and_refused_attempts_do_not_extend_it(alice, settings):
    settings.LOGIN_LOCKOUT_MINUTES = 2 / 60  # two seconds
    fail(5)
    locked_at = time.monotonic()

    time.sleep(max(0, locked_at + 1 - time.monotonic()))
    assert_refused(log_in(Client(), "alice", PASSWORD), ACCOUNT_LOCKED.replace("15 minutes", "1 minute"))
    time.sleep(max(0, locked_at + 2.3 - time.monotonic()))

    assert_logged_in(log_in(Client(), "alice", PASSWORD))


def test_a_login_without_a_password_is_not_counted(alice, password_checks):
    for _ in range(10):
        response = Client().post(LOGIN, {"username": "alice", "password": ""}, REMOTE_ADDR=OFFICE)
        assert response.status_code == 200

    assert password_checks() == 0
    assert_logged_in(log_in(Client(), "alice", PASSWORD))


def test_a_lockout_is_logged_with_username_and_address_but_never_the_password(alice, caplog):
    with caplog.at_level(logging.WARNING, logger="leadengine.security"):
        fail(4)
        assert caplog.records == []
        log_in(Client(), "alice", "hunter2-secret")

    assert [(record.name, record.levelname) for record in caplog.records] == [("leadengine.security", "WARNING")]
    message = caplog.records[0].getMessage()
    assert "'alice'" in message
    assert OFFICE in message
    assert "hunter2-secret" not in message


def test_the_unlock_login_command_lifts_a_lock(alice, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 5
    fail(5)
    out = StringIO()

    call_command("unlock_login", "ALICE", "--address", OFFICE, stdout=out)

    assert out.getvalue() == "Unlocked: username 'ALICE', address 192.0.2.10\n"
    assert_logged_in(log_in(Client(), "alice", PASSWORD))


def test_unlocking_a_username_that_is_not_locked_says_so(alice):
    fail(2)
    out = StringIO()

    call_command("unlock_login", "alice", stdout=out)

    assert out.getvalue() == "Not locked out; its failed logins are forgotten.\n"
    assert cache.get(security._account_counter("alice").key) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_passwords_for_one_username_check_no_more_passwords_than_the_limit(
    alice, password_checks, slow_password_checks
):
    def guess(index):
        return log_in(Client(), "alice", f"wrong-{index}").content.decode()

    pages, errors = race(guess, range(16))

    assert errors == []
    assert password_checks() == 5
    assert sum(INVALID in page for page in pages) == 5
    assert sum(ACCOUNT_LOCKED in page for page in pages) == 11
    assert cache.get(security._account_counter("alice").key) >= 5
    assert_refused(log_in(Client(), "alice", PASSWORD), ACCOUNT_LOCKED)
    assert password_checks() == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_passwords_from_one_address_check_no_more_passwords_than_its_limit(
    alice, settings, password_checks, slow_password_checks
):
    settings.LOGIN_FAILURES_PER_ADDRESS = 6

    def guess(index):
        return log_in(Client(), f"user-{index}", "wrong").content.decode()

    pages, errors = race(guess, range(14))

    assert errors == []
    assert password_checks() == 6
    assert sum(INVALID in page for page in pages) == 6
    assert sum(ADDRESS_LOCKED in page for page in pages) == 8


@pytest.mark.django_db(transaction=True)
def test_concurrent_guesses_from_addresses_walking_one_ipv6_64_check_no_more_passwords_than_its_limit(
    alice, settings, password_checks, slow_password_checks
):
    settings.LOGIN_FAILURES_PER_ADDRESS = 6

    def guess(index):
        return log_in(Client(), f"user-{index}", "wrong", address=f"2001:db8:0:7::{index + 1:x}").content.decode()

    pages, errors = race(guess, range(14))

    assert errors == []
    assert password_checks() == 6
    assert sum(INVALID in page for page in pages) == 6
    assert sum(ADDRESS_LOCKED in page for page in pages) == 8
    assert_refused(log_in(Client(), "alice", PASSWORD, address="2001:db8:0:7::abcd"), ADDRESS_LOCKED)
    assert password_checks() == 6
