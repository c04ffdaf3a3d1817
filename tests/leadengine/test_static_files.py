"""Production's static files storage (leadengine/settings.py, DEBUG off) without the release step's collectstatic:
a page that names a static file fails, naming the file the manifest lacks, while the API and /healthz answer, and
/readyz says the process is not ready (a load balancer keeps sending to the processes that have their files).
The suite otherwise renders with development's storage (tests/conftest.py); the site with a collectstatic, in a
browser on a real gunicorn, is tested in tests/browser/test_production.py."""

import pytest
from django.core.management import call_command


@pytest.fixture
def production_storage(settings, tmp_path):
    """Production's storage on a STATIC_ROOT of the test's own, where nothing was collected."""
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
    }
    return settings.STATIC_ROOT


def test_without_collectstatic_a_page_fails_naming_the_uncollected_file_and_the_api_still_answers(
    client, db, production_storage
):
    with pytest.raises(ValueError, match=r"^Missing staticfiles manifest entry for 'admin/css/base\.css'$"):
        client.get("/admin/login/")

    assert client.get("/healthz").status_code == 200
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert (schema.status_code, schema.json()["info"]["title"]) == (200, "LeadEngine API")


def test_readyz_is_unavailable_until_the_static_files_are_collected(client, db, production_storage):
    uncollected = client.get("/readyz")

    assert uncollected.status_code == 503
    assert uncollected.json()["checks"]["static"] == "unavailable: not collected"

    call_command("collectstatic", "--noinput", verbosity=0)
    ready = client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok", "static": "ok"}


def test_development_storage_has_no_static_check(client, db):
    assert "static" not in client.get("/readyz").json()["checks"]
