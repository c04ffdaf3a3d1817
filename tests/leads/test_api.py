"""The leads API: API-key authentication and its refusals, one visibility rule (another contractor's
lead is 404 and nothing changes), delivery on read, the lifecycle actions, JSON errors, throttling."""

import datetime as dt
from decimal import Decimal

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from contractors.services.api_keys import api_key_create, api_key_revoke
from contractors.services.contractors import contractor_status_change
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from tests.leads.factories import api_client, owner, scored_home
from tests.leads.factories import lead_snapshot as snapshot

URL = "/api/v1/leads/"


def test_a_contractor_lists_only_its_leads_and_reading_them_delivers_them(market):
    acme, _, (first, second, theirs) = market

    response = api_client(acme).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert [lead["id"] for lead in body["results"]] == [second.pk, first.pk]  # newest first, then id
    assert body["next"] is None
    lead = next(item for item in body["results"] if item["id"] == first.pk)
    assert (lead["state"], lead["trade"], lead["zip_code"], lead["score"]) == ("delivered", "roofing", "80202", 95.0)
    assert lead["property"]["address"] == first.property.address
    assert lead["reasons"] == [{"feature": "roof_age", "value": 23, "points": 35.0, "text": "Roof is 23 years old"}]
    assert [event["action"] for event in lead["events"]] == ["generate", "assign", "deliver"]
    first.refresh_from_db()
    assert (first.state, first.delivered_at is not None) == ("delivered", True)
    assert LeadEvent.objects.get(lead=first, action="deliver").reason == "api"
    theirs.refresh_from_db()
    assert theirs.state == "assigned"  # another contractor's lead is untouched


def test_reading_twice_delivers_once(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)

    client.get(f"{URL}{first.pk}/")
    client.get(f"{URL}{first.pk}/")

    assert LeadEvent.objects.filter(lead=first, action="deliver").count() == 1


def test_another_contractors_lead_is_not_found_and_nothing_changes(market):
    acme, _bolt, (_, _, theirs) = market
    client = api_client(acme)
    before = snapshot(theirs)

    for method, path, data in [
        ("get", f"{URL}{theirs.pk}/", None),
        ("post", f"{URL}{theirs.pk}/accept/", {}),
        ("post", f"{URL}{theirs.pk}/reject/", {"reason": "no"}),
        ("post", f"{URL}{theirs.pk}/contact/", {"note": "Left a voicemail"}),
        ("post", f"{URL}{theirs.pk}/convert/", {"job_value": "100"}),
        ("post", f"{URL}{theirs.pk}/convert/", {"job_value": "not a number"}),  # 404 before any 400
        ("post", f"{URL}{theirs.pk}/return/", {"reason": "duplicate"}),
    ]:
        response = getattr(client, method)(path, data, format="json")
        assert response.status_code == 404, path
        assert response.json() == {"code": "not_found", "detail": "Not found.", "fields": {}}
    assert snapshot(theirs) == before


@pytest.mark.parametrize("lead_id", ["abc", "1.5", "0", "-1", str(2**63), str(-(2**63) - 1), "9" * 40, "%20"])
def test_a_detail_of_an_id_no_lead_has_is_not_found_as_an_actions(market, lead_id):
    acme, _, _ = market
    client = api_client(acme)

    for path in (f"{URL}{lead_id}/", f"{URL}{lead_id}/accept/"):
        response = client.get(path) if path.endswith(f"{lead_id}/") else client.post(path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path


def test_a_detail_read_by_staff_is_any_lead_and_delivers_nothing(market, staff_client):
    _, _, (first, _, theirs) = market

    answers = [staff_client.get(f"{URL}{lead.pk}/") for lead in (first, theirs)]

    assert [(answer.status_code, answer.json()["id"]) for answer in answers] == [(200, first.pk), (200, theirs.pk)]
    assert [answer.json()["state"] for answer in answers] == ["assigned", "assigned"]
    assert not LeadEvent.objects.filter(action="deliver").exists()


def test_accept_then_convert_records_the_job_value(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)
    client.get(f"{URL}{first.pk}/")

    accepted = client.post(f"{URL}{first.pk}/accept/")
    converted = client.post(f"{URL}{first.pk}/convert/", {"job_value": "18500.00"}, format="json")

    assert (accepted.status_code, accepted.json()["state"]) == (200, "accepted")
    assert (converted.status_code, converted.json()["state"], converted.json()["job_value"]) == (
        200,
        "converted",
        "18500.00",
    )
    first.refresh_from_db()
    assert (first.state, first.job_value) == ("converted", Decimal("18500.00"))
    event = LeadEvent.objects.get(lead=first, action="convert")
    assert (event.actor, event.contractor_id, event.user_id) == ("contractor", acme.pk, None)


def test_marking_an_accepted_lead_contacted_records_each_contact_with_its_note(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)
    client.get(f"{URL}{first.pk}/")
    client.post(f"{URL}{first.pk}/accept/")

    first_call = client.post(f"{URL}{first.pk}/contact/", {"note": " Left a voicemail "}, format="json")
    second_call = client.post(f"{URL}{first.pk}/contact/", {}, format="json")

    assert (first_call.status_code, second_call.status_code) == (200, 200)
    body = second_call.json()
    first.refresh_from_db()
    assert (body["state"], first.state) == ("accepted", "accepted")
    assert body["contacted_at"] == first.contacted_at.isoformat().replace("+00:00", "Z")
    contacts = LeadEvent.objects.filter(lead=first, action="contact").order_by("id")
    assert [(e.from_state, e.to_state, e.actor, e.reason) for e in contacts] == [
        ("accepted", "accepted", "contractor", "Left a voicemail"),
        ("accepted", "accepted", "contractor", ""),
    ]
    assert first.contacted_at == contacts[1].at
    assert [e["action"] for e in body["events"]][-2:] == ["contact", "contact"]


def test_contacting_a_lead_not_yet_accepted_is_409_and_changes_nothing(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)
    client.get(f"{URL}{first.pk}/")
    before = snapshot(first)

    response = client.post(f"{URL}{first.pk}/contact/", {"note": "No answer"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "code": "transition_refused",
        "detail": f"Lead {first.pk} is delivered; it cannot be marked contacted (only a lead that is accepted).",
        "fields": {},
    }
    assert snapshot(first) == before


def test_a_contact_note_over_300_characters_is_a_field_error(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)
    client.get(f"{URL}{first.pk}/")
    client.post(f"{URL}{first.pk}/accept/")
    before = snapshot(first)

    response = client.post(f"{URL}{first.pk}/contact/", {"note": "x" * 301}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"note": ["Ensure this field has no more than 300 characters."]}
    assert snapshot(first) == before


def test_an_illegal_move_is_409_naming_the_current_state_and_changes_nothing(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)
    client.get(f"{URL}{first.pk}/")
    before = snapshot(first)

    response = client.post(f"{URL}{first.pk}/convert/", {"job_value": "100"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "code": "transition_refused",
        "detail": f"Lead {first.pk} is delivered; it cannot be converted (only a lead that is accepted).",
        "fields": {},
    }
    assert snapshot(first) == before


def test_bad_input_gets_field_errors_and_changes_nothing(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)
    client.get(f"{URL}{first.pk}/")
    client.post(f"{URL}{first.pk}/accept/")
    before = snapshot(first)

    for payload, field in [
        ({}, "job_value"),
        ({"job_value": "lots"}, "job_value"),
        ({"job_value": "-5"}, "job_value"),
        ({"job_value": "1" * 40}, "job_value"),
    ]:
        response = client.post(f"{URL}{first.pk}/convert/", payload, format="json")
        assert response.status_code == 400
        body = response.json()
        assert (body["code"], list(body["fields"])) == ("invalid", [field])
    response = client.post(f"{URL}{first.pk}/return/", {"reason": "nope"}, format="json")
    assert response.json()["fields"] == {"reason": ['"nope" is not a valid choice.']}
    response = client.post(f"{URL}{first.pk}/convert/", b"\xff\xfe{", content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    assert snapshot(first) == before


def test_a_return_within_the_window_frees_the_slot(market, settings):
    settings.LEAD_RETURN_RATE_PERCENT = 100
    acme, _, (first, _, _) = market
    client = api_client(acme)
    client.get(f"{URL}{first.pk}/")

    response = client.post(f"{URL}{first.pk}/return/", {"reason": "not_owner", "note": "renter"}, format="json")

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["return_reason"]) == ("returned", "not_owner")


def test_filters_and_ordering(market):
    acme, _, (first, second, _) = market
    client = api_client(acme)

    assert [lead["id"] for lead in client.get(URL, {"min_score": 90}).json()["results"]] == [first.pk]
    assert [lead["id"] for lead in client.get(URL, {"ordering": "score"}).json()["results"]] == [second.pk, first.pk]
    assert [lead["id"] for lead in client.get(URL, {"ordering": "-score"}).json()["results"]] == [first.pk, second.pk]
    assert client.get(URL, {"zip_code": "8020"}).json()["results"] != []
    assert client.get(URL, {"zip_code": "9"}).json()["results"] == []
    assert client.get(URL, {"trade": "solar"}).json()["results"] == []
    assert len(client.get(URL, {"state": ["assigned", "delivered"]}).json()["results"]) == 2
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert client.get(URL, {"generated_after": later}).json()["results"] == []
    response = client.get(URL, {"state": "lost"})
    assert (response.status_code, response.json()["code"], list(response.json()["fields"])) == (
        400,
        "invalid",
        ["state"],
    )
    response = client.get(URL, {"cursor": "not-a-cursor"})
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_pages_are_bounded_and_the_list_runs_a_fixed_number_of_queries(roofing, django_assert_max_num_queries):
    acme = owner(roofing, "80202")
    for index in range(7):
        scored_home(roofing, score=90 - index)
    leads_generate(trade=roofing)
    leads_route()
    client = api_client(acme)
    client.get(URL)  # delivers all seven

    with django_assert_max_num_queries(8):
        first = client.get(URL, {"page_size": 3}).json()
    with django_assert_max_num_queries(8):
        everything = client.get(URL, {"page_size": 100}).json()

    assert len(first["results"]) == 3
    assert first["next"]
    assert len(everything["results"]) == 7
    assert len(client.get(URL, {"page_size": 10_000}).json()["results"]) == 7  # capped at 200, not refused


def test_paging_through_leads_of_equal_score_shows_each_lead_once(roofing):
    acme = owner(roofing, "80202")
    for _ in range(9):
        scored_home(roofing, score=80, urgency=5)
    leads_generate(trade=roofing)
    leads_route()
    client = api_client(acme)

    seen, page = [], client.get(URL, {"ordering": "-score", "page_size": 2}).json()
    while True:
        seen += [lead["id"] for lead in page["results"]]
        if not page["next"]:
            break
        page = client.get(page["next"]).json()

    assert seen == sorted(Lead.objects.filter(contractor=acme).values_list("id", flat=True), reverse=True)


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        ("Api-Key le_nothing", 401, "unknown_api_key"),
        ("Api-Key ", 401, "unknown_api_key"),
        ("Api-Key a b", 401, "unknown_api_key"),
        (None, 401, "not_authenticated"),
        ("Bearer something", 401, "not_authenticated"),
    ],
)
def test_calls_without_a_valid_key_are_refused_with_json(roofing, header, status, code):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(URL)

    assert (response.status_code, response.json()["code"], response["WWW-Authenticate"]) == (status, code, "Api-Key")


def test_a_revoked_key_is_401_and_a_suspended_contractor_403(roofing, django_capture_on_commit_callbacks):
    acme = owner(roofing, "80202")
    key, raw = api_key_create(contractor=acme)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert client.get(URL).status_code == 200  # the key is now cached in this process

    # Each change as it commits in production: its callbacks (the key caches told) run.
    with django_capture_on_commit_callbacks(execute=True):
        contractor_status_change(contractor=acme, status="suspended", reason="unpaid invoices")
    response = client.get(URL)
    assert (response.status_code, response.json()["code"]) == (403, "api_access_denied")
    assert "unpaid invoices" in response.json()["detail"]

    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(key=key)
    response = client.get(URL)
    assert (response.status_code, response.json()["code"]) == (401, "revoked_api_key")


def test_a_key_is_throttled_with_retry_after(roofing, settings):
    settings.API_RATE = "3/min"
    client = api_client(owner(roofing, "80202"))

    statuses = [client.get(URL).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    response = client.get(URL)
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_retry_after_is_the_seconds_left_in_the_keys_window(roofing, settings):
    settings.API_RATE = "2/min"
    client = api_client(owner(roofing, "80202"))
    assert [client.get(URL).status_code for _ in range(2)] == [200, 200]
    counters = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    (key,) = counters.keys(cache.make_key("throttle:client:key:*"))
    counters.pexpire(key, 12_300)  # the window began 47.7 s ago

    response = client.get(URL)

    assert (response.status_code, response.json()["code"]) == (429, "throttled")
    assert response["Retry-After"] == "13"
    assert response.json()["detail"] == "Request was throttled. Expected available in 13 seconds."
    assert response.json()["retry_after_seconds"] == 13  # the body and the header agree


def test_refused_keys_are_throttled_per_address(roofing, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key le_guess")

    statuses = [client.get(URL).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


def test_a_forwarded_for_header_a_client_writes_does_not_escape_the_address_throttle(roofing, settings):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key le_guess")

    statuses = [client.get(URL, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(3)]

    assert statuses == [401, 401, 429]


def test_staff_see_every_lead_through_their_session(market, staff_client):
    _, _, leads = market

    response = staff_client.get(URL)

    assert sorted(lead["id"] for lead in response.json()["results"]) == sorted(lead.pk for lead in leads)
    assert {lead.state for lead in Lead.objects.all()} == {"assigned"}  # staff reading delivers nothing


def test_a_member_of_a_contractor_sees_its_leads_through_a_session(market, django_user_model):
    from contractors.models import Membership

    acme, _, (first, second, _) = market
    user = django_user_model.objects.create_user("crm-user", password="pw-for-tests-only")
    Membership.objects.create(user=user, contractor=acme)
    client = APIClient()
    client.force_login(user)

    assert sorted(lead["id"] for lead in client.get(URL).json()["results"]) == sorted([first.pk, second.pk])
    first.refresh_from_db()
    assert first.state == "delivered"


def test_a_move_records_the_person_who_made_it_and_a_keys_move_no_person(market, django_user_model):
    from contractors.models import Membership

    acme, _, (first, second, _) = market
    member = django_user_model.objects.create_user("crm-user", password="pw-for-tests-only")
    Membership.objects.create(user=member, contractor=acme)
    session = APIClient()
    session.force_login(member)

    key = api_client(acme)
    session.get(f"{URL}{first.pk}/")  # reading a lead delivers it
    key.get(f"{URL}{second.pk}/")

    assert session.post(f"{URL}{first.pk}/accept/", {}, format="json").status_code == 200
    assert key.post(f"{URL}{second.pk}/accept/", {}, format="json").status_code == 200

    accepts = LeadEvent.objects.filter(action="accept").order_by("lead_id")
    assert [(event.lead_id, event.actor, event.user_id) for event in accepts] == sorted(
        [(first.pk, "contractor", member.pk), (second.pk, "contractor", None)]
    )


def test_a_lead_named_by_its_id_is_found_whatever_the_list_filters_in_the_query_say(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)

    response = client.get(f"{URL}{first.pk}/", {"state": "converted", "min_score": "not a number"})

    assert (response.status_code, response.json()["id"]) == (200, first.pk)
