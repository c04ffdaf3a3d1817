"""While PostgreSQL cannot be reached, every page answers 503 with Retry-After at once: the API in its JSON error
shape (code database_unavailable), the admin and other pages a plain page; never a 500, a trace or a hang. The
outages are real: connections refused by a closed port, a server that accepts and never answers, the test's
own connection terminated by PostgreSQL (pg_terminate_backend)."""

import socket
import time

import pytest
from django.db import close_old_connections, connection, connections
from django.test import Client
from django.urls import path

from leadengine import urls
from territories.models import Territory
from tests.leads.factories import api_client, owner

LEADS = "/api/v1/leads/"
CLAIM = "/api/v1/territories/claim/"
UNAVAILABLE = {
    "code": "database_unavailable",
    "detail": "The database cannot be reached for a moment. Try again in 10 seconds.",
    "fields": {},
    "retry_after_seconds": 10,
}


def assert_api_unavailable(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == UNAVAILABLE
    assert response["Retry-After"] == "10"


def assert_page_unavailable(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Retry-After"] == "10"
    body = response.content.decode()
    assert "<h1>Service unavailable</h1>" in body
    assert "The database cannot be reached for a moment. Try again in 10 seconds." in body
    assert "Traceback" not in body
    assert "OperationalError" not in body


@pytest.fixture
def postgres_at():
    """Point the default database at another server (`postgres_at(port, connect_timeout=...)`): the test's
    connection is closed, so the next query connects there. Restored, and reconnected, after the test."""
    original = connection.settings_dict.copy()
    original_options = dict(original["OPTIONS"])

    def move(port: int, **options) -> None:
        connection.close()
        connection.settings_dict["PORT"] = str(port)
        connection.settings_dict["OPTIONS"] = original_options | options

    yield move
    connection.close()
    connection.settings_dict.update(original)
    connection.settings_dict["OPTIONS"] = original_options


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_server():
    """A port that accepts TCP connections and never says a word, as a server hung mid-restart does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def terminate_own_connection() -> None:
    """PostgreSQL drops this test's connection, as a restart or a failover does (from a second connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


@pytest.fixture
def dropped_connection(db):
    """`drop()` terminates the test's connection inside its transaction: every query after it fails, and Django
    does not open another one in the transaction. Closed at the end, so that the test's transaction ends with
    the connection (PostgreSQL rolled it back already)."""
    yield terminate_own_connection
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_an_api_call_while_postgresql_refuses_connections_is_a_json_503_and_changes_nothing(roofing, postgres_at):
    client = api_client(owner(roofing, "80202"))
    port = connection.settings_dict["PORT"]
    territories = sorted(Territory.objects.values_list("zip_code", "contractor_id"))

    postgres_at(closed_port())
    claim = client.post(CLAIM, {"trade": "roofing", "zip_codes": ["80203"]}, format="json")
    listing = client.get(LEADS)
    postgres_at(int(port))

    assert_api_unavailable(claim)
    assert_api_unavailable(listing)
    # Back at once, with nothing claimed.
    assert client.get(LEADS).status_code == 200
    assert sorted(Territory.objects.values_list("zip_code", "contractor_id")) == territories


@pytest.mark.django_db(transaction=True)
def test_a_server_that_never_answers_is_a_503_within_the_connect_timeout_not_a_hang(
    roofing,
    postgres_at,
    silent_server,
):
    client = api_client(owner(roofing, "80202"))

    postgres_at(silent_server, connect_timeout=2)
    started = time.monotonic()
    response = client.get(LEADS)
    elapsed = time.monotonic() - started

    assert_api_unavailable(response)
    assert 2 <= elapsed < 4


@pytest.mark.django_db(transaction=True)
def test_a_connection_postgresql_dropped_is_a_503_and_the_next_request_reconnects(roofing):
    client = api_client(owner(roofing, "80202"))
    assert client.get(LEADS).status_code == 200

    terminate_own_connection()
    assert_api_unavailable(client.get(LEADS))
    close_old_connections()  # what Django does at the start and end of every request (the test client does not)

    assert client.get(LEADS).status_code == 200


def test_a_staff_session_call_while_the_database_is_gone_is_a_json_503(staff_client, dropped_connection):
    dropped_connection()

    assert_api_unavailable(staff_client.get("/api/v1/runs/"))


def test_an_admin_page_while_the_database_is_gone_is_a_plain_503_page(staff_client, dropped_connection):
    dropped_connection()

    assert_page_unavailable(staff_client.get("/admin/"))


def session_writing_view(request):
    """Reads nothing from the database; the session it starts is saved after it, by SessionMiddleware."""
    from django.http import HttpResponse

    request.session["seen"] = True
    return HttpResponse("ok")


@pytest.fixture
def session_writing_urls():
    urls.urlpatterns += [
        path("api/v1/session-writing/", session_writing_view),
        path("session-writing/", session_writing_view),
    ]
    yield
    del urls.urlpatterns[-2:]


@pytest.mark.parametrize("url", ["/api/v1/session-writing/", "/session-writing/"])
def test_a_database_error_in_middleware_after_the_view_is_a_503_too(session_writing_urls, dropped_connection, url):
    browser = Client(raise_request_exception=False)
    assert browser.get(url).status_code == 200
    browser.cookies.clear()

    dropped_connection()
    response = browser.get(url)

    if url.startswith("/api/"):
        assert_api_unavailable(response)
    else:
        assert_page_unavailable(response)
