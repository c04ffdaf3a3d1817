"""Cached reads (Redis) and the writes that invalidate them. For each write: a read is served from the
cache (a second read makes no query), and once the write has committed the next read shows its effect.

- A contractor's cap usage (the profile's `usage`): routing, a hand assignment or reassignment (both
  contractors), a return taken at once or approved, a withdrawal; a change of caps or time zone, and
  local midnight, by the key itself.
- Coverage (owned and unowned ZIPs with demand, the admin's coverage page): a claim, a release, a
  transfer, a scoring run finishing.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from contractors.models import Contractor
from leads.models import Lead, LeadEvent
from leads.selectors import contractor_cap_usage_cached
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_assign, lead_deliver, lead_return, lead_return_approve, lead_withdraw
from leads.services.routing import leads_route
from territories.services.claims import territory_claim_many
from tests.leads.factories import api_client, owner, scored_home

STAFF = LeadEvent.Actor.STAFF


def usage(contractor: Contractor, *, now: dt.datetime | None = None) -> tuple[int, int, int, int | None]:
    """The contractor's cap usage as the profile reads it: (today, this week, this month, room)."""
    found = contractor_cap_usage_cached(contractor=contractor, now=now or timezone.now())
    return found.today, found.this_week, found.this_month, found.room


def homes(trade, zip_code: str, count: int, *, score: float = 90) -> None:
    for index in range(count):
        scored_home(trade, score=score - index, zip_code=zip_code)


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("dispatcher", is_staff=True)


@pytest.fixture
def acme_with_leads(roofing, settings):
    """Acme (no caps) owning 80202 with 3 delivered leads; returns within a week at any rate."""
    settings.LEAD_RETURN_RATE_PERCENT = 100
    settings.LEAD_RETURN_WINDOW_DAYS = 7
    acme = owner(roofing, "80202")
    homes(roofing, "80202", 3)
    leads_generate(trade=roofing)
    leads_route()
    for lead in Lead.objects.filter(contractor=acme):
        lead_deliver(lead=lead, via="api")
    return Contractor.objects.get(pk=acme.pk)


# --- Cap usage -------------------------------------------------------------------------------------


def test_routing_invalidates_the_usage_of_every_contractor_it_gave_leads_to(
    roofing, django_assert_num_queries, django_capture_on_commit_callbacks
):
    acme, bolt = owner(roofing, "80202", daily_cap=5), owner(roofing, "80203")
    homes(roofing, "80202", 2)
    homes(roofing, "80203", 3)
    leads_generate(trade=roofing)
    assert (usage(acme), usage(bolt)) == ((0, 0, 0, 5), (0, 0, 0, None))
    with django_assert_num_queries(0):
        assert (usage(acme), usage(bolt)) == ((0, 0, 0, 5), (0, 0, 0, None))  # from Redis

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        summary = leads_route()

    assert summary.by_contractor == {acme.pk: 2, bolt.pk: 3}
    assert len(callbacks) == 1  # both contractors bumped in one go
    assert (usage(acme), usage(bolt)) == ((2, 2, 2, 3), (3, 3, 3, None))


def test_a_write_that_is_not_a_service_is_not_seen_until_a_service_invalidates(
    acme_with_leads, django_capture_on_commit_callbacks
):
    acme = acme_with_leads
    assert usage(acme) == (3, 3, 3, None)
    # Moved out of every window behind the services' back: the cached answer does not know.
    first, second, _ = Lead.objects.filter(contractor=acme).order_by("pk")
    Lead.objects.filter(pk=first.pk).update(assigned_at=timezone.now() - dt.timedelta(days=45))
    assert usage(acme) == (3, 3, 3, None)

    with django_capture_on_commit_callbacks(execute=True):
        lead_withdraw(lead=second, actor=STAFF, reason="Owner asked not to be contacted")

    assert usage(acme) == (1, 1, 1, None)  # rebuilt from the database: both changes


def test_a_rolled_back_move_invalidates_nothing_and_the_cached_usage_stays_right(
    acme_with_leads, django_assert_num_queries, django_capture_on_commit_callbacks
):
    acme = acme_with_leads
    assert usage(acme) == (3, 3, 3, None)
    lead = Lead.objects.filter(contractor=acme).first()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        lead_withdraw(lead=lead, actor=STAFF, reason="Owner asked not to be contacted")
        raise RuntimeError("rolled back")

    assert callbacks == []  # the bump was to run on commit; there was none
    assert Lead.objects.get(pk=lead.pk).state == "delivered"
    with django_assert_num_queries(0):
        assert usage(acme) == (3, 3, 3, None)


def test_a_hand_assignment_and_a_reassignment_invalidate_both_contractors(
    roofing, staff_user, django_assert_num_queries, django_capture_on_commit_callbacks
):
    acme, bolt = owner(roofing, "80202", daily_cap=2), owner(roofing, "80203")
    homes(roofing, "80202", 1)
    leads_generate(trade=roofing)
    lead = Lead.objects.get()
    assert (usage(acme), usage(bolt)) == ((0, 0, 0, 2), (0, 0, 0, None))

    with django_capture_on_commit_callbacks(execute=True):
        lead_assign(lead=lead, contractor=acme, user=staff_user, reason="Homeowner called the office")
    assert usage(acme) == (1, 1, 1, 1)
    with django_assert_num_queries(0):
        assert (usage(acme), usage(bolt)) == ((1, 1, 1, 1), (0, 0, 0, None))

    with django_capture_on_commit_callbacks(execute=True):
        lead_assign(lead=lead, contractor=bolt, user=staff_user, reason="Acme is booked up", override=True)

    assert (usage(acme), usage(bolt)) == ((0, 0, 0, 2), (1, 1, 1, None))


def test_a_return_taken_at_once_invalidates_the_usage(
    acme_with_leads, django_assert_num_queries, django_capture_on_commit_callbacks
):
    acme = acme_with_leads
    assert usage(acme) == (3, 3, 3, None)
    with django_assert_num_queries(0):
        assert usage(acme) == (3, 3, 3, None)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = lead_return(lead=Lead.objects.filter(contractor=acme).first(), reason="duplicate")

    assert outcome.pending is False
    assert usage(acme) == (2, 2, 2, None)


def test_a_waiting_return_keeps_the_cached_usage_and_its_approval_invalidates_it(
    acme_with_leads, settings, staff_user, django_assert_num_queries, django_capture_on_commit_callbacks
):
    acme = acme_with_leads
    settings.LEAD_RETURN_RATE_PERCENT = 0
    lead = Lead.objects.filter(contractor=acme).first()
    assert usage(acme) == (3, 3, 3, None)

    with django_capture_on_commit_callbacks(execute=True):
        assert lead_return(lead=lead, reason="not_owner").pending is True
    with django_assert_num_queries(0):
        assert usage(acme) == (3, 3, 3, None)  # the lead still counts until staff decide: nothing to redo

    with django_capture_on_commit_callbacks(execute=True):
        lead_return_approve(lead=lead, user=staff_user, note="Deed shows another owner")

    assert usage(acme) == (2, 2, 2, None)


def test_a_withdrawal_invalidates_the_usage(
    acme_with_leads, staff_user, django_assert_num_queries, django_capture_on_commit_callbacks
):
    acme = acme_with_leads
    assert usage(acme) == (3, 3, 3, None)
    with django_assert_num_queries(0):
        assert usage(acme) == (3, 3, 3, None)

    with django_capture_on_commit_callbacks(execute=True):
        lead_withdraw(
            lead=Lead.objects.filter(contractor=acme).first(), actor=STAFF, user=staff_user, reason="Do not contact"
        )

    assert usage(acme) == (2, 2, 2, None)


def test_a_change_of_caps_or_time_zone_is_read_at_once_by_any_writer(acme_with_leads, django_assert_num_queries):
    acme = acme_with_leads
    assert usage(acme) == (3, 3, 3, None)

    # As the admin's form saves it: no service, no bump. The caps are part of the key.
    Contractor.objects.filter(pk=acme.pk).update(daily_cap=4, weekly_cap=10, monthly_cap=None)
    acme = Contractor.objects.get(pk=acme.pk)
    assert usage(acme) == (3, 3, 3, 1)
    with django_assert_num_queries(0):
        assert usage(acme) == (3, 3, 3, 1)

    acme.time_zone = "Pacific/Kiritimati" if acme.time_zone != "Pacific/Kiritimati" else "Pacific/Pago_Pago"
    acme.save(update_fields=["time_zone"])
    with django_assert_num_queries(1):  # another key: counted again, in the new time zone
        usage(acme)


def test_a_cached_today_ends_at_the_contractors_local_midnight(roofing, django_assert_num_queries):
    denver = ZoneInfo("America/Denver")
    acme = owner(roofing, "80202", time_zone="America/Denver")
    homes(roofing, "80202", 1)
    leads_generate(trade=roofing)
    evening = dt.datetime(2031, 1, 15, 23, 0, tzinfo=denver)  # a Wednesday
    leads_route(now=evening)

    assert usage(acme, now=evening + dt.timedelta(minutes=30)) == (1, 1, 1, None)
    with django_assert_num_queries(0):
        assert usage(acme, now=evening + dt.timedelta(minutes=59)) == (1, 1, 1, None)
    with django_assert_num_queries(1):
        assert usage(acme, now=evening + dt.timedelta(minutes=61)) == (0, 1, 1, None)  # Thursday, 00:01


def test_the_profile_shows_the_usage_a_return_through_the_api_left(
    acme_with_leads, django_assert_num_queries, django_capture_on_commit_callbacks
):
    acme = acme_with_leads
    client = api_client(acme)
    assert client.get("/api/v1/profile/").json()["usage"] == {"today": 3, "this_week": 3, "this_month": 3, "room": None}
    # Behind the services' back, as above: the profile's second read is the cached one.
    Lead.objects.filter(contractor=acme).update(assigned_at=timezone.now() - dt.timedelta(days=45))
    assert client.get("/api/v1/profile/").json()["usage"]["today"] == 3

    lead = Lead.objects.filter(contractor=acme).first()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/leads/{lead.pk}/return/", {"reason": "duplicate"}, format="json")
    assert response.status_code == 200

    assert client.get("/api/v1/profile/").json()["usage"] == {"today": 0, "this_week": 0, "this_month": 0, "room": None}


# --- Coverage --------------------------------------------------------------------------------------


def test_the_admin_coverage_page_shows_a_claim_at_once(roofing, staff_client):
    """Coverage reads the market as it stands (territories.selectors.market_zips, not cached)."""
    homes(roofing, "80202", 2)
    acme = owner(roofing)
    query = {"trade": roofing.pk, "min_score": 70}
    page = staff_client.get("/admin/territories/territory/coverage/", query)
    assert [(row.zip_code, row.contractor_id) for row, *_ in page.context["rows"]] == [("80202", None)]

    territory_claim_many(contractor=acme, trade=roofing, zip_codes=["80202"])

    page = staff_client.get("/admin/territories/territory/coverage/", query)
    assert [(row.zip_code, row.contractor_id) for row, *_ in page.context["rows"]] == [("80202", acme.pk)]
