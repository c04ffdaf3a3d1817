"""The committed OpenAPI schema (docs/openapi.yaml) is the one the code generates: `make schema` writes
it, and this test fails when an endpoint changes without it. API errors are JSON, even the unexpected."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import path
from drf_spectacular.generators import SchemaGenerator

from leadengine import urls

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_the_committed_schema_is_the_generated_one(tmp_path, db):
    generated = tmp_path / "openapi.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(generated))

    assert generated.read_text() == SCHEMA.read_text(), (
        "the API changed: run `make schema` and commit docs/openapi.yaml"
    )


def test_every_operation_is_grouped_under_one_declared_tag_and_every_tag_is_used(db):
    declared = [tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]]
    schema = SchemaGenerator().get_schema(request=None, public=True)

    tags = {
        f"{method.upper()} {url}": operation.get("tags")
        for url, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert len(tags) > 20
    untagged = {operation: found for operation, found in tags.items() if not found or len(found) != 1}
    assert untagged == {}, "each operation has exactly one tag"
    undeclared = {operation: found for operation, found in tags.items() if found[0] not in declared}
    assert undeclared == {}, 'every tag is declared, with its description, in SPECTACULAR_SETTINGS["TAGS"]'
    assert {found[0] for found in tags.values()} == set(declared)  # and none is declared for nothing
    assert tags["POST /api/v1/leads/{id}/accept/"] == ["leads"]
    assert tags["POST /api/v1/waitlist/{id}/accept/"] == ["waitlist"]
    assert tags["GET /readyz"] == ["health"]
    assert all(tag["description"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"])
    # The docs show the groups in the declared order, with their descriptions.
    assert yaml.safe_load(SCHEMA.read_text())["tags"] == settings.SPECTACULAR_SETTINGS["TAGS"]


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
