"""A lead's page offers the moves its state allows staff, as buttons (core.admin.ObjectActionsAdmin): each
button runs the list's bulk action on that one lead, with its form and its permission. The buttons offered
for a lead are exactly the moves its service accepts: checked for a lead in every state against the service
itself, so a button never offers a refused move and no allowed move lacks its button."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from leads.errors import LeadError
from leads.models import Lead, LeadEvent
from leads.services.lifecycle import (
    lead_accept,
    lead_assign,
    lead_convert,
    lead_deliver,
    lead_reject,
    lead_return,
    lead_return_approve,
    lead_return_deny,
    lead_withdraw,
    leads_expire,
)
from tests.admin_pages import messages_of, page_of
from tests.leads.test_admin import HAND, assigned_lead, pool_lead, snapshot

State, Actor = Lead.State, LeadEvent.Actor
CONTRACTOR = Actor.CONTRACTOR


def page_url(lead: Lead) -> str:
    return f"/admin/leads/lead/{lead.pk}/change/"


def act_url(lead: Lead, name: str) -> str:
    return f"/admin/leads/lead/{lead.pk}/act/{name}/"


def buttons(client, lead: Lead) -> set[str]:
    """The actions the lead's page offers as buttons."""
    page = client.get(page_url(lead)).content.decode()
    return set(re.findall(rf'<form method="post" action="/admin/leads/lead/{lead.pk}/act/(\w+)/"', page))


def delivered(trade, contractor) -> Lead:
    return lead_deliver(lead=assigned_lead(trade, contractor), via="api")


def waiting_return(lead: Lead) -> Lead:
    with override_settings(LEAD_RETURN_RATE_PERCENT=0):
        assert lead_return(lead=lead, reason="wrong_contact", note="Disconnected").pending
    return Lead.objects.get(pk=lead.pk)


def accepted(trade, contractor) -> Lead:
    return lead_accept(lead=delivered(trade, contractor), actor=CONTRACTOR)


@pytest.fixture
def leads_by_case(roofing, acme, peak) -> dict[str, Lead]:
    """A lead in every state the table knows, and the two states in which a return may wait."""
    expired = pool_lead(roofing)
    leads_expire(now=timezone.now() + timezone.timedelta(days=400))
    returned = delivered(roofing, acme)
    with override_settings(LEAD_RETURN_RATE_PERCENT=100):
        lead_return(lead=returned, reason="not_owner")
    return {
        "generated": pool_lead(roofing),
        "assigned": assigned_lead(roofing, acme),
        "delivered": delivered(roofing, acme),
        "delivered, return waiting": waiting_return(delivered(roofing, acme)),
        "accepted": accepted(roofing, acme),
        "accepted, return waiting": waiting_return(accepted(roofing, acme)),
        "converted": lead_convert(lead=accepted(roofing, acme), actor=CONTRACTOR, job_value="9000"),
        "rejected": lead_reject(lead=delivered(roofing, acme), actor=CONTRACTOR),
        "returned": Lead.objects.get(pk=returned.pk),
        "withdrawn": lead_withdraw(lead=pool_lead(roofing), actor=Actor.STAFF, user=None, reason="Bad parcel"),
        "expired": Lead.objects.get(pk=expired.pk),
    }


OFFERED = {
    "generated": {"assign", "withdraw"},
    "assigned": {"assign", "withdraw"},
    "delivered": {"assign", "withdraw"},
    "delivered, return waiting": {"assign", "withdraw", "approve_return", "deny_return"},
    "accepted": {"withdraw"},
    "accepted, return waiting": {"withdraw", "approve_return", "deny_return"},
    "converted": set(),
    "rejected": set(),
    "returned": set(),
    "withdrawn": set(),
    "expired": set(),
}


def service_accepts(lead: Lead, name: str, peak) -> bool:
    """Whether the action's service moves the lead (tried, then rolled back). Assigning gives the lead to a
    contractor it is not with, with the override, so that only the lead's state can refuse it."""
    moves = {
        "assign": lambda lead: lead_assign(lead=lead, contractor=peak, user=None, reason=HAND, override=True),
        "withdraw": lambda lead: lead_withdraw(lead=lead, actor=Actor.STAFF, user=None, reason="Bad parcel"),
        "approve_return": lambda lead: lead_return_approve(lead=lead, user=None),
        "deny_return": lambda lead: lead_return_deny(lead=lead, user=None, note="Phone works"),
    }
    savepoint = transaction.savepoint()
    try:
        moves[name](Lead.objects.get(pk=lead.pk))
    except LeadError:
        return False
    else:
        return True
    finally:
        transaction.savepoint_rollback(savepoint)


def test_each_lead_page_offers_exactly_the_moves_its_service_accepts(staff_client, leads_by_case, peak):
    assert {case: lead.state for case, lead in leads_by_case.items()} == {
        case: case.split(",")[0] for case in leads_by_case
    }
    offered = {case: buttons(staff_client, lead) for case, lead in leads_by_case.items()}

    assert offered == OFFERED
    accepted_by_services = {
        case: {
            name
            for name in ("assign", "withdraw", "approve_return", "deny_return")
            if service_accepts(lead, name, peak)
        }
        for case, lead in leads_by_case.items()
    }
    assert accepted_by_services == offered


def test_withdraw_button_asks_for_the_reason_then_withdraws_and_shows_the_lead_again(staff_client, roofing, acme):
    lead = assigned_lead(roofing, acme)

    form = staff_client.post(act_url(lead, "withdraw"))
    assert form.status_code == 200
    assert "<h1>Withdraw leads</h1>" in page_of(form)
    assert Lead.objects.get(pk=lead.pk).state == State.ASSIGNED

    done = staff_client.post(
        act_url(lead, "withdraw"),
        {"reason": "Owner asked not to be contacted", "action": "withdraw", "apply": "yes"},
        follow=True,
    )

    assert done.redirect_chain == [(page_url(lead), 302)]
    assert messages_of(done) == [("success", f"1 lead withdrawn: {lead.pk}.")]
    lead.refresh_from_db()
    assert lead.state == State.WITHDRAWN
    event = lead.events.latest("id")
    assert (event.action, event.actor, event.user.username, event.reason) == (
        "withdraw",
        Actor.STAFF,
        "staff",
        "Owner asked not to be contacted",
    )
    assert buttons(staff_client, lead) == set()


def test_assign_button_reassigns_with_the_form_and_reports_a_refusal_as_the_bulk_action_does(
    staff_client, roofing, acme, peak
):
    lead = assigned_lead(roofing, acme)
    form = {"contractor": peak.pk, "reason": HAND, "action": "assign", "apply": "yes"}

    refused = staff_client.post(act_url(lead, "assign"), form, follow=True)

    assert refused.redirect_chain == [(page_url(lead), 302)]
    assert messages_of(refused) == [
        (
            "error",
            (
                f"Lead {lead.pk}: 80202 Roofing is owned by Acme Roofing; Peak Roofing may have this lead only "
                "with an override."
            ),
        )
    ]
    assert Lead.objects.get(pk=lead.pk).contractor == acme

    moved = staff_client.post(act_url(lead, "assign"), {**form, "override": "on"}, follow=True)

    assert messages_of(moved) == [("success", f"1 lead assigned to Peak Roofing: {lead.pk}.")]
    assert Lead.objects.get(pk=lead.pk).contractor == peak


def test_approve_button_returns_the_lead(staff_client, roofing, acme):
    lead = waiting_return(delivered(roofing, acme))

    response = staff_client.post(act_url(lead, "approve_return"), follow=True)

    assert messages_of(response) == [("success", f"1 lead returned: {lead.pk}.")]
    assert Lead.objects.get(pk=lead.pk).state == State.RETURNED


def test_a_button_left_on_a_page_after_the_lead_moved_runs_nothing(staff_client, roofing, acme):
    lead = waiting_return(delivered(roofing, acme))
    assert "approve_return" in buttons(staff_client, lead)
    lead_withdraw(lead=lead, actor=Actor.STAFF, user=None, reason="Duplicate")  # meanwhile, elsewhere
    before = snapshot(lead)

    response = staff_client.post(act_url(lead, "approve_return"), follow=True)

    assert response.redirect_chain == [(page_url(lead), 302)]
    lead.refresh_from_db()
    assert messages_of(response) == [
        ("error", f"Nothing done: {lead} no longer allows “Approve the return”; see what it allows now.")
    ]
    assert snapshot(lead) == before


def test_staff_who_may_only_view_leads_get_no_buttons_and_their_posts_are_refused(client, roofing, acme):
    viewer = get_user_model().objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(viewer)
    lead = pool_lead(roofing)
    before = snapshot(lead)

    assert buttons(client, lead) == set()
    response = client.post(act_url(lead, "withdraw"), {"reason": "x", "action": "withdraw", "apply": "yes"})

    assert response.status_code == 403
    assert snapshot(lead) == before


def test_an_action_url_takes_only_posts_of_the_page_s_actions(staff_client, roofing, acme):
    lead = pool_lead(roofing)

    assert staff_client.get(act_url(lead, "withdraw")).status_code == 405
    assert staff_client.post(act_url(lead, "export_csv")).status_code == 403  # a list action, not a move
    assert staff_client.post(act_url(lead, "nonsense")).status_code == 403
    assert staff_client.post(f"/admin/leads/lead/{lead.pk + 1000}/act/withdraw/").status_code == 404
    assert Lead.objects.get(pk=lead.pk).state == State.GENERATED
