"""Inputs the API fuzz tests (test_api_fuzz.py) turned up, pinned one by one: each is answered with a JSON
error or an empty page, never a server error."""

import pytest

from territories.models import WaitlistEntry
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.conftest import roofing  # noqa: F401  (fixture)
from tests.leads.factories import api_client, owner

LEADS = "/api/v1/leads/"


@pytest.fixture
def api(roofing):  # noqa: F811
    return api_client(owner(roofing, "80202"))


def test_a_utc_offset_postgres_cannot_hold_is_an_invalid_filter(api):
    response = api.get(LEADS, {"generated_after": "0221-10-05T09:30:41-22:42"})

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "The request has invalid fields; see fields.",
        "fields": {"generated_after": ["A UTC offset is at most ±14:00."]},
    }


def test_a_date_out_of_range_once_in_utc_is_an_invalid_filter(api):
    response = api.get(LEADS, {"generated_before": "0001-01-01T00:00:00+01:00"})

    assert response.status_code == 400
    assert response.json()["fields"] == {"generated_before": ["The date-time is out of range."]}


def test_a_nul_character_in_a_body_is_invalid_and_nothing_is_stored(api):
    response = api.post("/api/v1/waitlist/", {"trade": "roof\u0000ing", "zip_code": "80203"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "A value in the request cannot be stored or compared: out of range or malformed.",
        "fields": {},
    }
    assert not WaitlistEntry.objects.exists()


def test_a_body_that_is_not_utf8_is_a_parse_error(api):
    response = api.post("/api/v1/territories/claim/", b'{"trade": "\xff"}', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert set(response.json()) == {"code", "detail", "fields"}


def test_a_cursor_that_names_no_page_is_not_found(api):
    response = api.get(LEADS, {"cursor": "not-a-cursor"})

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Invalid cursor", "fields": {}}


def test_sql_and_html_in_a_filter_are_only_text(api):
    response = api.get(LEADS, {"zip_code": "8' OR 1=1 --<script>", "trade": "<b>roofing</b>"})

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


def test_a_huge_number_is_an_invalid_filter(api):
    response = api.get(LEADS, {"min_score": "1e999999"})

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert list(response.json()["fields"]) == ["min_score"]
