"""Every API operation, walked from the generated schema, as contractor Bolt against contractor Acme's
objects: each detail operation answers 404 (403 where the operation is for staff only), every list leaves
Acme's rows out, and nothing in the database changes. A new endpoint is walked without editing this test;
one whose objects this test does not know fails it until it is added to OBJECTS."""

import datetime as dt
import re

import pytest
from django.db.models import Model
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from contractors.models import Contractor
from leadengine.models import JobRun
from leads.models import Lead, LeadEvent, LedgerEntry, Statement
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from leads.services.statements import month_close
from scoring.models import EvaluationRun
from territories.models import ClaimRequest, Territory, WaitlistEntry
from territories.services.requests import claim_request_create
from territories.services.waitlist import waitlist_join
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.conftest import roofing  # noqa: F401  (fixture)
from tests.leads.factories import api_client, owner, scored_home

STAFF_ONLY = {
    "/api/v1/leads/{id}/assign/", "/api/v1/runs/", "/api/v1/runs/{id}/", "/api/v1/quality/evaluations/",
    "/api/v1/quality/evaluations/{id}/", "/api/v1/claim-requests/{id}/approve/", "/api/v1/claim-requests/{id}/deny/",
}  # fmt: skip
# A body that would be valid for the operation, so a refusal cannot come from validation instead.
BODIES = {
    "/api/v1/leads/{id}/reject/": {"reason": "Too far"},
    "/api/v1/leads/{id}/contact/": {"note": "Left a voicemail"},
    "/api/v1/leads/{id}/convert/": {"job_value": "100.00"},
    "/api/v1/leads/{id}/return/": {"reason": "duplicate"},
    "/api/v1/leads/{id}/assign/": {"contractor": "bolt", "reason": "mine", "override": True},
    "/api/v1/runs/": {"job": "scoring", "trade": "roofing"},
}
QUERIES = {"/api/v1/territories/available/": {"trade": "roofing"}}
TABLES: list[type[Model]] = [
    Lead, LeadEvent, Territory, WaitlistEntry, Contractor, JobRun, EvaluationRun, ClaimRequest, Statement, LedgerEntry,
]  # fmt: skip


def operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (path, method.upper())
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def database() -> dict:
    return {model.__name__: sorted(model.objects.values_list()) for model in TABLES}


@pytest.fixture
def acme_and_bolt(roofing):  # noqa: F811
    """Acme owns 80202 (a delivered lead, a territory), waits for Bolt's 80203, asks staff for 80204 and has
    last month's statement; Bolt owns 80203."""
    acme, bolt = owner(roofing, "80202", slug="acme"), owner(roofing, "80203", slug="bolt")
    scored_home(roofing, score=90, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    Lead.objects.filter(contractor=acme).update(state="delivered", delivered_at=timezone.now())
    waitlist_join(contractor=acme, trade=roofing, zip_code="80203")
    run = JobRun.objects.create(job="scoring", trade=roofing, queued_at=timezone.now())
    lead = Lead.objects.get(contractor=acme)
    evaluation = EvaluationRun.objects.create(
        trade=roofing, model=lead.model, first_day=lead.generated_on, last_day=lead.generated_on
    )
    request = claim_request_create(contractor=acme, trade=roofing, zip_codes=["80204"])
    last_month = (timezone.localdate().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    statement = month_close(contractor=acme, month=last_month)
    objects = {
        "/api/v1/claim-requests/": request.pk,
        "/api/v1/statements/": statement.pk,
        "/api/v1/leads/": Lead.objects.get(contractor=acme).pk,
        "/api/v1/territories/": Territory.objects.get(contractor=acme).pk,
        "/api/v1/waitlist/": WaitlistEntry.objects.get(contractor=acme).pk,
        "/api/v1/runs/": run.pk,
        "/api/v1/quality/evaluations/": evaluation.pk,
    }
    return acme, bolt, objects


def test_every_operation_as_another_contractor_finds_nothing_of_acmes_and_changes_nothing(acme_and_bolt):
    _acme, bolt, objects = acme_and_bolt
    client = api_client(bolt)
    before = database()
    walked = []

    for path, method in operations():
        detail = "{id}" in path
        if detail:
            prefix = path[: path.index("{id}")]
            assert prefix in objects, f"{path}: add one of Acme's objects for it to OBJECTS"
            url = path.replace("{id}", str(objects[prefix]))
        else:
            url = path
        if not detail and method == "GET" and path not in STAFF_ONLY:
            # A list (or Bolt's own profile): none of Acme's rows in it.
            response = client.get(url, QUERIES.get(path, {}))
            assert response.status_code == 200, (path, response.content)
            text = response.content.decode()
            assert "acme" not in text.lower(), path
            continue
        if not detail and path not in STAFF_ONLY:
            continue  # Bolt's own writes (claim, join, pause): not about Acme's objects
        response = getattr(client, method.lower())(url, BODIES.get(path, {}), format="json")
        expected = 403 if path in STAFF_ONLY else 404
        assert response.status_code == expected, (method, path, response.content)
        code = "permission_denied" if expected == 403 else "not_found"
        assert response.json()["code"] == code, (method, path)
        walked.append((method, path))

    assert database() == before
    # The walk reached every detail operation of the API (and the staff-only ones).
    assert sorted(walked) == sorted(
        (method, path) for path, method in operations() if "{id}" in path or path in STAFF_ONLY
    )
    assert re.search(r"/leads/\{id\}/contact/", " ".join(path for _, path in walked))
