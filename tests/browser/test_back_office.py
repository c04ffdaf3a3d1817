"""The back office in a real browser: staff log in through the form, read the dashboard's charts, filter
the lead list, move a lead with an action, and a lead manager is kept out of the scoring models."""

import re

from django.contrib.auth.models import Group
from playwright.sync_api import expect

from leadengine.services.roles import roles_seed
from leads.models import Lead, LeadEvent
from tests.browser.conftest import user

State = Lead.State


def test_staff_log_in_through_the_form_and_see_the_dashboard_charts(screen, market):
    user("boss", is_superuser=True)

    screen.log_in("boss")

    page = screen.page
    charts = page.locator("#dashboard svg.chart")
    expect(charts.first).to_be_visible()
    # Per day, roofing's funnel, the rates by contractor and by ZIP, coverage, roofing's score distribution.
    expect(charts).to_have_count(6)
    for index in range(charts.count()):
        drawn = charts.nth(index).locator("rect, path, polyline, line, circle")
        assert drawn.count() > 0, f"chart {index} draws nothing"
    funnel = page.locator('#dashboard-funnel figure[data-trade="roofing"] svg.chart')
    expect(funnel.locator("title", has_text="generated: 7 leads")).to_have_count(1)
    expect(page.locator("#dashboard-totals")).to_contain_text("7 generated")
    expect(page.locator("#content-main")).to_be_visible()  # the models are listed below the dashboard
    screen.shot("dashboard")
    assert screen.errors == []


def test_the_lead_list_is_filtered_by_state_and_searched_by_zip(screen, market):
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page

    screen.goto("/admin/leads/lead/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(7)
    screen.shot("all")

    by_state = page.locator('#changelist-filter details[data-filter-title="state"]')
    by_state.get_by_role("link", name="Assigned", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]state__exact=assigned"))
    expect(rows).to_have_count(2)
    expect(rows.locator("td.field-state")).to_have_text(["Assigned", "Assigned"])
    expect(rows.locator("td.field-contractor")).to_have_text(["Bolt Roofing", "Bolt Roofing"])
    screen.shot("assigned")

    by_state.get_by_role("link", name="All", exact=True).click()
    expect(rows).to_have_count(7)
    page.locator("#searchbar").fill("80202")
    page.locator("#changelist-search [type=submit]").click()
    expect(page).to_have_url(re.compile(r"[?&]q=80202"))
    expect(rows).to_have_count(4)
    expect(rows.locator("td.field-zip_code")).to_have_text(["80202"] * 4)
    expected = sorted(lead.get_state_display() for lead in Lead.objects.filter(zip_code="80202"))
    assert sorted(rows.locator("td.field-state").all_inner_texts()) == expected
    screen.shot("searched")
    assert screen.errors == []


def test_staff_withdraw_a_lead_with_the_action_and_its_reason(screen, market):
    user("boss", is_superuser=True)
    (lead,) = market["leads"][State.GENERATED]
    others = {other.pk: other.state for other in Lead.objects.exclude(pk=lead.pk)}
    screen.log_in("boss")
    page = screen.page

    screen.goto("/admin/leads/lead/")
    page.locator(f'#result_list input.action-select[value="{lead.pk}"]').check()
    page.locator('select[name="action"]').select_option("withdraw")
    screen.shot("selected")
    page.locator('#changelist-form button[name="index"]').click()

    expect(page.locator("h1")).to_have_text("Withdraw leads")
    page.locator("#id_reason").fill("Owner asked not to be contacted")
    screen.shot("reason")
    page.locator('input[type="submit"][value="Withdraw"]').click()

    success = page.locator("ul.messagelist li.success")
    expect(success).to_have_text(f"1 lead withdrawn: {lead.pk}.")
    screen.shot("withdrawn")
    lead.refresh_from_db()
    assert lead.state == State.WITHDRAWN
    event = lead.events.latest("at")
    assert (event.action, event.actor, event.user.username, event.reason) == (
        "withdraw",
        LeadEvent.Actor.STAFF,
        "boss",
        "Owner asked not to be contacted",
    )
    assert {other.pk: other.state for other in Lead.objects.exclude(pk=lead.pk)} == others
    assert screen.errors == []


def test_a_lead_manager_is_refused_the_scoring_models(screen, market):
    roles_seed()
    user("desk").groups.add(Group.objects.get(name="Lead manager"))
    screen.log_in("desk")
    page = screen.page

    content = page.locator("#content-main")
    expect(content.locator("tr.model-lead").get_by_role("link", name="Leads")).to_be_visible()
    expect(content.locator("tr.model-property")).to_be_visible()  # the scoring app is listed, in part
    expect(content.locator("tr.model-scoringmodel")).to_have_count(0)
    expect(content.get_by_role("link", name="Scoring models")).to_have_count(0)
    screen.shot("index")

    response = screen.goto("/admin/scoring/scoringmodel/")

    assert response is not None
    assert response.status == 403
    screen.shot("refused")
