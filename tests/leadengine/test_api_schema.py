"""The committed OpenAPI schema (docs/openapi.yaml) is the one the code generates: `make schema` writes
it, and this test fails when an endpoint changes without it. API errors are JSON, even the unexpected."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import path

from leadengine import urls

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_the_committed_schema_is_the_generated_one(tmp_path, db):
    generated = tmp_path / "openapi.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(generated))

    assert generated.read_text() == SCHEMA.read_text(), (
        "the API changed: run `make schema` and commit docs/openapi.yaml"
    )


def test_an_unknown_api_url_is_a_json_404(client):
    response = client.get("/api/v1/nothing-here/")

    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "detail": "Nothing is served at /api/v1/nothing-here/.",
        "fields": {},
    }


def failing_view(request):
    raise RuntimeError("boom")


@pytest.fixture
def failing_url(settings):
    settings.DEBUG = False
    urls.urlpatterns.append(path("api/v1/failing/", failing_view))
    yield
    urls.urlpatterns.pop()


def test_an_unexpected_api_error_is_a_json_500_without_a_trace(failing_url, db):
    response = Client(raise_request_exception=False).get("/api/v1/failing/")

    assert response.status_code == 500
    assert response.json() == {
        "code": "server_error",
        "detail": "The server failed; the error is logged.",
        "fields": {},
    }
    assert b"boom" not in response.content
