"""API keys cached in each process (contractors.services.api_keys.KEYS): a warmed key costs no query, the
cache holds hashes and no secret, and every action that stops a key tells every process's cache once it
commits: in this process at once, in the others through the Redis generation (and in real, already-warmed
gunicorn processes within a second). While Redis is down every request reads PostgreSQL."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from contractors.errors import ApiAccessDenied, ApiKeyRejected, ApiKeyRevoked, ApiKeyUnknown
from contractors.models import ApiKey, Contractor
from contractors.services.api_keys import KEYS, api_key_authenticate, api_key_create, api_key_hash, api_key_revoke
from contractors.services.contractors import contractor_status_change
from core import cache as cached_answers
from core import cache_backend
from core.cache import generation
from tests.leadengine.test_redis_down import CLOSED_PORT, cache_at

PROFILE = "/api/v1/profile/"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-for-tests-only", is_staff=True)


def warmed(**owner) -> tuple[ApiKey, str]:
    """A new key, authenticated once (so cached here, its last use just written)."""
    key, raw_key = api_key_create(**owner)
    api_key_authenticate(raw_key=raw_key)
    assert len(KEYS) == 1
    return key, raw_key


def rejection(raw_key: str) -> tuple[str, int] | None:
    try:
        api_key_authenticate(raw_key=raw_key)
    except ApiKeyRejected as error:
        return error.code, error.http_status
    return None


def test_a_warmed_key_authenticates_without_a_query(acme, django_assert_num_queries):
    key, raw_key = warmed(contractor=acme)

    with django_assert_num_queries(0):
        found = api_key_authenticate(raw_key=raw_key)
        # Its contractor comes with it, as from the database.
        assert (found.pk, found.contractor_id, found.contractor.name, found.contractor.status) == (
            key.pk,
            acme.pk,
            "Acme Roofing",
            "active",
        )
        assert found.user is None


def test_a_warmed_staff_key_authenticates_its_user_without_a_query(alice, django_assert_num_queries):
    key, raw_key = warmed(user=alice)
    with django_assert_num_queries(0):
        found = api_key_authenticate(raw_key=raw_key)
        assert (found.pk, found.user.pk, found.user.username, found.user.is_staff, found.contractor) == (
            key.pk,
            alice.pk,
            "alice",
            True,
            None,
        )


def test_a_warmed_keys_api_call_reads_no_api_key(acme):
    _, raw_key = api_key_create(contractor=acme)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    with CaptureQueriesContext(connection) as cold:
        first = client.get(PROFILE)
    with CaptureQueriesContext(connection) as warm:
        second = client.get(PROFILE)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == second.json()
    key_reads = [query for query in cold.captured_queries if 'FROM "contractors_apikey"' in query["sql"]]
    assert len(key_reads) == 1
    assert [query for query in warm.captured_queries if "contractors_apikey" in query["sql"]] == []


def test_each_request_gets_instances_of_its_own(acme):
    _, raw_key = warmed(contractor=acme)
    first = api_key_authenticate(raw_key=raw_key)
    first.contractor.name = "Changed by one request"
    first.name = "changed"
    second = api_key_authenticate(raw_key=raw_key)
    assert (second.contractor.name, second.name) == ("Acme Roofing", "")
    assert second is not first
    assert second.contractor is not first.contractor


def test_the_cache_holds_the_keys_hash_and_no_secret(acme, alice):
    _, contractor_key = warmed(contractor=acme)
    _, staff_key = api_key_create(user=alice)
    api_key_authenticate(raw_key=staff_key)
    alice.refresh_from_db()
    acme.refresh_from_db()

    held = repr(list(KEYS._entries.items()))

    assert sorted(KEYS._entries) == sorted([api_key_hash(contractor_key), api_key_hash(staff_key)])
    for raw_key in (contractor_key, staff_key):
        assert raw_key not in held
        assert raw_key.split("_")[-1] not in held  # nor the key's secret part
    assert acme.webhook_secret not in held
    assert alice.password not in held
    # What a request reads of them is then read from the database (a deferred field), not from the cache.
    found = api_key_authenticate(raw_key=contractor_key)
    assert found.contractor.get_deferred_fields() == {"webhook_secret"}
    assert found.contractor.webhook_secret == acme.webhook_secret


def test_last_use_is_still_written_at_most_once_a_minute_from_the_cache(acme, django_assert_num_queries):
    key, raw_key = api_key_create(contractor=acme)
    first = timezone.now()
    api_key_authenticate(raw_key=raw_key, now=first)
    with django_assert_num_queries(0):
        api_key_authenticate(raw_key=raw_key, now=first + dt.timedelta(seconds=59))
    with django_assert_num_queries(1):  # the write alone
        api_key_authenticate(raw_key=raw_key, now=first + dt.timedelta(seconds=61))
    with django_assert_num_queries(0):
        api_key_authenticate(raw_key=raw_key, now=first + dt.timedelta(seconds=90))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first + dt.timedelta(seconds=61)


def test_an_unknown_key_is_not_cached_so_a_key_made_later_works_at_once(acme, django_assert_num_queries):
    _, raw_key = warmed(contractor=acme)
    unknown = raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B")
    for _ in range(2):
        with django_assert_num_queries(1):
            assert rejection(unknown) == ("unknown_api_key", 401)
    assert len(KEYS) == 1


def test_an_entry_is_read_again_after_its_seconds(acme, monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(KEYS, "seconds", 0)
    _, raw_key = warmed(contractor=acme)
    with django_assert_num_queries(1):
        api_key_authenticate(raw_key=raw_key)


# Every action that stops a key, each as it commits in production (its on_commit callbacks run). Each tells
# this process at once and moves the Redis generation every other process reads.


def user_saved(alice, **fields):
    for name, value in fields.items():
        setattr(alice, name, value)
    alice.save()


def admin_post(client, url: str, data: dict):
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]  # done, and redirected


def user_deactivated_in_the_admin(client, user) -> None:
    # The auth app's own change form, "Active" unticked.
    data = {"username": user.username, "is_staff": "on", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    admin_post(client, f"/admin/auth/user/{user.pk}/change/", data)


STOPS = {
    "revoked": ("contractor", lambda key, owner, client: api_key_revoke(key=key), ("revoked_api_key", 401)),
    "revoked in the admin": (
        "contractor",
        lambda key, owner, client: admin_post(
            client, "/admin/contractors/apikey/", {"action": "revoke", "_selected_action": [key.pk]}
        ),
        ("revoked_api_key", 401),
    ),
    "deleted": (
        "contractor",
        lambda key, owner, client: ApiKey.objects.get(pk=key.pk).delete(),
        ("unknown_api_key", 401),
    ),
    "contractor suspended": (
        "contractor",
        lambda key, owner, client: contractor_status_change(contractor=owner, status="suspended", reason="Unpaid."),
        ("api_access_denied", 403),
    ),
    "contractor suspended in the admin": (
        "contractor",
        lambda key, owner, client: admin_post(
            client,
            "/admin/contractors/contractor/",
            {"action": "suspend", "_selected_action": [owner.pk], "apply": "yes", "reason": "Unpaid."},
        ),
        ("api_access_denied", 403),
    ),
    "contractor deleted": (
        "contractor",
        lambda key, owner, client: Contractor.objects.get(pk=owner.pk).delete(),
        ("unknown_api_key", 401),
    ),
    "user deactivated": (
        "user",
        lambda key, owner, client: user_saved(owner, is_active=False),
        ("api_access_denied", 403),
    ),
    "user no longer staff": (
        "user",
        lambda key, owner, client: user_saved(owner, is_staff=False),
        ("api_access_denied", 403),
    ),
    "user deactivated in the admin": (
        "user",
        lambda key, owner, client: user_deactivated_in_the_admin(client, owner),
        ("api_access_denied", 403),
    ),
    "user deleted": (
        "user",
        lambda key, owner, client: get_user_model().objects.get(pk=owner.pk).delete(),
        ("unknown_api_key", 401),
    ),
}


@pytest.mark.parametrize("action", list(STOPS))
def test_every_action_that_stops_a_key_is_seen_at_once_here_and_moves_the_generation(
    action, acme, alice, staff_client, django_capture_on_commit_callbacks
):
    owner_kind, stop, refused = STOPS[action]
    owner = acme if owner_kind == "contractor" else alice
    key, raw_key = warmed(**{owner_kind: owner})
    assert rejection(raw_key) is None  # served from the cache
    before = generation("api_keys")

    with django_capture_on_commit_callbacks(execute=True):
        stop(key, owner, staff_client)

    assert rejection(raw_key) == refused
    assert generation("api_keys") > before  # every other process drops its keys at its next check


def test_a_login_or_a_key_made_does_not_drop_the_cached_keys(acme, alice, django_capture_on_commit_callbacks):
    warmed(contractor=acme)
    before = generation("api_keys")
    with django_capture_on_commit_callbacks(execute=True):
        update_last_login(None, alice)  # saves last_login alone
        api_key_create(contractor=acme)
    assert generation("api_keys") == before
    assert len(KEYS) == 1


def test_a_change_rolled_back_moves_nothing(acme, django_capture_on_commit_callbacks):
    key, _ = warmed(contractor=acme)
    before = generation("api_keys")
    with django_capture_on_commit_callbacks(execute=False):  # never committed
        api_key_revoke(key=key)
    assert generation("api_keys") == before


def test_a_revocation_elsewhere_is_seen_at_the_next_generation_check(acme, monkeypatch):
    """Another process revoked the key: its UPDATE committed and it bumped the generation. This process reads
    the generation at most every check_seconds; at its next read the key is refused."""
    key, raw_key = warmed(contractor=acme)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())  # the other process's write
    cached_answers._bump_now(["api_keys"])  # and its bump, after its commit
    monkeypatch.setattr(KEYS, "check_seconds", 3600)
    assert rejection(raw_key) is None  # within check_seconds the cached key stands
    monkeypatch.setattr(KEYS, "check_seconds", 0)
    assert rejection(raw_key) == ("revoked_api_key", 401)


# Redis down: nothing cached, every request reads PostgreSQL (as before the cache); revocations still apply
# at once.


@pytest.fixture
def outages_forgotten():
    cache_backend._outages.clear()
    yield
    cache_backend._outages.clear()
    cached_answers._bumps_owed.clear()


def test_while_redis_is_down_every_authentication_reads_the_database(
    acme, settings, outages_forgotten, django_assert_num_queries, django_capture_on_commit_callbacks
):
    key, raw_key = api_key_create(contractor=acme)
    api_key_authenticate(raw_key=raw_key)  # its last use written
    KEYS.clear()
    cache_at(settings, CLOSED_PORT)

    for _ in range(3):
        with django_assert_num_queries(1):
            assert api_key_authenticate(raw_key=raw_key).pk == key.pk
    assert len(KEYS) == 0

    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(key=key)  # its bump cannot reach Redis: owed until it answers
    assert rejection(raw_key) == ("revoked_api_key", 401)
    assert cached_answers._bumps_owed == {"api_keys"}


def test_keys_cached_before_an_outage_are_dropped_when_it_is_noticed(acme, settings, outages_forgotten, monkeypatch):
    """A change made during the outage cannot bump the generation, so a process drops what it cached when
    its generation check finds Redis gone."""
    key, raw_key = warmed(contractor=acme)
    cache_at(settings, CLOSED_PORT)
    monkeypatch.setattr(KEYS, "check_seconds", 0)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())  # another process, its bump lost

    assert rejection(raw_key) == ("revoked_api_key", 401)
    assert len(KEYS) == 0


def test_a_suspended_contractors_cached_key_keeps_the_reason(acme, django_capture_on_commit_callbacks):
    _, raw_key = warmed(contractor=acme)
    with django_capture_on_commit_callbacks(execute=True):
        contractor_status_change(contractor=acme, status="suspended", reason="Chargebacks under review.")
    api_key_authenticate_refused = pytest.raises(ApiAccessDenied, match="Acme Roofing is suspended: Chargebacks")
    for _ in range(2):  # read, then cached: the same answer
        with api_key_authenticate_refused:
            api_key_authenticate(raw_key=raw_key)
    assert len(KEYS) == 1


def test_a_revoked_key_is_refused_from_the_cache_too(
    acme, django_capture_on_commit_callbacks, django_assert_num_queries
):
    key, raw_key = warmed(contractor=acme)
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(key=key)
    with pytest.raises(ApiKeyRevoked):
        api_key_authenticate(raw_key=raw_key)
    with django_assert_num_queries(0), pytest.raises(ApiKeyRevoked):
        api_key_authenticate(raw_key=raw_key)


def test_a_string_that_is_no_key_costs_nothing(django_assert_num_queries, db):
    with django_assert_num_queries(0), pytest.raises(ApiKeyUnknown):
        api_key_authenticate(raw_key="le_nothing")
