"""An import started from the admin in a real browser: an Ops user uploads a properties CSV through the form, a
real Celery worker (tests/workers.py, on the real broker and the test database) imports it, and the run's page,
refreshing itself, shows it end with its counts; the rejects file downloads from the page. No console error,
no violation of the pages' Content-Security-Policy."""

import re

from django.contrib.auth.models import Group
from playwright.sync_api import expect

from leadengine.services.roles import roles_seed
from scoring.models import ImportRun, Property
from tests.browser.conftest import user

CSV = (
    b"parcel_id,address,zip,year_built\nW1,1 Pearl St,80302,1990\nW2,2 Pearl St,80302,19x2\nW3,3 Pearl St,80302,1993\n"
)


def test_ops_upload_a_properties_file_and_watch_the_run_end_with_its_counts(
    screen, transactional_db, zip_codes, worker, settings, tmp_path
):
    settings.IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    roles_seed()
    user("ops").groups.add(Group.objects.get(name="Ops"))
    screen.log_in("ops")
    page = screen.page

    screen.goto("/admin/scoring/importrun/")
    page.get_by_role("link", name="Import a file").click()
    expect(page).to_have_url(re.compile(r"/admin/scoring/importrun/upload/$"))
    page.locator("#id_file").set_input_files(files=[{"name": "pearl.csv", "mimeType": "text/csv", "buffer": CSV}])
    page.locator("#id_kind").select_option("properties")
    page.locator("#id_as_of").fill("2025-06-30")
    screen.shot("form")
    page.get_by_role("button", name="Upload and import").click()

    expect(page).to_have_url(re.compile(r"/admin/scoring/importrun/\d+/change/$"))
    expect(page.locator(".messagelist .success")).to_contain_text("queued: a worker imports pearl.csv")
    screen.shot("queued")
    # The worker imports it; the page reloads itself until the run has ended.
    expect(page.locator(".field-status .readonly")).to_have_text("Loaded with rejects", timeout=60_000)
    expect(page.locator("#import-progress")).to_have_count(0)
    counts = [("rows_read", "3"), ("rows_inserted", "2"), ("rows_rejected", "1"), ("as_of", "June 30, 2025")]
    for field, value in counts:
        expect(page.locator(f".field-{field} .readonly")).to_have_text(value)
    screen.shot("ended")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download rejects").click()
    rejects = download.value
    assert rejects.suggested_filename.endswith("-pearl.csv.rejects.csv")
    with open(rejects.path(), encoding="utf-8") as handle:
        assert handle.read() == "line,column,value,reason\n3,year_built,19x2,not a number\n"

    run = ImportRun.objects.get()
    assert (run.status, run.origin, run.rows_inserted) == ("partial", "admin", 2)
    assert sorted(Property.objects.values_list("parcel_id", flat=True)) == ["W1", "W3"]
    assert screen.errors == []
