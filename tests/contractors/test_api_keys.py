"""API keys: generated, stored as a hash only, authenticated, revoked (contractors.services.api_keys); a
contractor's keys and staff users' own keys, which act as the user through the API."""

import datetime as dt
import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from contractors.errors import ApiAccessDenied, ApiKeyOwnerInvalid, ApiKeyRevoked, ApiKeyUnknown
from contractors.models import ApiKey, Contractor
from contractors.services.api_keys import api_key_authenticate, api_key_create, api_key_revoke
from contractors.services.contractors import contractor_status_change
from leads.models import Lead
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from tests.leads.conftest import roofing  # noqa: F401  (fixture)
from tests.leads.factories import api_client, owner, scored_home

LEADS_URL = "/api/v1/leads/"


def stored_text() -> str:
    """Every value of every column of the API key table, as PostgreSQL has them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t::text FROM {ApiKey._meta.db_table} t")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_raw_key_is_never_stored_only_its_sha256(acme):
    key, raw_key = api_key_create(contractor=acme, name="CRM sync")

    assert raw_key.startswith(key.prefix + "_")
    assert len(key.prefix) == 11
    assert key.prefix.startswith("le_")
    assert len(raw_key) == 11 + 1 + 43
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    text = stored_text()
    assert raw_key not in text
    assert raw_key[len(key.prefix) + 1 :] not in text  # nor its secret part
    assert key.prefix in text
    assert key.key_hash in text


def test_two_keys_differ(acme):
    (_, first), (_, second) = api_key_create(contractor=acme), api_key_create(contractor=acme)
    assert first != second


def test_the_database_refuses_a_raw_key_in_the_hash_column(acme):
    with pytest.raises(IntegrityError, match="contractors_apikey_hash_is_sha256"), transaction.atomic():
        ApiKey.objects.create(contractor=acme, prefix="le_00000000", key_hash="le_00000000_" + "x" * 43)
    assert not ApiKey.objects.exists()


def test_a_valid_key_authenticates_its_contractor_and_records_its_use(acme):
    key, raw_key = api_key_create(contractor=acme)
    now = timezone.now()

    found = api_key_authenticate(raw_key=raw_key, now=now)

    assert (found.pk, found.contractor) == (key.pk, acme)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now


def test_last_use_is_written_at_most_once_a_minute(acme):
    key, raw_key = api_key_create(contractor=acme)
    first = timezone.now()
    api_key_authenticate(raw_key=raw_key, now=first)
    api_key_authenticate(raw_key=raw_key, now=first + dt.timedelta(seconds=30))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    api_key_authenticate(raw_key=raw_key, now=first + dt.timedelta(seconds=61))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first + dt.timedelta(seconds=61)


def test_an_unknown_key_is_rejected_with_401(acme):
    key, raw_key = api_key_create(contractor=acme)
    with pytest.raises(ApiKeyUnknown, match="Unknown API key") as caught:
        api_key_authenticate(raw_key=raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B"))
    assert (caught.value.http_status, caught.value.code) == (401, "unknown_api_key")
    assert ApiKey.objects.get(pk=key.pk).last_used_at is None


def test_a_revoked_key_is_rejected_and_revoking_twice_keeps_the_first_time(acme):
    key, raw_key = api_key_create(contractor=acme)
    revoked = api_key_revoke(key=key)
    first_time = revoked.revoked_at
    api_key_revoke(key=key)

    assert ApiKey.objects.get(pk=key.pk).revoked_at == first_time
    with pytest.raises(ApiKeyRevoked, match=f"API key {key.prefix} was revoked on") as caught:
        api_key_authenticate(raw_key=raw_key)
    assert (caught.value.http_status, caught.value.code) == (401, "revoked_api_key")
    assert ApiKey.objects.get(pk=key.pk).last_used_at is None


def test_a_suspended_contractor_gets_403_with_the_reason(acme):
    _, raw_key = api_key_create(contractor=acme)
    contractor_status_change(contractor=acme, status=Contractor.Status.SUSPENDED, reason="Chargebacks under review.")

    with pytest.raises(ApiAccessDenied) as caught:
        api_key_authenticate(raw_key=raw_key)
    assert (caught.value.http_status, caught.value.code, str(caught.value)) == (
        403,
        "api_access_denied",
        "Acme Roofing is suspended: Chargebacks under review.",
    )


def test_a_paused_contractor_keeps_api_access(acme):
    key, raw_key = api_key_create(contractor=acme)
    contractor_status_change(contractor=acme, status=Contractor.Status.PAUSED)
    assert api_key_authenticate(raw_key=raw_key).pk == key.pk


def test_create_api_key_prints_the_key_alone_on_its_last_line(acme):
    out = io.StringIO()
    call_command("create_api_key", "acme-roofing", "--name", "Zapier", stdout=out)

    raw_key = out.getvalue().splitlines()[-1]
    key = ApiKey.objects.get()
    assert (key.name, key.contractor, key.created_by) == ("Zapier", acme, None)
    assert raw_key == raw_key.strip()
    assert raw_key.startswith(key.prefix + "_")
    assert api_key_authenticate(raw_key=raw_key).pk == key.pk


def test_create_api_key_refuses_an_unknown_contractor(acme):
    with pytest.raises(CommandError, match="no contractor with slug 'acme'"):
        call_command("create_api_key", "acme")
    assert not ApiKey.objects.exists()


def test_create_api_key_warns_that_a_suspended_contractor_cannot_use_it_yet(acme):
    contractor_status_change(contractor=acme, status=Contractor.Status.SUSPENDED, reason="Unpaid.")
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "acme-roofing", stdout=out, stderr=err)
    assert err.getvalue() == (
        "Note: the key is refused until the contractor may use the API again. Acme Roofing is suspended: Unpaid.\n"
    )
    assert out.getvalue().splitlines()[-1].startswith(ApiKey.objects.get().prefix + "_")


# Staff users' own keys.


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-for-tests-only", is_staff=True)


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def key_row(key: ApiKey) -> dict:
    return {f.attname: getattr(ApiKey.objects.get(pk=key.pk), f.attname) for f in ApiKey._meta.concrete_fields}


def lead_rows() -> list[tuple]:
    return list(Lead.objects.order_by("pk").values_list("pk", "state", "contractor_id", "delivered_at"))


@pytest.fixture
def market(roofing):  # noqa: F811
    """Two contractors, each with assigned leads: Acme 80202 (two), Bolt 80203 (one)."""
    acme, bolt = owner(roofing, "80202", name="Acme"), owner(roofing, "80203", name="Bolt")
    for score, zip_code in ((95, "80202"), (85, "80202"), (75, "80203")):
        scored_home(roofing, score=score, zip_code=zip_code)
    leads_generate(trade=roofing)
    leads_route()
    assert sorted(Lead.objects.values_list("contractor__name", "state")) == [
        ("Acme", "assigned"),
        ("Acme", "assigned"),
        ("Bolt", "assigned"),
    ]
    return acme, bolt


def test_a_staff_users_key_belongs_to_them_alone_and_names_them(alice):
    key, raw_key = api_key_create(user=alice, name="Reports")

    assert (key.user, key.contractor, key.owner) == (alice, None, alice)
    assert str(key) == f"{key.prefix}… Reports (alice)"
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(key.prefix + "_")
    assert len(raw_key) == 55


def test_a_contractors_key_names_its_contractor(acme):
    key, _ = api_key_create(contractor=acme, name="CRM sync")
    assert str(key) == f"{key.prefix}… CRM sync (Acme Roofing)"
    api_key_revoke(key=key)
    assert str(ApiKey.objects.get(pk=key.pk)) == f"{key.prefix}… CRM sync (Acme Roofing) (revoked)"


def test_a_staff_key_authenticates_as_its_user(alice):
    key, raw_key = api_key_create(user=alice)
    now = timezone.now()

    found = api_key_authenticate(raw_key=raw_key, now=now)

    assert (found.pk, found.user, found.contractor) == (key.pk, alice, None)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"is_staff": False}, "bob is not staff; only active staff have API keys of their own."),
        ({"is_staff": True, "is_active": False}, "bob is deactivated; only active staff have API keys of their own."),
    ],
)
def test_a_key_is_refused_to_a_user_who_is_not_active_staff(django_user_model, fields, message):
    bob = django_user_model.objects.create_user("bob", **fields)
    with pytest.raises(ApiKeyOwnerInvalid) as caught:
        api_key_create(user=bob)
    assert (str(caught.value), caught.value.code) == (message, "invalid_api_key_owner")
    assert not ApiKey.objects.exists()


def test_a_key_needs_exactly_one_owner(acme, alice):
    message = "An API key belongs to a contractor or to a staff user: give exactly one."
    with pytest.raises(ApiKeyOwnerInvalid, match=message):
        api_key_create(contractor=acme, user=alice)
    with pytest.raises(ApiKeyOwnerInvalid, match=message):
        api_key_create()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("owners", ["both", "none"])
def test_the_database_refuses_a_key_with_both_owners_or_none(acme, alice, owners):
    fields = {"contractor": acme, "user": alice} if owners == "both" else {}
    with pytest.raises(IntegrityError, match="contractors_apikey_one_owner"), transaction.atomic():
        ApiKey.objects.create(prefix="le_00000000", key_hash="0" * 64, **fields)
    assert not ApiKey.objects.exists()


def test_a_staff_key_lists_every_contractors_leads_and_delivers_none(market, alice):
    before = lead_rows()
    key, raw_key = api_key_create(user=alice, name="Reports")
    client = key_client(raw_key)

    response = client.get(LEADS_URL)

    assert response.status_code == 200
    assert sorted(lead["id"] for lead in response.json()["results"]) == sorted(pk for pk, *_ in before)
    assert lead_rows() == before  # staff reading delivers nothing
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None
    # Staff-only endpoints accept it too; a contractor's key is refused there.
    assert client.get("/api/v1/runs/").status_code == 200
    assert api_client(market[0]).get("/api/v1/runs/").status_code == 403


def test_a_revoked_staff_key_is_401_and_changes_nothing(market, alice):
    key, raw_key = api_key_create(user=alice)
    api_key_revoke(key=key)
    before_leads, before_key = lead_rows(), key_row(key)

    response = key_client(raw_key).get(LEADS_URL)

    assert response.status_code == 401
    revoked_on = f"{ApiKey.objects.get(pk=key.pk).revoked_at:%Y-%m-%d}"
    assert response.json() == {
        "code": "revoked_api_key",
        "detail": f"API key {key.prefix} was revoked on {revoked_on}.",
        "fields": {},
    }
    assert response["WWW-Authenticate"] == "Api-Key"
    assert (lead_rows(), key_row(key)) == (before_leads, before_key)


@pytest.mark.parametrize(
    ("change", "detail"),
    [({"is_staff": False}, "alice is not staff."), ({"is_active": False}, "alice is deactivated.")],
)
def test_a_key_of_a_user_no_longer_active_staff_is_403_with_the_reason(market, alice, change, detail):
    key, raw_key = api_key_create(user=alice)
    for field, value in change.items():
        setattr(alice, field, value)
    alice.save()
    before_leads, before_key = lead_rows(), key_row(key)

    response = key_client(raw_key).get(LEADS_URL)
    post = key_client(raw_key).post(f"{LEADS_URL}{before_leads[0][0]}/accept/")

    assert response.status_code == 403
    assert response.json() == {"code": "api_access_denied", "detail": detail, "fields": {}}
    assert (post.status_code, post.json()["code"]) == (403, "api_access_denied")
    assert (lead_rows(), key_row(key)) == (before_leads, before_key)
    assert before_key["last_used_at"] is None


def test_a_staff_key_is_throttled_per_key_not_per_user(market, alice, settings, client):
    settings.API_RATE = "2/min"
    _, first = api_key_create(user=alice, name="first")
    _, second = api_key_create(user=alice, name="second")
    first_client, second_client = key_client(first), key_client(second)
    client.force_login(alice)

    assert [first_client.get(LEADS_URL).status_code for _ in range(3)] == [200, 200, 429]
    # Another key of the same user has a bucket of its own, and so has the user's session.
    assert [second_client.get(LEADS_URL).status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get(LEADS_URL).status_code for _ in range(3)] == [200, 200, 429]
    response = first_client.get(LEADS_URL)
    assert (response.status_code, response.json()["code"]) == (429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60


def test_refused_staff_keys_count_against_the_address(market, alice, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    key, raw_key = api_key_create(user=alice)
    api_key_revoke(key=key)
    client = key_client(raw_key)

    assert [client.get(LEADS_URL).status_code for _ in range(3)] == [401, 401, 429]


def test_create_api_key_makes_a_staff_users_own_key(alice):
    out = io.StringIO()
    call_command("create_api_key", "--user", "alice", "--name", "Reports", stdout=out)

    key = ApiKey.objects.get()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"API key {key.prefix} created for staff user alice; it is shown once:"
    assert (key.user, key.contractor, key.name, key.created_by) == (alice, None, "Reports", None)
    assert lines[-1].startswith(key.prefix + "_")
    assert api_key_authenticate(raw_key=lines[-1]).pk == key.pk


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("bob", "bob is not staff; only active staff have API keys of their own."),
        ("carol", "carol is deactivated; only active staff have API keys of their own."),
        ("nobody", "no user named 'nobody'"),
    ],
)
def test_create_api_key_refuses_a_user_who_is_not_active_staff(django_user_model, username, message):
    django_user_model.objects.create_user("bob")
    django_user_model.objects.create_user("carol", is_staff=True, is_active=False)
    with pytest.raises(CommandError) as caught:
        call_command("create_api_key", "--user", username)
    assert str(caught.value) == message
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("args", [["acme-roofing", "--user", "alice"], []])
def test_create_api_key_takes_a_contractor_or_a_user_not_both_nor_neither(acme, alice, args):
    with pytest.raises(CommandError, match="CONTRACTOR_SLUG"):
        call_command("create_api_key", *args)
    assert not ApiKey.objects.exists()


# Refused keys per address: the throttle bounds the work bad keys cost; it never refuses a valid key.


def unknown_key() -> str:
    """A string of a key's shape that no key is."""
    return f"le_0000ffff_{'A' * 43}"


def test_a_valid_key_is_accepted_from_an_address_throttled_for_bad_keys(market, settings):
    settings.API_AUTH_FAILURE_RATE = "3/min"
    acme, _ = market
    key, raw_key = api_key_create(contractor=acme, name="CRM")
    guesser, neighbour = key_client(unknown_key()), key_client(raw_key)  # both behind 127.0.0.1

    assert [guesser.get(LEADS_URL).status_code for _ in range(4)] == [401, 401, 401, 429]
    response = neighbour.get(LEADS_URL)

    assert response.status_code == 200
    assert sorted(lead["id"] for lead in response.json()["results"]) == sorted(
        Lead.objects.filter(contractor=acme).values_list("pk", flat=True)
    )
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None
    refused = guesser.get(LEADS_URL)
    assert (refused.status_code, refused.json()["code"]) == (429, "throttled")
    assert re.fullmatch(
        r"Too many refused API keys from this address\. Expected available in \d+ seconds\.", refused.json()["detail"]
    )
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert neighbour.get(LEADS_URL).status_code == 200


def test_a_revoked_or_denied_key_past_the_limit_is_throttled_too_and_changes_nothing(market, alice, settings):
    settings.API_AUTH_FAILURE_RATE = "1/min"
    acme, _ = market
    revoked, revoked_raw = api_key_create(contractor=acme)
    api_key_revoke(key=revoked)
    denied, denied_raw = api_key_create(user=alice)
    alice.is_staff = False
    alice.save()
    before = (lead_rows(), key_row(revoked), key_row(denied))

    assert key_client(unknown_key()).get(LEADS_URL).status_code == 401
    answers = [key_client(raw).get(LEADS_URL) for raw in (revoked_raw, denied_raw)]

    assert [(answer.status_code, answer.json()["code"]) for answer in answers] == [(429, "throttled")] * 2
    assert (lead_rows(), key_row(revoked), key_row(denied)) == before


def test_another_address_is_not_throttled_for_one_addresss_bad_keys(market, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    guesser = key_client(unknown_key())

    assert [guesser.get(LEADS_URL).status_code for _ in range(3)] == [401, 401, 429]
    response = guesser.get(LEADS_URL, REMOTE_ADDR="203.0.113.9")
    assert (response.status_code, response.json()["code"]) == (401, "unknown_api_key")


def test_a_bad_key_past_the_limit_costs_one_indexed_query_and_a_malformed_one_none(
    market, settings, django_assert_num_queries
):
    settings.API_AUTH_FAILURE_RATE = "1/min"
    guesser = key_client(unknown_key())
    assert guesser.get(LEADS_URL).status_code == 401

    with django_assert_num_queries(1) as queries:
        assert guesser.get(LEADS_URL).status_code == 429
    with django_assert_num_queries(0):
        assert key_client("le_guess").get(LEADS_URL).status_code == 429
        assert key_client(unknown_key() + "A").get(LEADS_URL).status_code == 429
    assert 'WHERE "contractors_apikey"."key_hash" = ' in queries.captured_queries[0]["sql"]


@pytest.mark.parametrize(
    "raw_key",
    [
        "le_guess",
        "",
        "le_0000FFFF_" + "A" * 43,
        "le_0000ffff_" + "A" * 42,
        "le_0000ffff_" + "A" * 42 + "=",
        "x" * 10_000,
    ],
)
def test_a_string_without_a_keys_shape_is_unknown_without_a_query(acme, raw_key, django_assert_num_queries):
    api_key_create(contractor=acme)

    with django_assert_num_queries(0), pytest.raises(ApiKeyUnknown, match="Unknown API key"):
        api_key_authenticate(raw_key=raw_key)


def test_every_generated_key_has_the_shape_keys_are_checked_for(acme):
    from contractors.services.api_keys import api_key_well_formed

    assert all(api_key_well_formed(api_key_create(contractor=acme)[1]) for _ in range(50))
