"""Routing: owners get their ZIPs' leads best first, within caps counted in their own time zone, under
races; the pool waits for owners; staff assign by hand within exclusivity unless they override."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from contractors.services.contractors import contractor_status_change
from leads.errors import CapReached, ContractorNotReceiving, LeadError, NotTerritoryOwner
from leads.models import Lead, LeadEvent
from leads.selectors import contractor_cap_usage
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_assign, lead_deliver
from leads.services.routing import leads_route, leads_route_territories
from territories.services.claims import territory_claim_many
from territories.services.ownership import territory_transfer_many
from tests.leads.factories import owner, scored_home
from tests.racing import race

NOW = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.UTC)  # a Saturday


def pool(trade, zip_code="80202", count=1, *, top=90.0, now=NOW):
    """`count` new pool leads in `zip_code`, scores top, top-1, ...: best first."""
    homes = [scored_home(trade, score=top - index, zip_code=zip_code) for index in range(count)]
    leads_generate(trade=trade, now=now)
    return [Lead.objects.get(property=home, state="generated") for home in homes]


def assigned_to(contractor):
    return list(Lead.objects.filter(contractor=contractor).order_by("-score").values_list("property_id", flat=True))


def test_a_lead_goes_to_the_active_owner_of_its_zip_and_the_rest_wait(roofing):
    acme = owner(roofing, "80202")
    mine, unowned = pool(roofing, "80202")[0], pool(roofing, "80203")[0]

    summary = leads_route(now=NOW)

    assert (summary.assigned, summary.by_contractor, summary.waiting) == (1, {acme.pk: 1}, 1)
    mine.refresh_from_db()
    assert (mine.state, mine.contractor_id, mine.assigned_at) == ("assigned", acme.pk, NOW)
    assert mine.expires_at == NOW + dt.timedelta(hours=72)
    event = LeadEvent.objects.get(lead=mine, action="assign")
    assert (event.from_state, event.to_state, event.actor, event.contractor_id, event.at) == (
        "generated",
        "assigned",
        "system",
        acme.pk,
        NOW,
    )
    unowned.refresh_from_db()
    assert (unowned.state, unowned.contractor_id) == ("generated", None)


def test_paused_and_suspended_owners_get_nothing_until_they_resume(roofing):
    paused, suspended = owner(roofing, "80202"), owner(roofing, "80203")
    contractor_status_change(contractor=paused, status="paused", reason="vacation")
    contractor_status_change(contractor=suspended, status="suspended", reason="unpaid")
    pool(roofing, "80202")
    pool(roofing, "80203", top=80)

    assert leads_route(now=NOW).assigned == 0

    contractor_status_change(contractor=paused, status="active")
    summary = leads_route(now=NOW)
    assert (summary.assigned, summary.by_contractor, summary.waiting) == (1, {paused.pk: 1}, 1)


def test_a_daily_cap_gives_the_best_leads_and_is_never_exceeded(roofing):
    acme = owner(roofing, "80202", "80203", daily_cap=3)
    leads = pool(roofing, "80202", 3, top=90) + pool(roofing, "80203", 2, top=95)

    assert leads_route(now=NOW).assigned == 3
    assert leads_route(now=NOW + dt.timedelta(hours=1)).assigned == 0

    # 95, 94 (80203) and 90 (80202): best first across the contractor's ZIPs.
    assert assigned_to(acme) == [leads[3].property_id, leads[4].property_id, leads[0].property_id]
    usage = contractor_cap_usage(contractor_ids=[acme.pk], now=NOW)[acme.pk]
    assert (usage.today, usage.this_week, usage.this_month, usage.room) == (3, 3, 3, 0)


def test_weekly_and_monthly_caps_bind_across_days(roofing):
    acme = owner(roofing, "80202", daily_cap=2, weekly_cap=3, monthly_cap=4, time_zone="UTC")
    pool(roofing, "80202", 8)
    monday = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)

    assigned = [leads_route(now=monday + dt.timedelta(days=day)).assigned for day in range(7)]
    assert assigned == [2, 1, 0, 0, 0, 0, 0]  # the week's cap of 3

    next_monday = monday + dt.timedelta(days=7)
    assert leads_route(now=next_monday).assigned == 1  # November's cap of 4
    assert leads_route(now=dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)).assigned == 2  # a new month
    assert Lead.objects.filter(contractor=acme).count() == 6


def usage_at(contractor, when):
    return contractor_cap_usage(contractor_ids=[contractor.pk], now=when)[contractor.pk]


def test_caps_count_days_at_midnight_in_the_contractors_time_zone(roofing):
    denver = owner(roofing, "80202", daily_cap=1, time_zone="America/Denver")
    utc = owner(roofing, "80203", daily_cap=1, time_zone="UTC")
    late_evening_in_denver = dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.UTC)  # 23:30 on the 27th in Denver
    pool(roofing, "80202"), pool(roofing, "80203")
    leads_route(now=late_evening_in_denver)

    just_before_denver_midnight = dt.datetime(2026, 11, 28, 6, 59, tzinfo=dt.UTC)
    just_after_denver_midnight = dt.datetime(2026, 11, 28, 7, 0, tzinfo=dt.UTC)
    assert (
        usage_at(denver, just_before_denver_midnight).today,
        usage_at(denver, just_before_denver_midnight).room,
    ) == (1, 0)
    assert (usage_at(denver, just_after_denver_midnight).today, usage_at(denver, just_after_denver_midnight).room) == (
        0,
        1,
    )
    # The same instant is already the 28th in UTC: that contractor's slot stays used all its day.
    assert usage_at(utc, just_after_denver_midnight).room == 0
    assert usage_at(utc, dt.datetime(2026, 11, 29, 0, 0, tzinfo=dt.UTC)).room == 1


def test_caps_follow_the_local_week_and_month_not_utc(roofing):
    weekly = owner(roofing, "80202", weekly_cap=5, monthly_cap=10, time_zone="Asia/Tokyo")
    monthly = owner(roofing, "80203", weekly_cap=5, monthly_cap=10, time_zone="Asia/Tokyo")
    pool(roofing, "80202", 2), pool(roofing, "80203", 2, top=70)
    # Sunday 29 November 14:00 UTC is Sunday 23:00 in Tokyo; 16:00 UTC is Monday 01:00 there: a new week.
    leads_route(now=dt.datetime(2026, 11, 29, 14, tzinfo=dt.UTC), contractor_ids=[weekly.pk])
    usage = usage_at(weekly, dt.datetime(2026, 11, 29, 16, tzinfo=dt.UTC))
    assert (usage.today, usage.this_week, usage.this_month, usage.room) == (0, 0, 2, 5)
    # Monday 30 November 14:00 UTC is 23:00 there; 16:00 UTC is 1 December 01:00: a new month, same week.
    leads_route(now=dt.datetime(2026, 11, 30, 14, tzinfo=dt.UTC), contractor_ids=[monthly.pk])
    usage = usage_at(monthly, dt.datetime(2026, 11, 30, 16, tzinfo=dt.UTC))
    assert (usage.today, usage.this_week, usage.this_month, usage.room) == (0, 2, 0, 3)


def test_a_day_across_a_daylight_saving_change_is_the_local_day(roofing):
    new_york = owner(roofing, "80202", daily_cap=1, time_zone="America/New_York")
    pool(roofing, "80202")
    # 1 November 2026: clocks go back at 02:00; the local day runs 04:00 to 05:00 UTC the next day (25 h).
    leads_route(now=dt.datetime(2026, 11, 1, 4, 30, tzinfo=dt.UTC))  # 00:30 EDT on the 1st

    assert usage_at(new_york, dt.datetime(2026, 11, 2, 4, 59, tzinfo=dt.UTC)).room == 0  # 23:59 EST on the 1st
    assert usage_at(new_york, dt.datetime(2026, 11, 2, 5, 0, tzinfo=dt.UTC)).room == 1  # midnight on the 2nd
    local = dt.datetime(2026, 11, 2, 5, 0, tzinfo=dt.UTC).astimezone(ZoneInfo("America/New_York"))
    assert (local.day, local.hour) == (2, 0)


def test_returned_and_withdrawn_leads_free_their_slot_others_keep_it(roofing):
    acme = owner(roofing, "80202", daily_cap=10, time_zone="UTC")
    leads = pool(roofing, "80202", 4)
    leads_route(now=NOW)
    Lead.objects.filter(pk=leads[0].pk).update(state="returned", closed_at=NOW)
    Lead.objects.filter(pk=leads[1].pk).update(state="withdrawn", closed_at=NOW)
    Lead.objects.filter(pk=leads[2].pk).update(state="rejected", closed_at=NOW)

    usage = usage_at(acme, NOW)
    assert (usage.today, usage.room) == (2, 8)


@pytest.mark.django_db(transaction=True)
def test_racing_routers_never_exceed_a_cap(trades, zip_codes):
    roofing = trades["roofing"]
    from tests.leads.factories import filters

    filters(roofing)
    acme = owner(roofing, "80202", "80203", daily_cap=5, weekly_cap=7, time_zone="UTC")
    pool(roofing, "80202", 12)
    pool(roofing, "80203", 12, top=70)

    results, errors = race(lambda _: leads_route(now=NOW).assigned, range(8))

    assert errors == []
    assert sorted(results) == [0] * 7 + [5]
    assert Lead.objects.filter(contractor=acme).count() == 5
    assert LeadEvent.objects.filter(action="assign").count() == 5


@pytest.mark.django_db(transaction=True)
def test_racing_routers_and_staff_assignments_never_exceed_a_cap(trades, zip_codes):
    roofing = trades["roofing"]
    from django.contrib.auth import get_user_model

    from tests.leads.factories import filters

    filters(roofing)
    acme = owner(roofing, "80202", daily_cap=4, time_zone="UTC")
    leads = pool(roofing, "80202", 10)
    staff = get_user_model().objects.create_user("ops", is_staff=True)

    def act(index):
        if index % 2:
            return leads_route().assigned
        return lead_assign(lead=leads[-1 - index], contractor=acme, user=staff, reason="phone order").pk

    _results, errors = race(act, range(8))

    # A staff assignment loses either to the cap or, when a router gave it that very lead, to "already with".
    assert all(isinstance(error, CapReached) or "is already with" in str(error) for error in errors)
    assert Lead.objects.filter(contractor=acme).count() == 4
    assert LeadEvent.objects.filter(action="assign").count() == 4


def test_claiming_a_zip_routes_its_waiting_leads_to_the_new_owner(roofing):
    waiting = pool(roofing, "80204", 3)
    acme = owner(roofing, daily_cap=2)

    territories = territory_claim_many(contractor=acme, trade=roofing, zip_codes=["80204"])
    summary = leads_route_territories(territories=territories)

    assert (summary.assigned, summary.by_contractor, summary.waiting) == (2, {acme.pk: 2}, 1)
    assert assigned_to(acme) == [waiting[0].property_id, waiting[1].property_id]


def test_the_admin_claim_gives_the_new_owner_the_zips_waiting_leads(roofing, staff_client):
    waiting = pool(roofing, "80204", 2)
    acme = owner(roofing)

    response = staff_client.post(
        "/admin/territories/territory/claim/",
        {"contractor": acme.pk, "trade": roofing.pk, "zip_codes": "80204", "note": ""},
        follow=True,
    )

    assert response.status_code == 200
    assert assigned_to(acme) == [waiting[0].property_id, waiting[1].property_id]
    assert "Unassigned leads of these ZIPs: 2 leads assigned to 1 contractor, 0 in the pool." in [
        str(message) for message in response.context["messages"]
    ]


def test_the_coverage_report_counts_the_pool_in_each_zip_s_row(roofing, staff_client):
    acme = owner(roofing, "80202", daily_cap=1)
    pool(roofing, "80202", 3)
    pool(roofing, "80203", 2, top=70)
    leads_route(now=NOW)

    response = staff_client.get(
        "/admin/territories/territory/coverage/", {"trade": roofing.pk, "min_score": 0, "sort": "unassigned"}
    )

    rows = [(row.zip_code, row.contractor_name, unassigned) for row, _, _, unassigned in response.context["rows"]]
    assert rows == [("80202", acme.name, 2), ("80203", "", 2)]
    assert response.context["pool_total"] == 4
    assert "4 unassigned leads of the market wait in the pool" in response.content.decode()


def test_staff_assign_a_pool_lead_to_the_owner_with_a_reason(roofing, django_user_model):
    acme = owner(roofing, "80202")
    lead = pool(roofing, "80202")[0]
    staff = django_user_model.objects.create_user("ops", is_staff=True)

    lead = lead_assign(lead=lead, contractor=acme, user=staff, reason="called in")

    assert (lead.state, lead.contractor_id) == ("assigned", acme.pk)
    event = LeadEvent.objects.get(lead=lead, action="assign")
    assert (event.actor, event.user, event.reason, event.override) == ("staff", staff, "called in", False)


def snapshot(lead):
    lead.refresh_from_db()
    return {f.attname: getattr(lead, f.attname) for f in Lead._meta.concrete_fields}, lead.events.count()


def test_assigning_to_a_non_owner_is_refused_without_override_and_recorded_with_it(roofing, django_user_model):
    owner(roofing, "80202")
    rival = owner(roofing)
    lead = pool(roofing, "80202")[0]
    staff = django_user_model.objects.create_user("ops", is_staff=True)
    before = snapshot(lead)

    with pytest.raises(
        NotTerritoryOwner, match=r"80202 Roofing is owned by Contractor .*; .* may have this lead only with an override"
    ):
        lead_assign(lead=lead, contractor=rival, user=staff, reason="asked")
    assert snapshot(lead) == before

    lead = lead_assign(lead=lead, contractor=rival, user=staff, reason="asked", override=True)
    event = LeadEvent.objects.get(lead=lead, action="assign")
    assert (lead.contractor_id, event.override, event.reason) == (rival.pk, True, "asked (overrode exclusivity)")


def test_assigning_beyond_a_cap_needs_an_override(roofing, django_user_model):
    acme = owner(roofing, "80202", daily_cap=1)
    first, second = pool(roofing, "80202", 2)
    staff = django_user_model.objects.create_user("ops", is_staff=True)
    lead_assign(lead=first, contractor=acme, user=staff, reason="one")
    before = snapshot(second)

    with pytest.raises(CapReached, match="has reached its lead cap"):
        lead_assign(lead=second, contractor=acme, user=staff, reason="two")
    assert snapshot(second) == before

    lead = lead_assign(lead=second, contractor=acme, user=staff, reason="two", override=True)
    assert LeadEvent.objects.get(lead=lead, action="assign").reason == "two (overrode caps)"


def test_staff_cannot_assign_to_a_paused_contractor_or_one_not_serving_the_trade(roofing, trades, django_user_model):
    paused = owner(roofing, "80202")
    contractor_status_change(contractor=paused, status="paused")
    solar_only = owner(trades["solar"])
    lead = pool(roofing, "80202")[0]
    staff = django_user_model.objects.create_user("ops", is_staff=True)
    before = snapshot(lead)

    with pytest.raises(ContractorNotReceiving, match="paused"):
        lead_assign(lead=lead, contractor=paused, user=staff, reason="x", override=True)
    with pytest.raises(ContractorNotReceiving, match="does not serve Roofing"):
        lead_assign(lead=lead, contractor=solar_only, user=staff, reason="x", override=True)
    with pytest.raises(LeadError, match="Say why"):
        lead_assign(lead=lead, contractor=paused, user=staff, reason=" ")
    assert snapshot(lead) == before


def test_reassigning_after_a_transfer_moves_the_lead_and_its_cap_slot(roofing, django_user_model):
    acme = owner(roofing, "80202", daily_cap=5, time_zone="UTC")
    lead = pool(roofing, "80202")[0]
    leads_route(now=NOW)
    lead = lead_deliver(lead=lead)
    buyer = owner(roofing, time_zone="UTC")
    territory_transfer_many(territories=acme.territories.all(), to_contractor=buyer)
    staff = django_user_model.objects.create_user("ops", is_staff=True)

    lead = lead_assign(lead=lead, contractor=buyer, user=staff, reason="territory sold")

    assert (lead.state, lead.contractor_id, lead.delivered_at) == ("assigned", buyer.pk, None)
    event = LeadEvent.objects.get(lead=lead, action="reassign")
    assert (event.from_state, event.to_state, event.contractor_id) == ("delivered", "assigned", buyer.pk)
    assert usage_at(acme, lead.assigned_at).today == 0
    assert usage_at(buyer, lead.assigned_at).today == 1
