import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_healthz_answers_without_authentication(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {}}


@pytest.mark.django_db
def test_readyz_reports_database_redis_and_broker_reachable(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "broker": "ok"}}


def test_api_schema_is_served_to_anyone(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/readyz" in response.content


def test_api_docs_page_loads_its_assets_from_the_project(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"drf_spectacular_sidecar/swagger-ui-dist" in response.content


@pytest.mark.django_db
@override_settings(DEBUG=False, SECURE_SSL_REDIRECT=True)
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_plain_http_in_production(client, path):
    """A load balancer probes over plain HTTP behind its TLS: a redirect to https would fail the probe."""
    response = client.get(path)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
@override_settings(DEBUG=False, SECURE_SSL_REDIRECT=True)
@pytest.mark.parametrize("path", ["/admin/", "/api/v1/leads/", "/healthz/", "/healthzz", "/api/v1/readyz"])
def test_everything_else_is_redirected_to_https_in_production(client, path):
    response = client.get(path)

    assert response.status_code == 301
    assert response["Location"] == f"https://testserver{path}"
