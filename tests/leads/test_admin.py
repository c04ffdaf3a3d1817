"""The leads admin: the changelist and its filters, a lead's snapshot and history, the actions that move
leads through the lifecycle services (and show their refusals with nothing changed), each trade's
filters, and the do-not-contact list with its CSV import."""

import datetime as dt
import html
import re
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from leads.models import Lead, LeadEvent, LeadFilter, Suppression
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_assign, lead_deliver, lead_return, lead_withdraw
from tests.admin_pages import messages_of, page_of
from tests.leads.factories import filters, owner, scored_home

CHANGELIST = "/admin/leads/lead/"
SUPPRESSIONS = "/admin/leads/suppression/"
HAND = "Homeowner called the office"
RETURN_NOTE = "Phone number is disconnected"
OVERRIDE_LABEL = "Override exclusivity, caps and credit limit (recorded)"


@pytest.fixture
def staff_user(staff_client):
    return get_user_model().objects.get(username="staff")


def pool_lead(trade, *, score: float = 90.0, zip_code: str = "80202", **home_fields) -> Lead:
    prop = scored_home(trade, score=score, zip_code=zip_code, **home_fields)
    leads_generate(trade=trade)
    return Lead.objects.get(property=prop)


def assigned_lead(trade, contractor, **fields) -> Lead:
    return lead_assign(lead=pool_lead(trade, **fields), contractor=contractor, user=None, reason=HAND)


def lead_with_waiting_return(trade, contractor, **fields) -> Lead:
    """A lead delivered to `contractor`, which asked for a return over its monthly rate."""
    lead = lead_deliver(lead=assigned_lead(trade, contractor, **fields), via="api")
    with override_settings(LEAD_RETURN_RATE_PERCENT=0):
        outcome = lead_return(lead=lead, reason="wrong_contact", note=RETURN_NOTE)
    assert outcome.pending
    return Lead.objects.get(pk=lead.pk)


def listed(client, query: str = "") -> list[int]:
    """The ids of the leads a changelist query shows, in the order shown."""
    page = client.get(f"{CHANGELIST}?{query}").content.decode()
    return [int(pk) for pk in re.findall(r'<th class="field-id"><a href="/admin/leads/lead/(\d+)/change/', page)]


def row_cells(client, lead: Lead) -> dict[str, str]:
    """The changelist row of `lead`: column -> text."""
    page = client.get(CHANGELIST).content.decode()
    row = re.search(rf"<tr>(?:(?!</tr>).)*?/admin/leads/lead/{lead.pk}/change/.*?</tr>", page, re.S).group(0)
    cells = re.findall(r'<t[hd] class="field-(\w+)[^"]*">(.*?)</t[hd]>', row, re.S)
    return {name: html.unescape(re.sub(r"<[^>]+>", "", text)).strip() for name, text in cells}


def history_column(page: str, name: str) -> list[str]:
    """One column of a lead page's history inline, top to bottom."""
    cells = re.findall(rf'<td class="field-{name}">\s*<p>(.*?)</p>', page, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def act(client, action: str, leads: list[Lead], **form):
    """Run an action on `leads`; with form data, as its intermediate form's submission."""
    data = {"action": action, "_selected_action": [lead.pk for lead in leads], **form}
    if form:
        data["apply"] = "yes"
    return client.post(CHANGELIST, data, follow=True)


def snapshot(lead: Lead) -> tuple[dict, int]:
    """Every column of the lead as stored and its event count."""
    stored = Lead.objects.get(pk=lead.pk)
    return {f.attname: getattr(stored, f.attname) for f in Lead._meta.concrete_fields}, lead.events.count()


def event_row(event: LeadEvent) -> tuple:
    return (
        event.action,
        event.from_state,
        event.to_state,
        event.actor,
        event.user.username if event.user else None,
        event.contractor_id,
        event.reason,
        event.override,
    )


def last_event(lead: Lead) -> LeadEvent:
    return LeadEvent.objects.filter(lead=lead).select_related("user").latest("id")


# --- The changelist and a lead's page ---------------------------------------------------------------


def test_changelist_filters_by_trade_state_owner_zip_score_return_dates_and_search(
    staff_client, roofing, trades, acme, peak
):
    filters(trades["solar"])
    a = pool_lead(roofing, score=95, zip_code="80202")
    b = assigned_lead(roofing, peak, score=85, zip_code="80203")
    c = lead_with_waiting_return(roofing, acme, score=75, zip_code="80202")
    d = pool_lead(roofing, score=60, zip_code="80301", parcel_id="PARCEL-D")
    e = pool_lead(trades["solar"], score=92, zip_code="80202")
    Lead.objects.filter(pk=d.pk).update(exploration=True, sampling_weight=40)
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    today = urlencode({"created_at__gte": midnight, "created_at__lt": midnight + dt.timedelta(days=1)})

    assert listed(staff_client) == [e.pk, d.pk, c.pk, b.pk, a.pk]
    assert listed(staff_client, f"trade__id__exact={trades['solar'].pk}") == [e.pk]
    assert listed(staff_client, "state__exact=assigned") == [b.pk]
    assert listed(staff_client, "state__exact=generated") == [e.pk, d.pk, a.pk]
    assert listed(staff_client, f"contractor__id__exact={peak.pk}") == [b.pk]
    assert listed(staff_client, "zip=80202") == [e.pk, c.pk, a.pk]
    assert listed(staff_client, "zip=802") == [e.pk, c.pk, b.pk, a.pk]
    assert listed(staff_client, "zip=80x") == []
    assert listed(staff_client, "score=90") == [e.pk, a.pk]
    assert listed(staff_client, "score=80") == [b.pk]
    assert listed(staff_client, "score=70") == [c.pk]
    assert listed(staff_client, "score=0") == [d.pk]
    assert listed(staff_client, "return=waiting") == [c.pk]
    assert listed(staff_client, "exploration__exact=1") == [d.pk]
    assert listed(staff_client, "exploration__exact=0") == [e.pk, c.pk, b.pk, a.pk]
    assert listed(staff_client, "assigned_at__isnull=True") == [e.pk, d.pk, a.pk]
    assert listed(staff_client, today) == [e.pk, d.pk, c.pk, b.pk, a.pk]
    assert listed(staff_client, urlencode({"created_at__gte": midnight + dt.timedelta(days=1)})) == []
    assert listed(staff_client, f"zip=802&score=90&trade__id__exact={roofing.pk}") == [a.pk]
    assert listed(staff_client, "q=80203") == [b.pk]
    assert listed(staff_client, "q=PARCEL-D") == [d.pk]

    page = page_of(staff_client.get(CHANGELIST))
    for title in ("By trade", "By state", "By return", "By contractor", "By ZIP code", "By score",
                  "By exploration", "By created at", "By assigned at"):  # fmt: skip
        assert title in page
    cells = row_cells(staff_client, b)
    assert {name: cells[name] for name in ("id", "trade", "state", "zip_code", "contractor", "score")} == {
        "id": str(b.pk),
        "trade": "Roofing",
        "state": "Assigned",
        "zip_code": "80203",
        "contractor": "Peak Roofing",
        "score": "85.0",
    }
    assert cells["created_at"]  # the other fields are on the lead's page (tests/leads/test_lead_list.py)
    assert row_cells(staff_client, a)["contractor"] == "-"


def test_zip_filter_keeps_the_other_filters_in_its_form(staff_client, roofing, acme):
    pool_lead(roofing)
    page = staff_client.get(f"{CHANGELIST}?state__exact=generated&zip=802").content.decode()
    assert '<input type="hidden" name="state__exact" value="generated">' in page
    assert 'name="zip" value="802"' in page


def test_changelist_queries_do_not_grow_with_the_leads_shown(
    staff_client, roofing, acme, peak, django_assert_max_num_queries
):
    for zip_code in ("80202", "80203"):
        pool_lead(roofing, zip_code=zip_code)
        assigned_lead(roofing, acme if zip_code == "80202" else peak, zip_code=zip_code)
    # The session and user, the table's row estimate, the exact count (a small table), the contractors
    # filter, the leads with their trades and contractors, and the savepoint pair around the actions.
    with django_assert_max_num_queries(7):
        assert len(listed(staff_client)) == 4

    for index in range(8):
        assigned_lead(roofing, acme if index % 2 else peak, zip_code="80202" if index % 2 else "80203")
    with django_assert_max_num_queries(7):
        assert len(listed(staff_client)) == 12


def test_lead_page_shows_the_snapshot_and_the_history_oldest_first(staff_client, staff_user, roofing, acme):
    lead = assigned_lead(roofing, acme, score=91.5, urgency=40)
    lead_withdraw(lead=lead, actor="staff", user=staff_user, reason="Bad parcel data")
    lead.refresh_from_db()

    page = page_of(staff_client.get(f"{CHANGELIST}{lead.pk}/change/"))

    assert "Score when the lead was made" in page
    assert "Roof is 23 years old" in page
    assert "91.5" in page
    assert "40.0" in page
    assert f"Roofing v{lead.model_version}" in page
    history = [page.index(text) for text in ("Generated", HAND, "Bad parcel data")]
    assert history == sorted(history)
    assert history_column(page, "action") == ["generate", "assign", "withdraw"]
    assert history_column(page, "from_state") == ["-", "generated", "assigned"]
    assert history_column(page, "to_state") == ["generated", "assigned", "withdrawn"]
    assert history_column(page, "actor") == ["System", "Staff", "Staff"]
    assert history_column(page, "user") == ["-", "-", "staff"]
    assert history_column(page, "contractor") == ["-", "Acme Roofing", "Acme Roofing"]
    assert history_column(page, "reason") == ["-", HAND, "Bad parcel data"]


def test_leads_are_read_only_in_the_admin(staff_client, roofing, acme):
    lead = assigned_lead(roofing, acme)
    before = snapshot(lead)

    page = page_of(staff_client.get(f"{CHANGELIST}{lead.pk}/change/"))
    assert 'name="state"' not in page
    assert 'name="contractor"' not in page
    assert 'name="events-0-reason"' not in page
    assert staff_client.post(f"{CHANGELIST}{lead.pk}/change/", {"state": "converted"}).status_code == 403
    assert staff_client.post(f"{CHANGELIST}{lead.pk}/delete/", {"post": "yes"}).status_code == 403
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403
    assert staff_client.get("/admin/leads/leadevent/").status_code == 404
    assert snapshot(lead) == before


def test_staff_who_may_only_view_leads_get_no_actions(client, roofing, acme):
    viewer = get_user_model().objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(viewer)
    lead = pool_lead(roofing)
    before = snapshot(lead)

    page = client.get(CHANGELIST).content.decode()
    assert f"/admin/leads/lead/{lead.pk}/change/" in page
    assert 'value="assign"' not in page
    assert 'value="withdraw"' not in page
    assert 'value="approve_return"' not in page
    assert 'value="deny_return"' not in page
    assert 'value="export_csv"' in page  # looking is what viewing allows

    response = act(client, "withdraw", [lead], reason="Bad parcel data")
    assert (response.status_code, messages_of(response)) == (200, [("warning", "No action selected.")])
    assert snapshot(lead) == before


# --- Assigning --------------------------------------------------------------------------------------


def test_assign_action_asks_for_contractor_reason_and_override_first(staff_client, roofing, acme):
    lead = pool_lead(roofing)
    before = snapshot(lead)

    page = page_of(act(staff_client, "assign", [lead]))

    assert "Assign leads" in page
    assert str(lead) in page
    assert OVERRIDE_LABEL in page
    assert 'name="reason"' in page
    assert 'name="contractor"' in page
    assert snapshot(lead) == before


def test_assign_form_finds_contractors_by_name(staff_client, roofing, acme, peak):
    response = staff_client.get(
        "/admin/autocomplete/", {"app_label": "leads", "model_name": "lead", "field_name": "contractor", "term": "pea"}
    )
    assert [row["text"] for row in response.json()["results"]] == ["Peak Roofing"]


def test_assign_action_without_a_reason_shows_the_form_again_and_assigns_nothing(staff_client, roofing, acme):
    lead = pool_lead(roofing)
    before = snapshot(lead)

    response = act(staff_client, "assign", [lead], contractor=acme.pk, reason="  ")

    assert "This field is required." in page_of(response)
    assert snapshot(lead) == before


def test_assign_action_gives_the_lead_to_its_zip_owner(staff_client, roofing, acme):
    lead = pool_lead(roofing)

    response = act(staff_client, "assign", [lead], contractor=acme.pk, reason=HAND)

    assert messages_of(response) == [("success", f"1 lead assigned to Acme Roofing: {lead.pk}.")]
    lead.refresh_from_db()
    assert (lead.state, lead.contractor_id, lead.closed_at) == ("assigned", acme.pk, None)
    assert lead.events.count() == 2
    assert event_row(last_event(lead)) == ("assign", "generated", "assigned", "staff", "staff", acme.pk, HAND, False)
    assert last_event(lead).at == lead.assigned_at


def test_assigning_to_a_contractor_that_does_not_own_the_zip_is_refused_without_override(
    staff_client, roofing, acme, peak
):
    lead = pool_lead(roofing, zip_code="80202")
    before = snapshot(lead)

    response = act(staff_client, "assign", [lead], contractor=peak.pk, reason=HAND)

    assert messages_of(response) == [
        ("error", (f"Lead {lead.pk}: 80202 Roofing is owned by Acme Roofing; Peak Roofing may have this lead only "
                  "with an override.")),
    ]  # fmt: skip
    assert snapshot(lead) == before

    response = act(staff_client, "assign", [lead], contractor=peak.pk, reason=HAND, override="on")

    assert messages_of(response) == [("success", f"1 lead assigned to Peak Roofing: {lead.pk}.")]
    lead.refresh_from_db()
    assert (lead.state, lead.contractor_id) == ("assigned", peak.pk)
    assert event_row(last_event(lead)) == (
        "assign",
        "generated",
        "assigned",
        "staff",
        "staff",
        peak.pk,
        f"{HAND} (overrode exclusivity)",
        True,
    )


def test_assign_action_reassigns_reports_each_refusal_and_moves_the_rest(staff_client, staff_user, roofing, acme):
    old = owner(roofing, name="Old Roofing", slug="old-roofing")
    with_other = lead_assign(lead=pool_lead(roofing), contractor=old, user=None, reason=HAND, override=True)
    in_pool = pool_lead(roofing)
    withdrawn = lead_withdraw(lead=pool_lead(roofing), actor="staff", user=staff_user, reason="Bad parcel data")
    already = assigned_lead(roofing, acme)
    untouched = [snapshot(withdrawn), snapshot(already)]

    response = act(staff_client, "assign", [with_other, in_pool, withdrawn, already], contractor=acme.pk, reason=HAND)

    assert messages_of(response) == [
        ("error", (f"Lead {withdrawn.pk} is withdrawn; it cannot be reassigned (only a lead that is assigned, "
                  "delivered).")),
        ("error", f"Lead {already.pk} is already with Acme Roofing."),
        ("success", f"2 leads assigned to Acme Roofing: {with_other.pk}, {in_pool.pk}."),
    ]  # fmt: skip
    assert [snapshot(withdrawn), snapshot(already)] == untouched
    assert list(Lead.objects.filter(pk__in=[with_other.pk, in_pool.pk]).values_list("state", "contractor")) == [
        ("assigned", acme.pk),
        ("assigned", acme.pk),
    ]
    assert event_row(last_event(with_other))[:3] == ("reassign", "assigned", "assigned")
    assert event_row(last_event(in_pool))[:3] == ("assign", "generated", "assigned")


def test_assigning_past_the_contractors_cap_needs_the_override(staff_client, roofing, acme):
    acme.daily_cap = 1
    acme.save(update_fields=["daily_cap"])
    assigned_lead(roofing, acme)
    lead = pool_lead(roofing)
    before = snapshot(lead)

    refused = act(staff_client, "assign", [lead], contractor=acme.pk, reason=HAND)

    assert messages_of(refused) == [
        ("error", f"Lead {lead.pk}: Acme Roofing has reached its lead cap; assign with an override to exceed it.")
    ]
    assert snapshot(lead) == before

    act(staff_client, "assign", [lead], contractor=acme.pk, reason=HAND, override="on")
    assert event_row(last_event(lead))[-2:] == (f"{HAND} (overrode caps)", True)


# --- Withdrawing and returns ------------------------------------------------------------------------


def test_withdraw_action_takes_the_lead_back_as_staff(staff_client, roofing, acme):
    lead = assigned_lead(roofing, acme)

    form = page_of(act(staff_client, "withdraw", [lead]))
    assert "Withdraw leads" in form
    assert 'name="reason"' in form
    response = act(staff_client, "withdraw", [lead], reason="Owner asked not to be contacted")

    assert messages_of(response) == [("success", f"1 lead withdrawn: {lead.pk}.")]
    lead.refresh_from_db()
    assert (lead.state, lead.contractor_id, lead.expires_at) == ("withdrawn", acme.pk, None)
    event = last_event(lead)
    assert event_row(event) == (
        "withdraw",
        "assigned",
        "withdrawn",
        "staff",
        "staff",
        acme.pk,
        "Owner asked not to be contacted",
        False,
    )
    assert lead.closed_at == event.at


def test_withdraw_action_refuses_a_closed_lead_and_changes_nothing(staff_client, staff_user, roofing, acme):
    lead = lead_withdraw(lead=pool_lead(roofing), actor="staff", user=staff_user, reason="Bad parcel data")
    before = snapshot(lead)

    response = act(staff_client, "withdraw", [lead], reason="Again")

    assert messages_of(response) == [
        ("error", (f"Lead {lead.pk} is withdrawn; it cannot be withdrawn (only a lead that is generated "
                  "(unassigned), assigned, delivered, accepted).")),
    ]  # fmt: skip
    assert snapshot(lead) == before


def test_return_waiting_filter_and_approve_action_return_the_lead(staff_client, roofing, acme):
    waiting = lead_with_waiting_return(roofing, acme)
    other = lead_deliver(lead=assigned_lead(roofing, acme), via="api")
    other_before = snapshot(other)
    assert listed(staff_client, "return=waiting") == [waiting.pk]

    response = act(staff_client, "approve_return", [waiting, other])

    assert messages_of(response) == [
        ("error", f"Lead {other.pk} has no return waiting for approval."),
        ("success", f"1 lead returned: {waiting.pk}."),
    ]
    assert snapshot(other) == other_before
    waiting.refresh_from_db()
    assert (waiting.state, waiting.contractor_id, waiting.return_reason) == ("returned", acme.pk, "wrong_contact")
    event = last_event(waiting)
    assert event_row(event) == ("return_approve", "delivered", "returned", "staff", "staff", acme.pk, "", False)
    assert waiting.closed_at == event.at
    assert listed(staff_client, "return=waiting") == []


def test_deny_return_action_keeps_the_lead_with_its_contractor(staff_client, roofing, acme):
    waiting = lead_with_waiting_return(roofing, acme)
    before = snapshot(waiting)

    form = page_of(act(staff_client, "deny_return", [waiting]))
    assert "Deny returns" in form
    assert 'name="note"' in form
    assert snapshot(waiting) == before
    blank = act(staff_client, "deny_return", [waiting], note=" ")
    assert "This field is required." in page_of(blank)
    assert snapshot(waiting) == before

    response = act(staff_client, "deny_return", [waiting], note="The number works; we called it")

    assert messages_of(response) == [
        ("success", f"Return denied for 1 lead: {waiting.pk}."),
    ]
    waiting.refresh_from_db()
    assert (waiting.state, waiting.contractor_id) == ("delivered", acme.pk)
    assert (waiting.return_reason, waiting.return_note, waiting.return_requested_at) == ("", "", None)
    assert event_row(last_event(waiting)) == (
        "return_deny",
        "delivered",
        "delivered",
        "staff",
        "staff",
        acme.pk,
        "The number works; we called it",
        False,
    )
    assert listed(staff_client, "return=waiting") == []


# --- Quality filters --------------------------------------------------------------------------------


def test_lead_filter_page_edits_a_trades_filters_with_property_type_checkboxes(staff_client, roofing):
    lead_filter = LeadFilter.objects.get(trade=roofing)
    url = f"/admin/leads/leadfilter/{lead_filter.pk}/change/"
    page = page_of(staff_client.get(url))
    assert 'type="checkbox" name="property_types" value="condo"' in page
    assert 'name="trade"' not in page
    volume, exploration = (f'class="fieldset-heading">{name}</h2>' for name in ("Volume", "Exploration"))
    assert page.index(volume) < page.index('name="capacity_factor"') < page.index('name="uncapped_leads_per_zip"')
    assert page.index('name="uncapped_leads_per_zip"') < page.index(exploration) < page.index("exploration_share")

    response = staff_client.post(
        url,
        {
            "enabled": "on",
            "min_score": "85",
            "min_urgency": "",
            "property_types": ["single_family", "townhouse"],
            "max_per_zip_per_day": "10",
            "cooldown_days": "30",
            "capacity_factor": "2",
            "pool_leads_per_day": "20",
            "uncapped_leads_per_zip": "3",
            "exploration_share": "0.1",
        },
    )

    assert response.status_code == 302
    lead_filter.refresh_from_db()
    assert (
        lead_filter.enabled,
        lead_filter.min_score,
        lead_filter.min_urgency,
        lead_filter.owner_occupied_only,
        lead_filter.property_types,
        lead_filter.max_per_zip_per_day,
        lead_filter.cooldown_days,
    ) == (True, 85.0, None, False, ["single_family", "townhouse"], 10, 30)
    volume = (lead_filter.capacity_factor, lead_filter.pool_leads_per_day, lead_filter.uncapped_leads_per_zip)
    assert (volume, lead_filter.exploration_share) == ((2.0, 20, 3), 0.1)
    assert "Single family, Townhouse" in page_of(staff_client.get("/admin/leads/leadfilter/"))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("min_score", "150", "Ensure this value is less than or equal to 100."),
        ("min_score", "-1", "Ensure this value is greater than or equal to 0."),
        ("min_urgency", "101", "Ensure this value is less than or equal to 100."),
        ("max_per_zip_per_day", "0", "Ensure this value is greater than or equal to 1."),
        ("cooldown_days", "0", "Ensure this value is greater than or equal to 1."),
        ("capacity_factor", "0", "Above 0; leave it blank for no volume target."),
        ("capacity_factor", "-1", "Ensure this value is greater than or equal to 0."),
        ("pool_leads_per_day", "-1", "Ensure this value is greater than or equal to 0."),
        ("exploration_share", "0.6", "Ensure this value is less than or equal to 0.5."),
        ("exploration_share", "-0.1", "Ensure this value is greater than or equal to 0."),
    ],
)
def test_lead_filter_values_out_of_range_are_form_errors(staff_client, roofing, field, value, error):
    lead_filter = LeadFilter.objects.get(trade=roofing)
    before = LeadFilter.objects.filter(pk=lead_filter.pk).values().get()
    data = {"enabled": "on", "min_score": "80", "min_urgency": "", "max_per_zip_per_day": "", "cooldown_days": "90"}
    data |= {"capacity_factor": "1.5", "pool_leads_per_day": "50", "uncapped_leads_per_zip": "2"}
    data |= {"exploration_share": "0"}

    response = staff_client.post(f"/admin/leads/leadfilter/{lead_filter.pk}/change/", {**data, field: value})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {field: [error]}
    assert LeadFilter.objects.filter(pk=lead_filter.pk).values().get() == before


def test_lead_filters_are_not_deleted(staff_client, roofing):
    lead_filter = LeadFilter.objects.get(trade=roofing)
    response = staff_client.post(f"/admin/leads/leadfilter/{lead_filter.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert LeadFilter.objects.filter(pk=lead_filter.pk).exists()


# --- The do-not-contact list ------------------------------------------------------------------------


def stored() -> list[tuple]:
    return list(
        Suppression.objects.order_by("kind", "value").values_list(
            "kind", "value", "zip_code", "note", "source", "created_by__username"
        )
    )


def test_adding_an_entry_withdraws_the_matching_pool_lead_and_lists_assigned_ones(staff_client, roofing, acme):
    in_pool = pool_lead(roofing, address="12 Elm St", zip_code="80202", owner_name="Jane Doe")
    with_acme = assigned_lead(roofing, acme, address="40 Oak Ave", owner_name="Jane Doe")
    other = pool_lead(roofing, address="14 Elm St", owner_name="John Roe")
    before = [snapshot(with_acme), snapshot(other)]

    response = staff_client.post(
        f"{SUPPRESSIONS}add/", {"kind": "owner", "value": "jane  doe.", "note": "Called the office"}, follow=True
    )

    assert messages_of(response) == [
        ("success", ("JANE DOE added to the do-not-contact list: 1 added, 0 already listed, 1 lead withdrawn; "
                    "1 matching lead is with a contractor.")),
        ("warning", f"1 lead with contractors match and were left to you (withdraw them if need be): {with_acme.pk}."),
    ]  # fmt: skip
    assert f'href="/admin/leads/lead/?id__in={with_acme.pk}"' in response.content.decode()
    assert listed(staff_client, f"id__in={with_acme.pk}") == [with_acme.pk]
    assert stored() == [("owner", "JANE DOE", "", "Called the office", "staff", "staff")]
    in_pool.refresh_from_db()
    assert (in_pool.state, in_pool.contractor_id) == ("withdrawn", None)
    assert event_row(last_event(in_pool)) == (
        "withdraw",
        "generated",
        "withdrawn",
        "system",
        None,
        None,
        "On the do-not-contact list",
        False,
    )
    assert [snapshot(with_acme), snapshot(other)] == before

    again = staff_client.post(f"{SUPPRESSIONS}add/", {"kind": "owner", "value": "Jane Doe"}, follow=True)
    assert messages_of(again)[0] == (
        "success",
        (
            "JANE DOE already on the do-not-contact list: 0 added, 1 already listed, 0 leads withdrawn; "
            "1 matching lead is with a contractor."
        ),
    )
    assert Suppression.objects.count() == 1


def test_adding_an_invalid_entry_is_a_form_error_and_adds_nothing(staff_client, roofing):
    lead = pool_lead(roofing, parcel_id="0512-33-001")
    before = snapshot(lead)

    page = staff_client.get(f"{SUPPRESSIONS}add/").content.decode()
    assert 'name="kind"' in page
    assert 'name="value"' in page
    assert 'name="zip_code"' in page

    response = staff_client.post(f"{SUPPRESSIONS}add/", {"kind": "parcel", "value": "0512-33-001", "zip_code": "80202"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"__all__": ["Only address entries take a ZIP code"]}

    response = staff_client.post(f"{SUPPRESSIONS}add/", {"kind": "address", "value": "--", "zip_code": ""})
    assert response.context["form"].errors == {"__all__": ["An address entry needs a value with letters or digits"]}
    assert not Suppression.objects.exists()
    assert snapshot(lead) == before


CSV_GOOD = b"kind,value,zip,note\naddress,12 Elm St.,80202,Called\nowner,Jane Doe,,\nparcel,P-77,,Letter\n"
CSV_BAD = b"kind,value,zip\naddress,12 Elm St.,80202\nparcel,P-1,80202\nbogus,x,\nowner,Jane Doe,\n"


def test_csv_import_adds_every_entry_and_reports_the_summary(staff_client, roofing, acme):
    in_pool = pool_lead(roofing, address="12 Elm St", zip_code="80202")
    with_acme = assigned_lead(roofing, acme, owner_name="Jane Doe")

    changelist = page_of(staff_client.get(SUPPRESSIONS))
    assert 'href="/admin/leads/suppression/import/"' in changelist
    assert "Import CSV" in changelist
    form = staff_client.get(f"{SUPPRESSIONS}import/").content.decode()
    assert 'enctype="multipart/form-data"' in form
    assert 'type="file" name="file"' in form

    response = staff_client.post(
        f"{SUPPRESSIONS}import/", {"file": SimpleUploadedFile("dnc.csv", CSV_GOOD, "text/csv")}, follow=True
    )

    assert messages_of(response) == [
        ("success", ("Do-not-contact file imported: 3 added, 0 already listed, 1 lead withdrawn; "
                    "1 matching lead is with a contractor.")),
        ("warning", f"1 lead with contractors match and were left to you (withdraw them if need be): {with_acme.pk}."),
    ]  # fmt: skip
    assert stored() == [
        ("address", "12 ELM ST", "80202", "Called", "import", "staff"),
        ("owner", "JANE DOE", "", "", "import", "staff"),
        ("parcel", "P 77", "", "Letter", "import", "staff"),
    ]
    in_pool.refresh_from_db()
    assert in_pool.state == "withdrawn"


def test_csv_import_with_bad_rows_lists_them_and_imports_nothing(staff_client, roofing):
    lead = pool_lead(roofing, address="12 Elm St", zip_code="80202")
    before = snapshot(lead)

    response = staff_client.post(f"{SUPPRESSIONS}import/", {"file": SimpleUploadedFile("dnc.csv", CSV_BAD)})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "file": [
            "2 bad row(s); nothing was imported.",
            "Line 3: only address entries take a ZIP code",
            "Line 4: kind 'bogus' is not one of: parcel, address, owner",
        ]
    }
    assert "Line 4: kind 'bogus' is not one of: parcel, address, owner" in page_of(response)
    assert not Suppression.objects.exists()
    assert snapshot(lead) == before

    not_csv = staff_client.post(f"{SUPPRESSIONS}import/", {"file": SimpleUploadedFile("dnc.csv", b"\xff\xfe\x00")})
    assert response.status_code == 200
    assert not_csv.context["form"].errors["file"][1].startswith("Line 1: not UTF-8 text")
    assert not Suppression.objects.exists()


def test_entries_are_searched_as_stored_and_not_edited(staff_client, staff_user, roofing):
    for entry in ({"kind": "address", "value": "12 Elm St.", "zip_code": "80202"}, {"kind": "owner", "value": "Roe"}):
        staff_client.post(f"{SUPPRESSIONS}add/", entry, follow=True)
    entry = Suppression.objects.get(kind="address")

    page = page_of(staff_client.get(f"{SUPPRESSIONS}?q=12+elm+st."))
    assert f"/admin/leads/suppression/{entry.pk}/change/" in page
    assert ">ROE<" not in page
    assert ">ROE<" in page_of(staff_client.get(f"{SUPPRESSIONS}?kind__exact=owner&source__exact=staff"))
    assert ">ROE<" not in page_of(staff_client.get(f"{SUPPRESSIONS}?kind__exact=owner&source__exact=import"))

    assert 'name="value"' not in staff_client.get(f"{SUPPRESSIONS}{entry.pk}/change/").content.decode()
    assert staff_client.post(f"{SUPPRESSIONS}{entry.pk}/change/", {"value": "OTHER"}).status_code == 403
    assert Suppression.objects.get(pk=entry.pk).value == "12 ELM ST"

    # Lifting an entry is a delete: Django's own permission (superusers here).
    assert staff_client.post(f"{SUPPRESSIONS}{entry.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Suppression.objects.filter(pk=entry.pk).exists()


# --- Exporting --------------------------------------------------------------------------------------


def exported_rows(response) -> list[list[str]]:
    import csv
    import io

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_export_action_streams_the_selected_leads_as_the_api_csv_and_delivers_nothing(staff_client, roofing, acme):
    from leads.export import HEADER

    chosen = assigned_lead(roofing, acme, owner_name="=HYPERLINK(1)")
    other = pool_lead(roofing)
    before = snapshot(chosen)

    response = staff_client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [chosen.pk]})

    rows = exported_rows(response)
    assert rows[0] == HEADER
    assert [row[0] for row in rows[1:]] == [str(chosen.pk)]
    record = dict(zip(HEADER, rows[1], strict=True))
    assert (record["state"], record["owner_name"]) == ("assigned", "'=HYPERLINK(1)")  # a formula is text
    assert snapshot(chosen) == before  # staff looking at leads is no delivery
    assert str(other.pk) not in {row[0] for row in rows}


def test_staff_who_may_only_view_leads_may_export_them(client, roofing, acme):
    viewer = get_user_model().objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(viewer)
    lead = assigned_lead(roofing, acme)

    response = client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [lead.pk]})

    assert [row[0] for row in exported_rows(response)[1:]] == [str(lead.pk)]
    assert Lead.objects.get(pk=lead.pk).state == Lead.State.ASSIGNED
