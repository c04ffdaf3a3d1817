"""Property-based tests of the whole REST API against its committed schema (docs/openapi.yaml):
schemathesis generates requests for every operation and sends them in-process to the WSGI app, as a
contractor (its API key), as staff (a session) and as nobody. No request may end in a 5xx, and every
answer, errors included, must be one the schema documents: status code, content type and body."""

import base64
from pathlib import Path
from urllib.parse import urlencode

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contractors.services.api_keys import api_key_create
from leadengine.wsgi import application
from leads.models import Lead
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from territories.models import Territory
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.conftest import roofing  # noqa: F401  (fixture)
from tests.leads.factories import owner, scored_home

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
API = r"^/api/v1/"
schema = schemathesis.openapi.from_path(SCHEMA).include(path_regex=API)
reads = schemathesis.openapi.from_path(SCHEMA).include(path_regex=API, method="GET")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Bounded and derandomized: the same requests on every run, the whole file in well under a minute.
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def unthrottled(settings):
    """No throttling, and the WSGI app keeps the test's database connection (and its transaction) across
    requests, as Django's test client does, instead of closing it at the end of each request."""
    settings.API_RATE = settings.API_ANON_RATE = settings.API_AUTH_FAILURE_RATE = "100000/min"
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    cache.clear()
    yield
    cache.clear()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def market(roofing, unthrottled):  # noqa: F811
    """Acme owns 80202 and 80205 with three leads and an API key; Bolt owns 80203 with one lead."""
    acme, _ = owner(roofing, "80202", "80205"), owner(roofing, "80203")
    for score, zip_code in [(95, "80202"), (85, "80202"), (70, "80205"), (75, "80203")]:
        scored_home(roofing, score=score, urgency=10, zip_code=zip_code)
    leads_generate(trade=roofing)
    leads_route()
    _, raw = api_key_create(contractor=acme, name="CRM")
    return acme, raw


def real_ids(contractor=None) -> dict[str, list[int]]:
    """The ids each detail path may name, so that half the generated requests reach real rows."""
    leads, territories = Lead.objects.all(), Territory.objects.all()
    if contractor is not None:
        leads, territories = leads.filter(contractor=contractor), territories.filter(contractor=contractor)
    return {
        "/api/v1/leads/": sorted(leads.values_list("pk", flat=True)),
        "/api/v1/territories/": sorted(territories.values_list("pk", flat=True)),
    }


def aim(case, ids: dict[str, list[int]]) -> None:
    """Point an even generated id at a row that exists (odd ones stay as generated: mostly 404s)."""
    generated = (case.path_parameters or {}).get("id")
    if not isinstance(generated, int) or generated % 2:
        return
    for prefix, choices in ids.items():
        if case.path.startswith(prefix) and choices:
            case.path_parameters["id"] = choices[generated // 2 % len(choices)]


@schema.parametrize()
@FUZZ
def test_a_contractor_gets_documented_answers_and_never_a_server_error(case, market):
    acme, raw = market
    aim(case, real_ids(acme))

    case.call_and_validate(app=application, headers={"Authorization": f"Api-Key {raw}"}, checks=CHECKS)


@reads.parametrize()
@FUZZ
def test_staff_get_documented_answers_and_never_a_server_error(case, market, django_user_model):
    user, _ = django_user_model.objects.get_or_create(username="staff", defaults={"is_staff": True})
    browser = Client()
    browser.force_login(user)
    session = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    aim(case, real_ids())

    case.call_and_validate(app=application, cookies={django_settings.SESSION_COOKIE_NAME: session}, checks=CHECKS)


@schema.parametrize()
@settings(FUZZ, max_examples=10)
def test_a_caller_without_credentials_gets_documented_answers(case, unthrottled, db):
    case.call_and_validate(app=application, checks=CHECKS)


# Cursors, generated: text, bytes, and query strings of the tokens a cursor has (o, r, p) and one it has not,
# each value any text, all as the base64 a cursor is. Every list answers a page or 404 "Invalid cursor".

CURSOR_LISTS = ["/api/v1/leads/", "/api/v1/leads/?ordering=-score", "/api/v1/territories/", "/api/v1/runs/"]
token_values = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.floats().map(str),
    st.datetimes(timezones=st.timezones()).map(str),
    st.sampled_from(["0", "1", "-1", "1e999", "nan", "9" * 400]),
)
cursors = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode()),
    st.dictionaries(st.sampled_from(["o", "r", "p", "x"]), token_values, max_size=4).map(
        lambda tokens: base64.b64encode(urlencode(tokens).encode()).decode()
    ),
)


@pytest.fixture
def cursor_clients(market, django_user_model):
    _acme, raw = market
    _, staff_raw = api_key_create(user=django_user_model.objects.create_user("ops", is_staff=True))
    return Client(HTTP_AUTHORIZATION=f"Api-Key {raw}"), Client(HTTP_AUTHORIZATION=f"Api-Key {staff_raw}")


@given(cursor=cursors)
@settings(FUZZ, max_examples=100)
def test_any_cursor_answers_a_page_or_invalid_cursor_on_every_list(cursor_clients, cursor):
    contractor, staff = cursor_clients
    for url in CURSOR_LISTS:
        client = staff if url.startswith("/api/v1/runs/") else contractor
        response = client.get(url, {"cursor": cursor})
        assert response.status_code in (200, 404), (url, cursor, response.content)
        if response.status_code == 404:
            assert response.json() == {"code": "not_found", "detail": "Invalid cursor", "fields": {}}
        else:
            assert set(response.json()) == {"next", "previous", "results"}
