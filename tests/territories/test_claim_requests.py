"""Territory sales under control: a contractor's claim is made at once only where its trade is open for
self-service and within the trade's ZIP limit; otherwise it waits for staff as a claim request, checked as
a claim is (conflicts are 409 at once), approved (the ZIPs claimed, all or none, their leads routed) or
denied with a reason, each told to the contractor; requests are scoped as everything else."""

import pytest

from contractors.models import ContractorNotice
from leadengine import flows
from leads.models import Lead
from leads.services.generation import leads_generate
from territories.errors import ClaimRequestError, TerritoryTaken
from territories.models import ClaimRequest, SelfService, Territory
from territories.services.claims import territory_claim
from territories.services.requests import claim_request_approve, claim_request_deny
from tests.admin_pages import messages_of
from tests.leads.factories import api_client, filters, owner, scored_home
from tests.racing import race

CLAIM = "/api/v1/territories/claim/"
REQUESTS = "/api/v1/claim-requests/"


@pytest.fixture
def roofing(trades):
    filters(trades["roofing"])
    return trades["roofing"]


def claim(contractor, *zip_codes, note=""):
    return api_client(contractor).post(
        CLAIM, {"trade": "roofing", "zip_codes": list(zip_codes), "note": note}, format="json"
    )


def test_a_claim_in_a_trade_closed_to_self_service_waits_for_staff(roofing):
    acme = owner(roofing, contact_email="ops@acme.test")

    response = claim(acme, "80203", "80202", note="expanding north")

    assert response.status_code == 202
    request = ClaimRequest.objects.get()
    assert response.json() == {
        "id": request.pk, "contractor": acme.slug, "trade": "roofing", "zip_codes": ["80202", "80203"],
        "note": "expanding north", "status": "pending", "requested_at": response.json()["requested_at"],
        "decided_at": None, "decision_note": "",
    }  # fmt: skip
    assert not Territory.objects.exists()
    assert api_client(acme).get(f"{REQUESTS}{request.pk}/").json()["status"] == "pending"


def test_self_service_claims_up_to_the_limit_then_ask(roofing):
    SelfService.objects.create(trade=roofing, enabled=True, zip_limit=3)
    acme = owner(roofing, "80202")

    first = claim(acme, "80203", "80204")
    past = claim(acme, "80205")

    assert first.status_code == 201
    assert sorted(Territory.objects.filter(contractor=acme).values_list("zip_code", flat=True)) == [
        "80202", "80203", "80204"
    ]  # fmt: skip
    assert (past.status_code, past.json()["zip_codes"]) == (202, ["80205"])
    SelfService.objects.filter(trade=roofing).update(enabled=False)
    assert claim(acme, "80206").status_code == 202  # closed: every claim asks


def test_requests_conflict_as_claims_do(roofing, trades):
    rival = owner(roofing, "80202")
    acme = owner(roofing)

    taken = claim(acme, "80202", "80203")
    assert taken.status_code == 409
    assert taken.json()["conflicts"] == [{"zip_code": "80202", "held_as": "owned"}]
    assert rival.name not in taken.content.decode()

    assert claim(acme, "80203").status_code == 202
    again = claim(acme, "80204", "80203")
    assert (again.status_code, again.json()["code"]) == (409, "claim_request_error")
    assert "already asks for 80203" in again.json()["detail"]
    unserved = owner(trades["solar"])
    assert claim(unserved, "80205").json()["code"] == "trade_not_served"
    assert claim(acme, "00000").json()["code"] == "unknown_zip_codes"
    assert ClaimRequest.objects.count() == 1


def test_staff_approve_a_request_and_the_contractor_gets_the_zips_and_their_leads(roofing, staff_api):
    _ops, staff_api = staff_api
    scored_home(roofing, score=90, zip_code="80203")
    leads_generate(trade=roofing)
    acme = owner(roofing, contact_email="ops@acme.test")
    request_id = claim(acme, "80203", "80204").json()["id"]

    approved = staff_api.post(f"{REQUESTS}{request_id}/approve/", {"note": "welcome"}, format="json")

    assert approved.status_code == 200
    assert sorted(item["zip_code"] for item in approved.json()) == ["80203", "80204"]
    assert Lead.objects.get().contractor_id == acme.pk
    request = ClaimRequest.objects.get()
    assert (request.status, request.decision_note, request.decided_by.username) == ("approved", "welcome", "ops")
    told = ContractorNotice.objects.get(contractor=acme, event="claim.approved")
    assert (told.payload["zip_codes"], told.payload["note"]) == (["80203", "80204"], "welcome")
    twice = staff_api.post(f"{REQUESTS}{request_id}/approve/", {}, format="json")
    assert (twice.status_code, twice.json()["detail"]) == (409, f"Claim request {request_id} is already approved.")


def test_an_approval_refused_by_a_claim_since_leaves_the_request_waiting_for_a_denial(roofing, staff_api):
    _ops, staff_api = staff_api
    acme, rival = owner(roofing, contact_email="ops@acme.test"), owner(roofing)
    request = ClaimRequest.objects.get(pk=claim(acme, "80203", "80204").json()["id"])
    territory_claim(contractor=rival, trade=roofing, zip_code="80204")

    with pytest.raises(TerritoryTaken, match="80204"):
        claim_request_approve(request=request, user=None)

    refused = staff_api.post(f"{REQUESTS}{request.pk}/approve/", {}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (409, "territory_taken")
    request.refresh_from_db()
    assert request.status == "pending"
    assert not Territory.objects.filter(contractor=acme).exists()
    with pytest.raises(ClaimRequestError, match="Say why"):
        claim_request_deny(request=request, user=None, note=" ")
    denied = staff_api.post(f"{REQUESTS}{request.pk}/deny/", {"note": "80204 was sold"}, format="json")
    assert (denied.status_code, denied.json()["status"], denied.json()["decision_note"]) == (
        200, "denied", "80204 was sold"
    )  # fmt: skip
    assert ContractorNotice.objects.get(contractor=acme, event="claim.denied").payload["note"] == "80204 was sold"


def test_requests_are_scoped_withdrawn_by_their_contractor_and_decided_by_staff_only(roofing):
    acme, bolt = owner(roofing), owner(roofing)
    mine = claim(acme, "80203").json()["id"]
    theirs = claim(bolt, "80204").json()["id"]
    client = api_client(acme)

    assert [item["id"] for item in client.get(REQUESTS).json()["results"]] == [mine]
    assert client.get(f"{REQUESTS}{theirs}/").status_code == 404
    assert client.delete(f"{REQUESTS}{theirs}/").status_code == 404
    assert client.post(f"{REQUESTS}{mine}/approve/", {}, format="json").status_code == 403
    assert client.delete(f"{REQUESTS}{mine}/").status_code == 204
    assert ClaimRequest.objects.get(pk=mine).status == "withdrawn"
    assert client.delete(f"{REQUESTS}{mine}/").status_code == 409
    assert ClaimRequest.objects.get(pk=theirs).status == "pending"
    assert client.get(REQUESTS, {"status": "pending"}).json()["results"] == []


def test_staff_approve_and_deny_from_the_admin(roofing, staff_client):
    acme, bolt = owner(roofing), owner(roofing)
    first = flows.territories_claim_or_request(contractor=acme, trade=roofing, zip_codes=["80203"])
    second = flows.territories_claim_or_request(contractor=bolt, trade=roofing, zip_codes=["80203"])
    url = "/admin/territories/claimrequest/"

    done = staff_client.post(url, {"action": "approve", "_selected_action": [first.pk, second.pk]}, follow=True)

    assert messages_of(done)[0] == ("success", f"Claim request {first.pk} approved: 1 territories to {acme}.")
    assert messages_of(done)[1][0] == "error"
    assert "80203" in messages_of(done)[1][1]
    denied = staff_client.post(
        url, {"action": "deny", "_selected_action": [second.pk], "apply": "1", "note": "sold"}, follow=True
    )
    assert messages_of(denied) == [("success", f"Claim request {second.pk} denied.")]
    assert list(ClaimRequest.objects.order_by("pk").values_list("status", flat=True)) == ["approved", "denied"]


@pytest.mark.django_db(transaction=True)
def test_racing_self_service_claims_never_pass_the_limit(trades, zip_codes):
    roofing = trades["roofing"]
    SelfService.objects.create(trade=roofing, enabled=True, zip_limit=3)
    acme = owner(roofing)
    codes = ["80202", "80203", "80204", "80205", "80206", "80207", "80208", "80209"]

    results, errors = race(
        lambda code: flows.territories_claim_or_request(contractor=acme, trade=roofing, zip_codes=[code]), codes
    )

    assert errors == []
    assert Territory.objects.filter(contractor=acme).count() == 3
    assert ClaimRequest.objects.filter(contractor=acme).count() == 5
    assert sum(isinstance(result, ClaimRequest) for result in results) == 5
