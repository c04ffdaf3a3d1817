"""Production's static files storage (leadengine/settings.py, DEBUG off) without the release step's collectstatic:
a page that names a static file fails, naming the file the manifest lacks, while the API and the probes answer.
The suite otherwise renders with development's storage (tests/conftest.py); the site with a collectstatic, in a
browser on a real gunicorn, is tested in tests/browser/test_production.py."""

import pytest


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
