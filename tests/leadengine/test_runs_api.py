"""The staff run list answers every run of every job, whatever its counts hold (integers, a date, a flag,
a list of names) and missed runs too, as docs/openapi.yaml describes them."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml
from django.utils import timezone

from leadengine.models import JobRun
from leadengine.services.jobs import job_run_execute
from tests.contractors.conftest import trades  # noqa: F401  (fixture)

URL = "/api/v1/runs/"
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def _json_schema(node):
    """OpenAPI 3.0's `nullable` as JSON Schema's type list (the rest is the same)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        elif "allOf" in node or "oneOf" in node or "$ref" in node:
            node = {"anyOf": [{"type": "null"}, node]}
    return node


def validator(component: str) -> jsonschema.Draft202012Validator:
    """A validator of the body of `component` (e.g. JobRun) as the committed schema says."""
    document = _json_schema(copy.deepcopy(yaml.safe_load(SCHEMA.read_text())))
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{component}", **document})


def executed(job: str) -> JobRun:
    return job_run_execute(run_id=JobRun.objects.create(job=job, queued_at=timezone.now()).pk)


def test_runs_of_every_job_and_status_are_listed_and_read_as_the_schema_says(staff_api, roofing, settings):
    settings.OPS_EMAILS = []
    _user, client = staff_api
    check, report = executed("overdue_check"), executed("daily_report")
    now = timezone.now()
    missed = JobRun.objects.create(job="webhook_delivery", status="missed", queued_at=now, finished_at=now,
                                   error="Beat could not send it to the broker.")  # fmt: skip
    assert (check.status, report.status) == ("succeeded", "succeeded")
    assert isinstance(check.counts["overdue_jobs"], list)
    assert isinstance(report.counts["day"], str)

    listing = client.get(URL)

    assert listing.status_code == 200
    body = listing.json()
    assert [run["id"] for run in body["results"]] == [missed.pk, report.pk, check.pk]
    validator("PaginatedJobRunList").validate(body)
    for run in (check, report, missed):
        detail = client.get(f"{URL}{run.pk}/")
        assert detail.status_code == 200
        validator("JobRun").validate(detail.json())
        assert detail.json()["counts"] == run.counts
    assert client.get(f"{URL}{missed.pk}/").json()["status"] == "missed"
    assert [r["id"] for r in client.get(URL, {"status": "missed"}).json()["results"]] == [missed.pk]
