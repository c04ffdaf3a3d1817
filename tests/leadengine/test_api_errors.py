"""Inputs the API fuzz tests (test_api_fuzz.py) turned up, pinned one by one: each is answered with a JSON
error or an empty page, never a server error."""

import base64

import pytest
from rest_framework.test import APIClient

from leads.models import Lead
from territories.models import Territory, WaitlistEntry
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


# Cursors: only what a page link carries names a page; anything else is 404 "Invalid cursor", on every list.

INVALID_CURSOR = {"code": "not_found", "detail": "Invalid cursor", "fields": {}}
LISTS = [
    "/api/v1/leads/",
    "/api/v1/leads/?ordering=-score",
    "/api/v1/leads/?ordering=urgency",
    "/api/v1/territories/",
    "/api/v1/runs/",
]


def encoded(cursor: str | bytes) -> str:
    return base64.b64encode(cursor.encode() if isinstance(cursor, str) else cursor).decode("ascii")


CRAFTED_CURSORS = {
    "not base64": "%%%",
    "base64 without its padding": encoded("p=2024-01-01")[:-2],
    "base64 of bytes that are not text": encoded(b"\xff\xfe\x00"),
    "base64 of text that is no query string": encoded("garbage"),
    "a token nobody writes": encoded("x=1"),
    "a repeated position": encoded("p=1&p=2"),
    "a position that is no value": encoded("p=not-a-value"),
    "a position with a NUL character": encoded("p=2026-01-01 00:00:00+00:00\x00"),
    "a position in year 99999": encoded("p=99999-01-01 00:00:00+00:00"),
    "a position past the calendar's start once in UTC": encoded("p=0001-01-01 00:00:00+01:00"),
    "a date-time position without its UTC offset": encoded("p=2026-01-01 00:00:00"),
    "a position of 5,000 digits": encoded("p=" + "9" * 5000),
    "an infinite position": encoded("p=1e999"),
    "a negative offset": encoded("o=-1"),
    "an offset that is no number": encoded("o=ten"),
    "a reverse flag of 2": encoded("r=2"),
    "a reverse flag of -1": encoded("r=-1"),
    "an empty reverse flag": encoded("r="),
    "a cursor of 10,000 characters": encoded("o=1&p=" + "1" * 7_500),
}


@pytest.fixture
def lists(roofing, django_user_model):  # noqa: F811
    """Acme's client (one territory, two leads assigned to it) and a staff key's client (the run list)."""
    from contractors.services.api_keys import api_key_create
    from leads.services.generation import leads_generate
    from leads.services.routing import leads_route
    from tests.leads.factories import scored_home

    acme = owner(roofing, "80202")
    for score in (95, 85):
        scored_home(roofing, score=score, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    _, raw = api_key_create(user=django_user_model.objects.create_user("ops", is_staff=True))
    staff = APIClient()
    staff.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return api_client(acme), staff


def lead_states() -> list[tuple[int, str]]:
    return list(Lead.objects.order_by("pk").values_list("pk", "state"))


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("cursor", CRAFTED_CURSORS.values(), ids=CRAFTED_CURSORS.keys())
def test_a_crafted_cursor_is_an_invalid_cursor_and_delivers_nothing(lists, url, cursor):
    contractor, staff = lists
    client = staff if url.startswith("/api/v1/runs/") else contractor
    before = lead_states()

    response = client.get(url, {"cursor": cursor})

    assert response.status_code == 404
    assert response.json() == INVALID_CURSOR
    assert lead_states() == before


@pytest.mark.parametrize("url", LISTS)
def test_a_huge_offset_is_capped_not_an_error(lists, url):
    contractor, staff = lists
    client = staff if url.startswith("/api/v1/runs/") else contractor

    response = client.get(url, {"cursor": encoded("o=" + "9" * 30)})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_the_cursors_of_page_links_walk_forward_and_back_through_ties(roofing):  # noqa: F811
    """Five leads of one score: the links carry offsets (o), reverse flags (r) and float positions (p)."""
    from leads.services.generation import leads_generate
    from leads.services.routing import leads_route
    from tests.leads.factories import scored_home

    client = api_client(owner(roofing, "80202"))
    for score in (90, 80, 80, 80, 80, 80, 70):
        scored_home(roofing, score=score, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    expected = list(Lead.objects.order_by("-score", "-id").values_list("pk", flat=True))

    pages, page = [], client.get(LEADS, {"ordering": "-score", "page_size": 2}).json()
    while True:
        pages.append([lead["id"] for lead in page["results"]])
        if not page["next"]:
            break
        page = client.get(page["next"]).json()
    backwards = []
    while page["previous"]:
        page = client.get(page["previous"]).json()
        backwards.append([lead["id"] for lead in page["results"]])

    assert [pk for ids in pages for pk in ids] == expected
    assert backwards == pages[-2::-1]


# Bodies: any nesting, any size, any encoding or media type gets a JSON 4xx; nothing is stored.

WAITLIST = "/api/v1/waitlist/"
CLAIM = "/api/v1/territories/claim/"


def stored() -> tuple[list, list]:
    return list(WaitlistEntry.objects.values_list("pk", flat=True)), list(
        Territory.objects.order_by("pk").values_list("pk", "zip_code", "contractor_id", "ended_at")
    )


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"trade": ' * 100_000 + "1" + "}" * 100_000,
        '{"trade": "roofing", "zip_code": ' + "[" * 33 + "]" * 33 + "}",
    ],
    ids=["a list 100,000 deep", "an object 100,000 deep", "a value 33 deep"],
)
def test_json_nested_too_deep_is_a_parse_error_and_stores_nothing(api, body):
    before = stored()

    response = api.post(WAITLIST, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "code": "parse_error",
        "detail": "JSON parse error - the body is nested deeper than 32 levels.",
        "fields": {},
    }
    assert stored() == before


def test_json_nested_32_deep_is_read_and_its_field_refused(api):
    body = '{"trade": "roofing", "zip_code": ' + "[" * 31 + "]" * 31 + "}"

    response = api.post(WAITLIST, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == ["zip_code"]
    assert not WaitlistEntry.objects.exists()


def test_a_30_mb_body_is_413_too_large_in_json_and_stores_nothing(api):
    before = stored()
    body = '{"trade": "roofing", "zip_codes": ["80203"], "note": "' + "x" * (30 * 1024 * 1024) + '"}'

    response = api.post(CLAIM, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        "code": "too_large",
        "detail": "The request body is larger than 2,621,440 bytes; nothing was read.",
        "fields": {},
    }
    assert stored() == before


def test_the_body_limit_follows_its_setting(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = {"trade": "roofing", "zip_codes": ["80203"], "note": "x" * 1_000}

    response = api.post(CLAIM, body, format="json")

    assert (response.status_code, response.json()["detail"]) == (
        413,
        "The request body is larger than 1,000 bytes; nothing was read.",
    )
    assert not Territory.objects.filter(zip_code="80203").exists()


def test_too_many_form_fields_is_a_json_400_and_stores_nothing(api):
    before = stored()
    body = "&".join(f"field{n}=1" for n in range(1_001))

    response = api.post(WAITLIST, body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert response.json() == {
        "code": "too_many_fields",
        "detail": "The request has more parameters or files than the server reads; nothing was read.",
        "fields": {},
    }
    assert stored() == before


def test_too_many_query_parameters_is_a_json_400(api):
    response = api.get(LEADS + "?" + "&".join(f"p{n}=1" for n in range(1_001)))

    assert (response.status_code, response.json()["code"]) == (400, "too_many_fields")


def test_a_body_of_a_media_type_the_api_does_not_read_is_a_json_415(api):
    before = stored()

    response = api.post(WAITLIST, "trade=roofing&zip_code=80203", content_type="text/plain")

    assert response.status_code == 415
    assert response.json() == {
        "code": "unsupported_media_type",
        "detail": 'Unsupported media type "text/plain" in request.',
        "fields": {},
    }
    assert stored() == before


def test_a_form_body_that_is_not_utf8_stores_nothing(api):
    response = api.post(WAITLIST, b"trade=roof\xffing&zip_code=80203", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == ["trade"]
    assert not WaitlistEntry.objects.exists()


def test_a_json_body_in_a_charset_it_is_not_is_a_parse_error(api):
    response = api.post(WAITLIST, b'{"trade": "roofing"}', content_type="application/json; charset=utf-16")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert not WaitlistEntry.objects.exists()


def test_a_request_django_refuses_outside_the_api_views_is_json_under_api(api):
    response = api.get(LEADS, HTTP_HOST="attacker.example")

    assert response.status_code == 400
    assert response.json() == {"code": "bad_request", "detail": "The request is malformed.", "fields": {}}


def test_a_form_too_large_for_the_admin_is_a_413_page(client, db):
    response = client.post("/admin/login/", {"username": "x" * (3 * 1024 * 1024), "password": "x"})

    assert response.status_code == 413
    assert b"<h1>Request too large</h1>" in response.content
