"""Who makes an API call (contractors.caller.Caller), read from what authentication found, and the rows each
caller may see through the selectors that apply the one visibility rule (contractors.caller.caller_rows)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from contractors.api.authentication import ApiKeyAuthentication
from contractors.caller import Caller
from contractors.services.api_keys import api_key_create
from contractors.services.contractors import contractor_member_add
from leads.selectors import leads_visible
from territories.models import Territory, WaitlistEntry
from territories.selectors import territories_visible, waitlist_entries_visible
from territories.services.waitlist import waitlist_join
from tests.leads.conftest import market, roofing  # noqa: F401  (fixtures)


def keyed_request(raw_key: str) -> Request:
    """A DRF request made with an API key, authenticated as the API authenticates it."""
    django_request = APIRequestFactory().get("/api/v1/leads/", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return Request(django_request, authenticators=[ApiKeyAuthentication()])


def session_request(user) -> Request:
    """A DRF request of a browser session signed in as `user` (AnonymousUser: signed in as nobody)."""
    django_request = APIRequestFactory().get("/api/v1/leads/")
    django_request.user = user
    return Request(django_request, authenticators=[SessionAuthentication()])


def user(username: str, **fields):
    return get_user_model().objects.create_user(username, password="pw-for-tests-only", **fields)


def test_a_contractors_key_calls_as_the_contractor_with_no_person(market):  # noqa: F811
    acme, _, _ = market
    _, raw_key = api_key_create(contractor=acme, name="CRM")

    caller = Caller.of(keyed_request(raw_key))

    assert caller == Caller(user=None, contractor=acme)
    assert caller.is_staff is False


def test_a_staff_users_own_key_calls_as_that_user_for_no_contractor(db):
    ops = user("ops", is_staff=True)
    _, raw_key = api_key_create(user=ops, name="scripts")

    caller = Caller.of(keyed_request(raw_key))

    assert caller == Caller(user=ops, contractor=None)
    assert caller.is_staff is True


def test_a_members_session_calls_as_the_member_for_its_contractor(market):  # noqa: F811
    acme, _, _ = market
    pat = user("pat")
    contractor_member_add(contractor=acme, user=pat)

    caller = Caller.of(session_request(pat))

    assert caller == Caller(user=pat, contractor=acme)
    assert caller.is_staff is False


def test_a_session_of_nobody_calls_as_no_one(db):
    assert Caller.of(session_request(AnonymousUser())) == Caller(user=None, contractor=None)


def test_a_caller_is_fixed_once_built(market):  # noqa: F811
    acme, bolt, _ = market
    caller = Caller(user=None, contractor=acme)

    with pytest.raises(AttributeError):
        caller.contractor = bolt  # type: ignore[misc]


def test_staff_see_every_lead_a_contractor_its_own_anyone_else_none(market):  # noqa: F811
    acme, bolt, (first, second, theirs) = market
    ops, loner = user("ops", is_staff=True), user("loner")

    def visible(caller: Caller) -> list[int]:
        return sorted(leads_visible(caller=caller).values_list("pk", flat=True))

    assert visible(Caller(user=ops, contractor=None)) == sorted([first.pk, second.pk, theirs.pk])
    assert visible(Caller(user=None, contractor=acme)) == sorted([first.pk, second.pk])
    assert visible(Caller(user=None, contractor=bolt)) == [theirs.pk]
    assert visible(Caller(user=loner, contractor=None)) == []  # a user of no contractor
    assert visible(Caller(user=None, contractor=None)) == []


def test_staff_see_every_territory_and_place_in_line_a_contractor_its_own(market, roofing):  # noqa: F811
    acme, bolt, _ = market
    ops = user("ops", is_staff=True)
    in_line = waitlist_join(contractor=acme, trade=roofing, zip_code="80203")  # Bolt owns 80203
    acme_80202 = Territory.objects.get(contractor=acme)
    bolt_80203 = Territory.objects.get(contractor=bolt)
    staff, as_acme, as_bolt = Caller(user=ops, contractor=None), Caller(None, acme), Caller(None, bolt)

    assert sorted(territories_visible(caller=staff).values_list("pk", flat=True)) == sorted(
        [acme_80202.pk, bolt_80203.pk]
    )
    assert list(territories_visible(caller=as_acme).values_list("pk", flat=True)) == [acme_80202.pk]
    assert list(territories_visible(caller=as_bolt).values_list("pk", flat=True)) == [bolt_80203.pk]
    assert list(territories_visible(caller=Caller(None, None))) == []
    assert list(waitlist_entries_visible(caller=staff).values_list("pk", flat=True)) == [in_line.pk]
    assert list(waitlist_entries_visible(caller=as_acme).values_list("pk", flat=True)) == [in_line.pk]
    assert list(waitlist_entries_visible(caller=as_bolt)) == []
    assert WaitlistEntry.objects.count() == 1
