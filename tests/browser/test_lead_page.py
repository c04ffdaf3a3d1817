"""A lead's page in a real browser: the buttons beside History are the moves its state allows staff, and
one of them, with its form, moves the lead and brings staff back to its page."""

from playwright.sync_api import expect

from leads.models import Lead, LeadEvent
from tests.browser.conftest import user

State = Lead.State

# What each state of the demo market's leads offers (a return is made at once there: none waits).
BUTTONS = {
    State.GENERATED: ["Assign or reassign", "Withdraw"],
    State.ASSIGNED: ["Assign or reassign", "Withdraw"],
    State.DELIVERED: ["Assign or reassign", "Withdraw"],
    State.ACCEPTED: ["Withdraw"],
    State.CONVERTED: [],
    State.RETURNED: [],
}


def test_each_lead_page_shows_the_buttons_its_state_allows(screen, market):
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page
    leads = [lead for state in BUTTONS for lead in market["leads"][state]]
    assert {lead.state for lead in leads} == set(BUTTONS)

    for lead in leads:
        screen.goto(f"/admin/leads/lead/{lead.pk}/change/")
        expect(page.locator("h1")).to_have_text("View lead")
        tools = page.locator("ul.object-tools")
        expect(tools.get_by_role("link", name="History")).to_be_visible()
        expect(tools.locator("button.object-action-button")).to_have_text(BUTTONS[lead.state])
        screen.shot(lead.state)
    assert screen.errors == []


def test_the_withdraw_button_asks_for_the_reason_and_comes_back_to_the_lead(screen, market):
    user("boss", is_superuser=True)
    (lead,) = market["leads"][State.GENERATED]
    screen.log_in("boss")
    page = screen.page
    screen.goto(f"/admin/leads/lead/{lead.pk}/change/")

    page.get_by_role("button", name="Withdraw").click()
    expect(page.locator("h1")).to_have_text("Withdraw leads")
    page.locator("#id_reason").fill("Owner asked not to be contacted")
    screen.shot("reason")
    page.locator('input[type="submit"][value="Withdraw"]').click()

    expect(page).to_have_url(f"{screen.base_url}/admin/leads/lead/{lead.pk}/change/")
    expect(page.locator("ul.messagelist li.success")).to_have_text(f"1 lead withdrawn: {lead.pk}.")
    expect(page.locator("ul.object-tools button.object-action-button")).to_have_count(0)
    expect(page.locator(".field-state .readonly")).to_have_text("Withdrawn")
    screen.shot("withdrawn")
    lead.refresh_from_db()
    assert (lead.state, lead.events.latest("id").actor) == (State.WITHDRAWN, LeadEvent.Actor.STAFF)
    assert screen.errors == []
