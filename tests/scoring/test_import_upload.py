"""Imports started from the admin: staff upload a file (Import runs > Import a file), a queued run is recorded
and its Celery task sent; the task (run here in-process, on the real database) claims the run once and imports
the file; a lost task is sent again by the recovery sweep; the run's page shows progress, counts and error, and
its rejects file is downloaded by staff who may see import runs only. Real PostgreSQL and Redis throughout."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from leadengine.celery import app as celery_app
from leadengine.services.recovery import jobs_recover
from leadengine.services.roles import roles_seed
from scoring.models import ImportProfile, ImportRun, Property
from scoring.services.imports.run import ImportHeartbeat
from scoring.services.imports.uploads import import_upload_queue
from scoring.tasks import import_run_start
from tests.admin_pages import messages_of, page_of
from tests.racing import race

PASSWORD = "pw-for-tests-only"
UPLOAD_URL = "/admin/scoring/importrun/upload/"
LIST_URL = "/admin/scoring/importrun/"
GOOD = b"parcel_id,address,zip,year_built\nU1,1 Pearl St,80302,1990\nU2,2 Pearl St,80302,1991\nU3,3 Pearl St,80302,\n"
WITH_A_BAD_ROW = b"parcel_id,address,zip,year_built\nU1,1 Pearl St,80302,1990\nU2,2 Pearl St,80302,19x1\n"
CLOSED_PORT = "redis://127.0.0.1:1/0"  # nothing listens there: every publish is refused


def page_url(run: ImportRun) -> str:
    return f"/admin/scoring/importrun/{run.pk}/change/"


def rejects_url(run: ImportRun) -> str:
    return f"/admin/scoring/importrun/{run.pk}/rejects/"


def staff(username: str, *, role: str | None = None, permissions: tuple[str, ...] = (), **client_options) -> Client:
    roles_seed()
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="scoring", codename=codename))
    client = Client(**client_options)
    client.force_login(user)
    return client


@pytest.fixture
def upload_dir(settings, tmp_path) -> Path:
    settings.IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.IMPORT_UPLOAD_DIR


@pytest.fixture
def ops(db, zip_codes, upload_dir) -> Client:
    """A staff user of the Ops role, who may import files."""
    return staff("ops", role="Ops")


@pytest.fixture
def lead_manager(db) -> Client:
    """A staff user of the Lead manager role: nothing of import runs."""
    return staff("leads", role="Lead manager")


def stored_files(directory: Path) -> list[str]:
    """Every file in the upload directory, hidden ones (an upload being received) included."""
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def sent_import_runs() -> list[int]:
    """The run ids of the scoring.import_run_start messages waiting on the tests' own queue."""
    queue = celery_app.conf.task_default_queue
    with celery_app.connection_for_write() as broker:
        messages = [json.loads(m) for m in broker.default_channel.client.lrange(queue, 0, -1)]
    return [
        json.loads(base64.b64decode(m["body"]))[0][0]
        for m in messages
        if m["headers"]["task"] == "scoring.import_run_start"
    ]


def forget_sent() -> None:
    """The broker loses the messages waiting (e.g. Redis restarted empty)."""
    with celery_app.connection_for_write() as broker:
        broker.default_channel.client.delete(celery_app.conf.task_default_queue)


def upload(client: Client, content: bytes = GOOD, name: str = "county properties.csv", **fields):
    data = {"file": SimpleUploadedFile(name, content, content_type="text/csv"), "kind": "properties", **fields}
    return client.post(UPLOAD_URL, data)


def parcels() -> list[str]:
    return list(Property.objects.order_by("parcel_id").values_list("parcel_id", flat=True))


def text_of(response) -> str:
    return page_of(response).replace("\xa0", " ")


COUNT_FIELDS = ["status", "rows_read", "rows_inserted", "rows_updated", "rows_unchanged", "rows_duplicate",
                "rows_older", "rows_skipped", "rows_rejected"]  # fmt: skip


def readonly(html: str, field: str) -> str:
    """The value a read-only change form shows for `field`."""
    found = re.search(rf'field-{field}\b.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert found, f"no field {field} on the page"
    return found.group(1).strip()


# --- The upload --------------------------------------------------------------------------------------------


def test_an_upload_stores_the_file_queues_a_run_and_sends_its_task(
    ops, upload_dir, idle_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(ops, as_of="2025-06-30")

    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page_url(run)
    stored = Path(run.file_name)
    assert stored.parent == upload_dir
    assert stored.name.endswith("-county_properties.csv")
    assert stored.read_bytes() == GOOD
    assert stored_files(upload_dir) == [stored.name]  # nothing of the upload left beside it
    assert (run.status, run.origin, run.kind, run.as_of, run.profile, run.file_size) == (
        "queued", "admin", "properties", dt.date(2025, 6, 30), None, len(GOOD),
    )  # fmt: skip
    assert run.heartbeat_at is not None  # while queued: when its task was sent
    assert sent_import_runs() == [run.pk]
    assert Property.objects.count() == 0  # imported by a worker, not by the request
    page = ops.get(response["Location"])
    queued = f"Run {run.pk} queued: a worker imports county properties.csv in the background."
    assert messages_of(page) == [("success", queued)]


def test_two_uploads_of_the_same_file_are_stored_apart(ops, upload_dir, idle_queue):
    upload(ops)
    upload(ops)

    names = {Path(name).name for name in ImportRun.objects.values_list("file_name", flat=True)}
    assert len(names) == 2
    assert stored_files(upload_dir) == sorted(names)


def test_the_import_runs_list_offers_the_upload_to_ops_only(ops, upload_dir):
    viewer = staff("viewer", permissions=("view_importrun",))

    assert 'href="/admin/scoring/importrun/upload/"' in page_of(ops.get(LIST_URL))
    listed = viewer.get(LIST_URL)
    assert listed.status_code == 200
    assert "/admin/scoring/importrun/upload/" not in page_of(listed)


def test_a_user_who_may_not_import_is_refused_and_nothing_is_stored(db, lead_manager, upload_dir, idle_queue):
    viewer = staff("viewer", permissions=("view_importrun",))

    for client in (lead_manager, viewer):
        assert client.get(UPLOAD_URL).status_code == 403
        assert upload(client).status_code == 403

    anonymous = Client().post(UPLOAD_URL, {"kind": "properties"})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    assert ImportRun.objects.count() == 0
    assert stored_files(upload_dir) == []
    assert sent_import_runs() == []


def test_the_upload_checks_its_csrf_token_itself(db, zip_codes, upload_dir, idle_queue):
    browser = staff("ops", role="Ops", enforce_csrf_checks=True)

    assert upload(browser).status_code == 403
    assert (ImportRun.objects.count(), stored_files(upload_dir)) == (0, [])  # the file received is dropped

    browser.get(UPLOAD_URL)  # the form sets the CSRF cookie
    assert upload(browser, csrfmiddlewaretoken=browser.cookies["csrftoken"].value).status_code == 302
    assert ImportRun.objects.get().status == "queued"


def test_a_file_over_the_size_limit_is_refused_with_a_form_error_and_never_stored(ops, upload_dir, settings):
    settings.IMPORT_UPLOAD_MAX_BYTES = len(GOOD) - 1

    response = upload(ops)

    assert response.status_code == 200
    assert (
        f"The file is larger than the upload limit of {len(GOOD) - 1} bytes (IMPORT_UPLOAD_MAX_BYTES): import it "
        "with `manage.py import_data` on the server, or raise the limit." in text_of(response)
    )
    assert "This field is required" not in text_of(response)
    assert ImportRun.objects.count() == 0
    assert stored_files(upload_dir) == []


def test_a_file_of_exactly_the_size_limit_is_taken(ops, upload_dir, settings, idle_queue):
    settings.IMPORT_UPLOAD_MAX_BYTES = len(GOOD)

    assert upload(ops).status_code == 302
    assert Path(ImportRun.objects.get().file_name).read_bytes() == GOOD


def test_a_profile_of_another_kind_and_a_future_as_of_date_are_refused(ops, upload_dir):
    profile = ImportProfile.objects.create(name="upload-test-storms", kind="storms")
    tomorrow = timezone.localdate() + dt.timedelta(days=1)

    response = upload(ops, profile=profile.pk, as_of=tomorrow.isoformat())

    assert response.status_code == 200
    assert "The profile upload-test-storms reads storm events files, not properties." in text_of(response)
    assert "The as-of date is in the future: a file is true as of today at the latest." in text_of(response)
    assert ImportRun.objects.count() == 0
    assert stored_files(upload_dir) == []


def test_the_upload_answers_while_the_broker_is_down_and_the_sweep_sends_the_run_later(
    ops, upload_dir, idle_queue, django_capture_on_commit_callbacks
):
    celery_app.conf.broker_write_url = CLOSED_PORT
    celery_app.amqp._producer_pool = celery_app._pool = None
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(ops)
    finally:
        celery_app.conf.broker_write_url = None
        celery_app.amqp._producer_pool = celery_app._pool = None
    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert (run.status, run.heartbeat_at) == ("queued", None)  # never sent
    assert sent_import_runs() == []

    assert jobs_recover(now=run.started_at + dt.timedelta(seconds=30))["imports"] == {"abandoned": 0, "resent": 0}
    later = run.started_at + dt.timedelta(minutes=1, seconds=1)
    assert jobs_recover(now=later)["imports"] == {"abandoned": 0, "resent": 1}
    assert sent_import_runs() == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.heartbeat_at) == ("queued", later)


# --- The task ----------------------------------------------------------------------------------------------


def test_the_task_imports_the_uploaded_file_into_the_run(ops, upload_dir, idle_queue):
    profile = ImportProfile.objects.create(name="upload-test-county", kind="properties")
    upload(ops, profile=profile.pk, as_of="2025-06-30")
    queued = ImportRun.objects.get()

    assert import_run_start(queued.pk) == "succeeded"

    run = ImportRun.objects.get()
    assert (run.status, run.origin, run.profile, run.as_of, run.error) == (
        "succeeded", "admin", profile, dt.date(2025, 6, 30), "",
    )  # fmt: skip
    assert {field: getattr(run, field) for field in COUNT_FIELDS} == {
        "status": "succeeded", "rows_read": 3, "rows_inserted": 3, "rows_updated": 0, "rows_unchanged": 0,
        "rows_duplicate": 0, "rows_older": 0, "rows_skipped": 0, "rows_rejected": 0,
    }  # fmt: skip
    assert run.started_at >= queued.started_at
    assert run.finished_at >= run.started_at
    assert parcels() == ["U1", "U2", "U3"]


def test_a_second_delivery_of_the_task_leaves_the_run_alone(ops, upload_dir, idle_queue):
    upload(ops)
    run_id = ImportRun.objects.get().pk
    assert import_run_start(run_id) == "succeeded"
    first = ImportRun.objects.get()
    Property.objects.filter(parcel_id="U1").update(address="changed since")

    assert import_run_start(run_id) == "not queued"

    assert ImportRun.objects.get().finished_at == first.finished_at
    assert Property.objects.get(parcel_id="U1").address == "changed since"  # not imported again


def test_a_task_for_a_run_that_is_gone_does_nothing(db):
    assert import_run_start(987654321) == "not queued"


@pytest.mark.django_db(transaction=True)
def test_deliveries_racing_on_their_own_connections_import_the_file_once(zip_codes, upload_dir, idle_queue):
    run = import_upload_queue(upload=SimpleUploadedFile("race.csv", GOOD), kind="properties")
    assert sent_import_runs() == [run.pk]  # committed at once: sent

    results, errors = race(import_run_start, [run.pk] * 4)

    assert errors == []
    assert sorted(results) == ["not queued", "not queued", "not queued", "succeeded"]
    run.refresh_from_db()
    assert (run.status, run.rows_inserted) == ("succeeded", 3)
    assert parcels() == ["U1", "U2", "U3"]


def test_a_failed_import_shows_its_error_on_the_run_page(ops, upload_dir, idle_queue):
    upload(ops, content=b"address,zip\n1 Pearl St,80302\n")
    run = ImportRun.objects.get()

    assert import_run_start(run.pk) == "failed"

    run.refresh_from_db()
    assert run.error
    page = ops.get(page_url(run))
    assert page.status_code == 200
    text = text_of(page)
    assert "Failed (nothing loaded)" in text
    assert run.error in text
    assert 'http-equiv="refresh"' not in page.content.decode()  # ended: the page stays still
    assert Property.objects.count() == 0


# --- Progress and the run's page ---------------------------------------------------------------------------


def test_the_heartbeat_writes_the_bytes_and_rows_read(db):
    run = ImportRun.objects.create(kind="properties", file_name="/imports/big.csv", status="running")
    heartbeat = ImportHeartbeat(run.pk)
    seen = heartbeat.progress(None)

    seen(47_185_920, 125_829_120, 412_000)
    heartbeat.beat()

    run.refresh_from_db()
    assert (run.bytes_read, run.rows_read) == (47_185_920, 412_000)
    assert run.heartbeat_at is not None


def test_a_running_run_page_shows_its_progress_and_refreshes_itself(ops):
    run = ImportRun.objects.create(
        kind="properties",
        file_name="/imports/big.csv",
        status="running",
        file_size=120 * 1024 * 1024,
        bytes_read=45 * 1024 * 1024,
        rows_read=412_000,
    )

    page = ops.get(page_url(run))

    html = page.content.decode()
    assert '<meta http-equiv="refresh" content="3">' in html
    assert '<progress max="100" value="37">' in html
    assert "37% (45.0 MB of 120.0 MB), 412,000 rows read" in text_of(page)
    assert page["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self';")


def test_a_queued_run_page_says_it_waits_for_a_worker_and_refreshes_itself(ops):
    run = ImportRun.objects.create(kind="storms", file_name="/imports/storms.csv", status="queued", origin="admin")

    page = ops.get(page_url(run))

    queued = timezone.localtime(run.started_at)
    assert f"Queued at {queued:%Y-%m-%d %H:%M:%S}: waiting for a worker to start it." in text_of(page)
    assert '<meta http-equiv="refresh" content="3">' in page.content.decode()


def test_an_ended_run_page_shows_every_count_and_the_rejects_link(ops, upload_dir, idle_queue):
    upload(ops, content=WITH_A_BAD_ROW)
    run = ImportRun.objects.get()
    assert import_run_start(run.pk) == "partial"
    run.refresh_from_db()

    page = ops.get(page_url(run))

    html = page.content.decode()
    shown = {field: readonly(html, field) for field in COUNT_FIELDS}
    assert shown == {
        "status": "Loaded with rejects", "rows_read": "2", "rows_inserted": "1", "rows_updated": "0",
        "rows_unchanged": "0", "rows_duplicate": "0", "rows_older": "0", "rows_skipped": "0", "rows_rejected": "1",
    }  # fmt: skip
    assert readonly(html, "duration") == f"{run.duration_seconds:.1f}"
    assert f'<a href="{rejects_url(run)}" class="rejects-download">Download rejects</a>' in html
    assert 'http-equiv="refresh"' not in html


# --- The rejects download ----------------------------------------------------------------------------------


def test_the_rejects_file_is_downloaded_by_staff_who_may_see_import_runs_only(
    ops, lead_manager, upload_dir, idle_queue
):
    upload(ops, content=WITH_A_BAD_ROW)
    run = ImportRun.objects.get()
    import_run_start(run.pk)
    run.refresh_from_db()
    rejects = Path(run.rejects_file)
    assert rejects.parent == upload_dir
    viewer = staff("viewer", permissions=("view_importrun",))

    for client in (ops, viewer):
        response = client.get(rejects_url(run))
        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv"
        assert response["Content-Disposition"] == f'attachment; filename="{rejects.name}"'
        assert b"".join(response.streaming_content) == (b"line,column,value,reason\n3,year_built,19x1,not a number\n")
    assert lead_manager.get(rejects_url(run)).status_code == 403
    anonymous = Client().get(rejects_url(run))
    assert (anonymous.status_code, anonymous["Location"].startswith("/admin/login/")) == (302, True)


def test_the_rejects_download_is_404_when_the_file_is_gone_or_there_is_none(ops, upload_dir, idle_queue):
    upload(ops, content=WITH_A_BAD_ROW)
    partial = ImportRun.objects.get()
    import_run_start(partial.pk)
    upload(ops)
    clean = ImportRun.objects.exclude(pk=partial.pk).get()
    import_run_start(clean.pk)
    partial.refresh_from_db()

    assert ops.get(rejects_url(clean)).status_code == 404
    Path(partial.rejects_file).unlink()
    assert ops.get(rejects_url(partial)).status_code == 404
    assert "(not on this server any more)" in text_of(ops.get(page_url(partial)))
    assert ops.get("/admin/scoring/importrun/987654321/rejects/").status_code == 404


# --- The recovery sweep ------------------------------------------------------------------------------------


def test_a_queued_run_whose_task_was_lost_is_sent_again_by_the_sweep_and_then_imported(
    ops, upload_dir, idle_queue, django_capture_on_commit_callbacks, settings
):
    settings.JOB_QUEUE_TIMEOUT_MINUTES = 3
    with django_capture_on_commit_callbacks(execute=True):
        upload(ops)
    run = ImportRun.objects.get()
    sent = run.heartbeat_at
    forget_sent()

    assert jobs_recover(now=sent + dt.timedelta(minutes=2, seconds=59))["imports"] == {"abandoned": 0, "resent": 0}
    again = sent + dt.timedelta(minutes=3, seconds=1)
    assert jobs_recover(now=again)["imports"] == {"abandoned": 0, "resent": 1}
    assert sent_import_runs() == [run.pk]
    assert jobs_recover(now=again)["imports"] == {"abandoned": 0, "resent": 0}  # sent once per wait
    assert sent_import_runs() == [run.pk]

    assert import_run_start(sent_import_runs()[0]) == "succeeded"  # what the worker taking it does
    assert parcels() == ["U1", "U2", "U3"]
    assert jobs_recover(now=again + dt.timedelta(hours=1))["imports"] == {"abandoned": 0, "resent": 0}


def test_the_sweep_closes_a_running_import_whose_process_died_and_leaves_live_ones(db, settings):
    settings.IMPORT_STALE_SECONDS = 300
    now = timezone.now()
    dead = ImportRun.objects.create(kind="properties", file_name="/a.csv", status="running", heartbeat_at=now)
    live = ImportRun.objects.create(
        kind="properties", file_name="/b.csv", status="running", heartbeat_at=now + dt.timedelta(minutes=4)
    )

    assert jobs_recover(now=now + dt.timedelta(minutes=5, seconds=1))["imports"] == {"abandoned": 1, "resent": 0}

    dead.refresh_from_db()
    live.refresh_from_db()
    assert (dead.status, live.status) == ("failed", "running")
    assert dead.error.startswith("abandoned: the importing process gave no sign of life for 300 s")
