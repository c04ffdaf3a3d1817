"""The lead list as CSV (`?format=csv` or `Accept: text/csv`): every lead the filters select, streamed in
flat columns; a contractor's export delivers the assigned leads it contains; errors stay JSON."""

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from leads.export import HEADER
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from scoring.models import Property
from tests.leads.factories import api_client, home, owner, scored, scored_home

URL = "/api/v1/leads/"
CSV = {"format": "csv"}


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))


def as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_the_export_is_a_csv_download_of_flat_rows(roofing):
    acme = owner(roofing, "80202")
    prop = home(zip_code="80202", address="12 Elm St", owner_name="Ada Lovelace", parcel_id="P-ELM-12")
    Property.objects.filter(pk=prop.pk).update(roof_year=2001, living_sqft=1850, market_value=525000)
    reasons = [
        {"feature": "roof_age", "value": 24, "points": 35.0, "text": "Roof is 24 years old"},
        {"feature": "hail", "value": 2, "points": 20.0, "text": "Hail, 2 inches"},
    ]
    scored(prop, roofing, score=91.5, urgency=42.25, reasons=reasons)
    leads_generate(trade=roofing)
    leads_route()
    lead = Lead.objects.get(property=prop)
    client = api_client(acme)
    client.get(f"{URL}{lead.pk}/")
    client.post(f"{URL}{lead.pk}/accept/")
    client.post(f"{URL}{lead.pk}/convert/", {"job_value": "14250.00"}, format="json")

    response = client.get(URL, CSV)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.now().date().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="leads-{today}.csv"'
    rows = csv_rows(response)
    assert rows[0] == [
        "id", "trade", "state", "zip_code", "score", "urgency", "priority", "generated_at", "assigned_at",
        "delivered_at", "accepted_at", "converted_at", "expires_at", "job_value", "price", "return_reason", "address",
        "city", "property_state", "owner_name", "parcel_id", "year_built", "roof_year", "living_sqft", "market_value",
        "reasons", "exploration",
    ]  # fmt: skip
    assert rows[0] == HEADER
    lead.refresh_from_db()
    json = client.get(f"{URL}{lead.pk}/").json()  # the same instants, as the JSON API writes them (UTC, Z)
    assert as_dicts(rows) == [
        {
            "id": str(lead.pk),
            "trade": "roofing",
            "state": "converted",
            "zip_code": "80202",
            "score": "91.5",
            "urgency": "42.25",
            "priority": str(lead.priority),
            "generated_at": json["generated_at"],
            "assigned_at": json["assigned_at"],
            "delivered_at": json["delivered_at"],
            "accepted_at": json["accepted_at"],
            "converted_at": json["converted_at"],
            "expires_at": "",
            "job_value": "14250.00",
            "price": "",  # no price list: unpriced
            "return_reason": "",
            "address": "12 Elm St",
            "city": "Denver",
            "property_state": "CO",
            "owner_name": "Ada Lovelace",
            "parcel_id": "P-ELM-12",
            "year_built": "1990",
            "roof_year": "2001",
            "living_sqft": "1850",
            "market_value": "525000",
            "reasons": "Roof is 24 years old; Hail, 2 inches",
            "exploration": "false",
        }
    ]
    assert json["generated_at"].endswith("Z")
    assert json["converted_at"] == lead.converted_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_the_export_has_every_lead_the_filters_select_in_the_ordering_asked_for(market):
    acme, _, (first, second, _) = market
    client = api_client(acme)

    def ids(params) -> list[int]:
        return [int(row["id"]) for row in as_dicts(csv_rows(client.get(URL, CSV | params)))]

    assert ids({}) == [second.pk, first.pk]  # newest first, as the list
    assert ids({"ordering": "score"}) == [second.pk, first.pk]
    assert ids({"ordering": "-score"}) == [first.pk, second.pk]
    assert ids({"min_score": 90}) == [first.pk]
    assert ids({"zip_code": "8020"}) == [second.pk, first.pk]
    assert ids({"zip_code": "9"}) == []
    assert ids({"trade": "solar"}) == []
    assert ids({"page_size": 1, "cursor": "not-a-cursor"}) == [second.pk, first.pk]  # not one page


def test_another_contractors_leads_never_appear(market):
    acme, bolt, (first, second, theirs) = market

    mine = [int(row["id"]) for row in as_dicts(csv_rows(api_client(acme).get(URL, CSV)))]
    their = [int(row["id"]) for row in as_dicts(csv_rows(api_client(bolt).get(URL, CSV)))]

    assert sorted(mine) == sorted([first.pk, second.pk])
    assert their == [theirs.pk]


def test_a_contractors_export_delivers_the_assigned_leads_it_contains(market):
    acme, _, (first, second, theirs) = market
    before = timezone.now()

    rows = as_dicts(csv_rows(api_client(acme).get(URL, CSV | {"min_score": 90})))

    assert [(int(row["id"]), row["state"]) for row in rows] == [(first.pk, "delivered")]
    first.refresh_from_db()
    assert first.state == "delivered"
    assert before <= first.delivered_at <= timezone.now()
    assert rows[0]["delivered_at"] == first.delivered_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    event = LeadEvent.objects.get(lead=first, action="deliver")
    assert (event.from_state, event.to_state, event.actor, event.reason) == ("assigned", "delivered", "system", "api")
    for other in (second, theirs):  # not in this export, or another contractor's
        other.refresh_from_db()
        assert (other.state, other.delivered_at) == ("assigned", None)
        assert not LeadEvent.objects.filter(lead=other, action="deliver").exists()


def test_an_export_of_assigned_leads_lists_them_though_it_delivers_them(market):
    acme, _, (first, second, _) = market
    client = api_client(acme)

    rows = as_dicts(csv_rows(client.get(URL, CSV | {"state": "assigned", "ordering": "-score"})))

    assert [(int(row["id"]), row["state"]) for row in rows] == [(first.pk, "delivered"), (second.pk, "delivered")]
    assert csv_rows(client.get(URL, CSV | {"state": "assigned"})) == [HEADER]  # none left to deliver
    assert LeadEvent.objects.filter(lead__in=[first, second], action="deliver").count() == 2


def test_a_staff_export_has_every_lead_and_delivers_nothing(market, staff_client):
    _, _, leads = market

    rows = as_dicts(csv_rows(staff_client.get(URL, CSV)))

    assert sorted(int(row["id"]) for row in rows) == sorted(lead.pk for lead in leads)
    assert {row["state"] for row in rows} == {"assigned"}
    assert {lead.state for lead in Lead.objects.all()} == {"assigned"}
    assert not LeadEvent.objects.filter(action="deliver").exists()


def test_accept_text_csv_selects_the_export(market):
    acme, _, (first, second, _) = market

    response = api_client(acme).get(URL, HTTP_ACCEPT="text/csv")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert [int(row["id"]) for row in as_dicts(csv_rows(response))] == [second.pk, first.pk]


def test_only_the_list_answers_csv(market):
    acme, _, (first, _, _) = market
    client = api_client(acme)

    response = client.get(f"{URL}{first.pk}/", HTTP_ACCEPT="text/csv")

    assert (response.status_code, response["Content-Type"], response.json()["code"]) == (
        406,
        "application/json",
        "not_acceptable",
    )
    first.refresh_from_db()
    assert first.state == "assigned"


def test_text_a_spreadsheet_would_run_as_a_formula_gets_a_leading_apostrophe(roofing):
    acme = owner(roofing, "80202")
    names = ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tTab", "\rReturn", "Ann = Bob", "O'Neil"]
    for name in names:
        scored_home(roofing, score=80, zip_code="80202", owner_name=name, address=f"{name} addr")
    leads_generate(trade=roofing)
    leads_route()

    rows = as_dicts(csv_rows(api_client(acme).get(URL, CSV)))

    assert sorted(row["owner_name"] for row in rows) == sorted(
        ['\'=HYPERLINK("http://x")', "'+1+2", "'-2+3", "'@SUM(A1)", "'\tTab", "'\rReturn", "Ann = Bob", "O'Neil"]
    )
    assert {row["address"] for row in rows} >= {'\'=HYPERLINK("http://x") addr', "Ann = Bob addr"}


def test_formula_text_in_reasons_is_escaped_too(roofing):
    acme = owner(roofing, "80202")
    prop = home(zip_code="80202")
    scored(prop, roofing, score=80, reasons=[{"feature": "x", "value": 1, "points": 1.0, "text": "=1+1"}])
    leads_generate(trade=roofing)
    leads_route()

    (row,) = as_dicts(csv_rows(api_client(acme).get(URL, CSV)))

    assert row["reasons"] == "'=1+1"


def test_a_bad_filter_is_a_json_400_and_delivers_nothing(market):
    acme, _, _leads = market
    client = api_client(acme)

    for response in (
        client.get(URL, CSV | {"state": "lost"}),
        client.get(URL, {"state": "lost"}, HTTP_ACCEPT="text/csv"),
    ):
        assert (response.status_code, response["Content-Type"]) == (400, "application/json")
        assert response.json() == {
            "code": "invalid",
            "detail": "The request has invalid fields; see fields.",
            "fields": {"state": ["Select a valid choice. lost is not one of the available choices."]},
        }
    assert {lead.state for lead in Lead.objects.all()} == {"assigned"}
    assert not LeadEvent.objects.filter(action="deliver").exists()


@pytest.mark.parametrize("header", [None, "Api-Key le_nothing"])
def test_an_export_without_valid_credentials_is_a_json_401(market, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    for response in (client.get(URL, CSV), client.get(URL, HTTP_ACCEPT="text/csv")):
        assert (response.status_code, response["Content-Type"], response["WWW-Authenticate"]) == (
            401,
            "application/json",
            "Api-Key",
        )
        assert response.json()["code"] in ("not_authenticated", "unknown_api_key")
    assert not LeadEvent.objects.filter(action="deliver").exists()


def test_an_empty_export_is_just_the_header(roofing):
    acme = owner(roofing, "80202")

    response = api_client(acme).get(URL, CSV)

    assert b"".join(response.streaming_content) == (",".join(HEADER) + "\r\n").encode()


def test_the_export_runs_a_fixed_number_of_queries(roofing, django_assert_max_num_queries):
    small, large = owner(roofing, "80202"), owner(roofing, "80203")
    for index in range(3):
        scored_home(roofing, score=90 - index, zip_code="80202")
    for index in range(300):
        scored_home(roofing, score=90 - index / 10, zip_code="80203")
    leads_generate(trade=roofing)
    leads_route()
    clients = {3: api_client(small), 300: api_client(large)}

    for count, client in clients.items():
        # The key (read, last used), the assigned ids, the delivery (in savepoints here), one read of the rows.
        with django_assert_max_num_queries(9):
            rows = csv_rows(client.get(URL, CSV))
        assert len(rows) == count + 1
        assert {row[2] for row in rows[1:]} == {"delivered"}
    with django_assert_max_num_queries(9):  # nothing left to deliver
        assert len(csv_rows(clients[300].get(URL, CSV))) == 301
    assert Lead.objects.filter(contractor=large, state="delivered").count() == 300
