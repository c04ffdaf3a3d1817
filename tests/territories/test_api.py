"""The territories API: my territories, ZIPs for sale with their demand (cached, and invalidated by
claims, releases and scoring runs), claim (201 / 409 naming the ZIPs), release, the waitlist, and the
one visibility rule (another contractor's territory is 404 and nothing changes)."""

import pytest

from leads.models import Lead
from leads.services.generation import leads_generate
from scoring.services.runs import scoring_run_finish, scoring_run_start
from territories.models import SelfService, Territory, WaitlistEntry
from tests.leads.factories import api_client, filters, owner, scored_home

URL = "/api/v1/territories/"


@pytest.fixture
def roofing(trades):
    """Roofing, open for self-service: a contractor's claim is made at once (tests/territories/
    test_claim_requests.py has the claims that wait for staff)."""
    filters(trades["roofing"])
    SelfService.objects.create(trade=trades["roofing"], enabled=True, zip_limit=100)
    return trades["roofing"]


def test_a_contractor_lists_its_territories_only(roofing):
    acme, bolt = owner(roofing, "80202", "80203"), owner(roofing, "80204")

    body = api_client(acme).get(URL).json()

    assert sorted(item["zip_code"] for item in body["results"]) == ["80202", "80203"]
    assert {item["contractor"] for item in body["results"]} == {acme.slug}
    other = Territory.objects.get(contractor=bolt)
    assert api_client(acme).get(f"{URL}{other.pk}/").status_code == 404


def test_available_zips_rank_unowned_demand_and_filter_by_state_and_prefix(roofing):
    for zip_code, count in (("80202", 3), ("80203", 1), ("80301", 2)):
        for _ in range(count):
            scored_home(roofing, score=90, zip_code=zip_code)
    scored_home(roofing, score=10, zip_code="80204")  # below min_score: no demand
    acme = owner(roofing, "80203")
    client = api_client(acme)

    body = client.get(f"{URL}available/", {"trade": "roofing", "state": "co"}).json()
    assert [(row["zip_code"], row["demand"]) for row in body] == [("80202", 3), ("80301", 2)]
    body = client.get(f"{URL}available/", {"trade": "roofing", "zip_prefix": "803"}).json()
    assert [(row["zip_code"], row["demand"]) for row in body] == [("80301", 2)]

    response = client.get(f"{URL}available/", {"trade": "nope", "zip_prefix": "8x"})
    assert (response.status_code, response.json()["code"], sorted(response.json()["fields"])) == (
        400,
        "invalid",
        ["trade", "zip_prefix"],
    )


def available(client):
    return [(row["zip_code"], row["demand"]) for row in client.get(f"{URL}available/", {"trade": "roofing"}).json()]


def test_available_zips_are_cached_until_a_claim_changes_them(roofing, django_capture_on_commit_callbacks):
    scored_home(roofing, score=90, zip_code="80202")
    scored_home(roofing, score=90, zip_code="80203")
    acme, bolt = owner(roofing), owner(roofing)
    client = api_client(acme)
    assert available(client) == [("80202", 1), ("80203", 1)]

    scored_home(roofing, score=90, zip_code="80203")  # not through a service that invalidates
    assert available(client) == [("80202", 1), ("80203", 1)]  # the cached answer

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(bolt).post(f"{URL}claim/", {"trade": "roofing", "zip_codes": ["80202"]}, format="json")
    assert response.status_code == 201
    assert available(client) == [("80203", 2)]  # the claim invalidated it: fresh, with the new home too


def test_a_release_and_a_scoring_run_invalidate_available_zips(roofing, django_capture_on_commit_callbacks):
    scored_home(roofing, score=90, zip_code="80202")
    acme = owner(roofing, "80202")
    client = api_client(acme)
    assert available(client) == []

    territory = Territory.objects.get(contractor=acme)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"{URL}{territory.pk}/release/", {"note": "moving"}, format="json").status_code == 200
    assert available(client) == [("80202", 1)]

    scored_home(roofing, score=90, zip_code="80202")
    assert available(client) == [("80202", 1)]
    with django_capture_on_commit_callbacks(execute=True):
        run = scoring_run_start(trade=roofing)
        scoring_run_finish(run_id=run.pk)
    assert available(client) == [("80202", 2)]


def test_claim_gives_the_zips_and_their_waiting_leads(roofing):
    scored_home(roofing, score=90, zip_code="80204")
    leads_generate(trade=roofing)
    acme = owner(roofing)

    response = api_client(acme).post(
        f"{URL}claim/", {"trade": "roofing", "zip_codes": ["80204", "80205"], "note": "order 7"}, format="json"
    )

    assert response.status_code == 201
    assert sorted(item["zip_code"] for item in response.json()) == ["80204", "80205"]
    assert Lead.objects.get().contractor_id == acme.pk


def test_a_taken_zip_is_409_naming_the_zips_not_their_owner_and_nothing_is_claimed(roofing):
    rival = owner(roofing, "80202")
    acme = owner(roofing)

    response = api_client(acme).post(
        f"{URL}claim/", {"trade": "roofing", "zip_codes": ["80202", "80203"]}, format="json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "code": "territory_taken",
        "detail": "Roofing territory already taken: 80202. Nothing was claimed.",
        "fields": {},
        "conflicts": [{"zip_code": "80202", "held_as": "owned"}],
    }
    assert rival.name not in response.content.decode()
    assert not Territory.objects.filter(contractor=acme).exists()


def test_claim_input_is_checked(roofing):
    client = api_client(owner(roofing))

    response = client.post(f"{URL}claim/", {"trade": "roofing", "zip_codes": ["8020", "abcde", "80202"]}, format="json")
    assert (response.status_code, response.json()["fields"]) == (
        400,
        {"zip_codes.0": ["Enter a five-digit ZIP code."], "zip_codes.1": ["Enter a five-digit ZIP code."]},
    )
    response = client.post(f"{URL}claim/", {"trade": "roofing", "zip_codes": []}, format="json")
    assert (response.status_code, list(response.json()["fields"])) == (400, ["zip_codes"])
    assert not Territory.objects.exists()


def test_releasing_another_contractors_territory_is_404_and_changes_nothing(roofing):
    bolt = owner(roofing, "80202")
    territory = Territory.objects.get(contractor=bolt)

    response = api_client(owner(roofing)).post(f"{URL}{territory.pk}/release/", {}, format="json")

    assert response.status_code == 404
    territory.refresh_from_db()
    assert territory.ended_at is None


def test_join_and_leave_a_waitlist(roofing):
    owner(roofing, "80202")
    acme = owner(roofing)
    client = api_client(acme)

    response = client.post("/api/v1/waitlist/", {"trade": "roofing", "zip_code": "80202"}, format="json")
    assert (response.status_code, response.json()["status"], response.json()["contractor"]) == (
        201,
        "waiting",
        acme.slug,
    )
    entry = WaitlistEntry.objects.get(contractor=acme)
    assert [item["id"] for item in client.get("/api/v1/waitlist/").json()] == [entry.pk]

    assert client.delete(f"/api/v1/waitlist/{entry.pk}/").status_code == 204
    entry.refresh_from_db()
    assert entry.status == "withdrawn"
    assert client.get("/api/v1/waitlist/").json() == []


def test_joining_a_waitlist_needs_a_five_digit_zip_and_joins_nothing_otherwise(roofing):
    owner(roofing, "80202")
    client = api_client(owner(roofing))

    for malformed in ["8020", "802021", "8020x", "８０２０２"]:
        response = client.post("/api/v1/waitlist/", {"trade": "roofing", "zip_code": malformed}, format="json")
        assert (response.status_code, response.json()["fields"]) == (
            400,
            {"zip_code": ["Enter a five-digit ZIP code."]},
        ), malformed
    assert not WaitlistEntry.objects.exists()


def test_staff_claim_for_a_named_contractor(roofing, staff_client):
    acme = owner(roofing)

    missing = staff_client.post(
        f"{URL}claim/", {"trade": "roofing", "zip_codes": ["80202"]}, content_type="application/json"
    )
    named = staff_client.post(
        f"{URL}claim/",
        {"trade": "roofing", "zip_codes": ["80202"], "contractor": acme.slug},
        content_type="application/json",
    )

    assert (missing.status_code, missing.json()["fields"]) == (400, {"contractor": ["Staff say for which contractor."]})
    assert named.status_code == 201
    assert Territory.objects.get().contractor_id == acme.pk
