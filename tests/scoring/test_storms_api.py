"""POST /api/v1/storms/: staff send storm reports; they are imported as a storm file would be, and what they
change starts the storm fast path (its task sent once they are stored)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from contractors.models import Contractor
from scoring.models import ImportRun, StormEvent
from tests.contractors.conftest import acme, trades  # noqa: F401  (fixtures)
from tests.leads.factories import api_client

pytestmark = pytest.mark.django_db


def report(**fields) -> dict:
    values = {
        "event_id": "NWS-1",
        "event_date": timezone.localdate().isoformat(),
        "kind": "hail",
        "magnitude": 1.75,
        "latitude": 39.75,
        "longitude": -104.99,
        "radius_miles": 3,
    }
    return values | fields


def tasks_named(messages: list[dict], name: str) -> int:
    return sum(1 for message in messages if message["headers"]["task"] == name)


def test_staff_post_storm_reports_they_are_stored_and_the_fast_path_is_sent(
    staff_api, zip_codes, idle_queue, django_capture_on_commit_callbacks
):
    _, client = staff_api
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            "/api/v1/storms/",
            {"events": [report(), report(event_id="NWS-2", kind="wind", magnitude=70, radius_miles=None)]},
            format="json",
        )

    assert answer.status_code == 200, answer.content
    run = ImportRun.objects.get()
    assert answer.json() == {
        "import_run": run.pk, "status": "succeeded", "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 0,
        "rejects": [], "rescoring": "pending",
    }  # fmt: skip
    assert (run.kind, run.origin, run.file_name) == ("storms", "api", "API: 2 records")
    stored = {storm.event_id: storm for storm in StormEvent.objects.all()}
    assert sorted(run.changed_storms) == sorted(storm.pk for storm in stored.values())
    assert (stored["NWS-1"].magnitude, stored["NWS-1"].radius_miles) == (1.75, 3.0)
    assert stored["NWS-2"].radius_miles == 5.0  # the default radius of a wind report
    assert tasks_named(idle_queue(), "leadengine.imports_rescore") == 1

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post("/api/v1/storms/", {"events": [report()]}, format="json")

    assert again.status_code == 200
    assert (again.json()["unchanged"], again.json()["rescoring"]) == (1, "")
    assert tasks_named(idle_queue(), "leadengine.imports_rescore") == 1  # nothing new to rescore: none sent


def test_refused_reports_come_back_with_their_reasons_and_the_others_are_stored(staff_api, zip_codes):
    _, client = staff_api
    answer = client.post(
        "/api/v1/storms/",
        {"events": [report(kind="snow"), report(event_id="NWS-2", magnitude=12)]},
        format="json",
    )

    assert answer.status_code == 400
    assert answer.json()["rejects"] == [
        {"index": 0, "field": "kind", "value": "snow", "reason": "not one of hail, wind, tornado, hurricane"},
        {
            "index": 1,
            "field": "magnitude",
            "value": "12.0",
            "reason": "hail is measured in inches; over 10 is not hail",
        },
    ]
    assert not StormEvent.objects.exists()

    partly = client.post("/api/v1/storms/", {"events": [report(kind="snow"), report(event_id="NWS-3")]}, format="json")

    assert partly.status_code == 200
    assert (partly.json()["inserted"], partly.json()["rejected"]) == (1, 1)
    assert list(StormEvent.objects.values_list("event_id", flat=True)) == ["NWS-3"]


def test_a_malformed_request_is_a_clear_error_and_stores_nothing(staff_api, zip_codes):
    _, client = staff_api
    empty = client.post("/api/v1/storms/", {"events": []}, format="json")
    missing = client.post("/api/v1/storms/", {"events": [{"event_id": "X"}]}, format="json")

    assert empty.status_code == 400
    assert empty.json()["code"] == "invalid"
    assert missing.status_code == 400
    assert set(missing.json()["fields"]) == {"events.0.event_date", "events.0.kind", "events.0.magnitude"}
    assert not ImportRun.objects.exists()
    assert not StormEvent.objects.exists()


def test_a_contractor_key_may_not_post_storms(acme, zip_codes):  # noqa: F811
    answer = api_client(acme).post("/api/v1/storms/", {"events": [report()]}, format="json")

    assert answer.status_code == 403
    assert not StormEvent.objects.exists()
    assert Contractor.objects.count() == 1
