"""Staff through the leads API: they see every lead and assign or reassign one by hand, with a reason;
contractors may not."""

import pytest

from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from tests.leads.factories import api_client, owner, scored_home
from tests.leads.factories import lead_snapshot as snapshot

URL = "/api/v1/leads/"


@pytest.fixture
def market(roofing):
    """Acme owns 80202 (one lead assigned), Bolt owns 80203 (one lead assigned); 80204 is nobody's (one lead
    in the pool)."""
    acme, bolt = owner(roofing, "80202"), owner(roofing, "80203")
    homes = [scored_home(roofing, score=90, zip_code=zip_code) for zip_code in ("80202", "80203", "80204")]
    leads_generate(trade=roofing)
    leads_route()
    return acme, bolt, [Lead.objects.get(property=home) for home in homes]


def test_staff_list_every_contractors_leads_and_reading_delivers_nothing(staff_api, market):
    _, client = staff_api
    _acme, _bolt, leads = market

    response = client.get(URL)

    assert sorted(lead["id"] for lead in response.json()["results"]) == sorted(lead.pk for lead in leads)
    assert sorted(Lead.objects.values_list("state", flat=True)) == ["assigned", "assigned", "generated"]


def test_staff_reassign_a_lead_with_an_override_and_its_history_says_why(staff_api, market):
    user, client = staff_api
    _acme, bolt, (acmes, _, _) = market

    response = client.post(
        f"{URL}{acmes.pk}/assign/",
        {"contractor": bolt.slug, "reason": "Acme is booked for a month", "override": True},
        format="json",
    )

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["events"][-1]["action"]) == ("assigned", "reassign")
    acmes.refresh_from_db()
    assert (acmes.state, acmes.contractor_id) == ("assigned", bolt.pk)
    event = LeadEvent.objects.filter(lead=acmes).latest("id")
    assert (event.action, event.actor, event.user_id, event.reason, event.override) == (
        "reassign",
        "staff",
        user.pk,
        "Acme is booked for a month (overrode exclusivity)",
        True,
    )


def test_staff_assign_a_pool_lead_to_a_contractor_outside_its_territory_only_with_an_override(staff_api, market):
    _, client = staff_api
    acme, _, (_, _, pooled) = market
    before = snapshot(pooled)

    refused = client.post(f"{URL}{pooled.pk}/assign/", {"contractor": acme.slug, "reason": "Asked by phone"})

    assert refused.status_code == 409
    assert refused.json() == {
        "code": "not_territory_owner",
        "detail": f"80204 Roofing is owned by nobody; {acme} may have this lead only with an override.",
        "fields": {},
    }
    assert snapshot(pooled) == before

    given = client.post(
        f"{URL}{pooled.pk}/assign/", {"contractor": acme.slug, "reason": "Asked by phone", "override": True}
    )
    assert (given.status_code, given.json()["state"]) == (200, "assigned")
    pooled.refresh_from_db()
    assert pooled.contractor_id == acme.pk


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"contractor": "acme"}, {"reason": ["This field is required."]}),
        ({"contractor": "nobody", "reason": "x"}, {"contractor": ["Object with slug=nobody does not exist."]}),
        ({"contractor": "acme", "reason": "x", "override": "sometimes"}, {"override": ["Must be a valid boolean."]}),
    ],
)
def test_a_bad_assignment_gets_field_errors_and_changes_nothing(staff_api, market, payload, fields):
    _, client = staff_api
    acme, _, (_, _, pooled) = market
    payload = {**payload, "contractor": acme.slug if payload["contractor"] == "acme" else payload["contractor"]}
    before = snapshot(pooled)

    response = client.post(f"{URL}{pooled.pk}/assign/", payload, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == fields
    assert snapshot(pooled) == before


def test_a_contractor_may_not_assign_leads_even_its_own(market):
    acme, _bolt, (acmes, bolts, pooled) = market
    client = api_client(acme)
    before = [snapshot(lead) for lead in (acmes, bolts, pooled)]

    for lead in (acmes, bolts, pooled):
        response = client.post(f"{URL}{lead.pk}/assign/", {"contractor": acme.slug, "reason": "mine", "override": True})
        assert response.status_code == 403
        assert response.json() == {"code": "permission_denied", "detail": "Only staff may do this.", "fields": {}}
    assert [snapshot(lead) for lead in (acmes, bolts, pooled)] == before
