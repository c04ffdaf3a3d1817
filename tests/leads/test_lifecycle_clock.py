"""The lifecycle's moves carry the time they are given (a replayed or simulated day), and the clock's
time when given none."""

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from leads.errors import ReturnRefused
from leads.models import Lead, LeadEvent
from leads.services.lifecycle import (
    lead_accept,
    lead_contact,
    lead_convert,
    lead_reject,
    lead_return,
    lead_return_approve,
    leads_deliver,
)

CONTRACTOR = LeadEvent.Actor.CONTRACTOR
DAY = timezone.make_aware(dt.datetime(2026, 3, 2, 7, 0))


def at(hours: int) -> dt.datetime:
    return DAY + dt.timedelta(hours=hours)


def events(lead: Lead) -> list[tuple[str, dt.datetime]]:
    return list(LeadEvent.objects.filter(lead=lead).order_by("id").values_list("action", "at"))


def test_accept_contact_and_convert_carry_the_time_given(market):
    _, _, (lead, _, _) = market
    leads_deliver(lead_ids=[lead.pk], via="api", now=at(0))

    lead_accept(lead=lead, actor=CONTRACTOR, now=at(1))
    lead_contact(lead=lead, actor=CONTRACTOR, note="Called", now=at(2))
    lead_convert(lead=lead, job_value="12000", actor=CONTRACTOR, now=at(30))

    lead.refresh_from_db()
    assert (lead.delivered_at, lead.accepted_at, lead.contacted_at) == (at(0), at(1), at(2))
    assert (lead.converted_at, lead.closed_at, lead.expires_at) == (at(30), at(30), None)
    assert events(lead)[-4:] == [("deliver", at(0)), ("accept", at(1)), ("contact", at(2)), ("convert", at(30))]


def test_reject_carries_the_time_given(market):
    _, _, (lead, _, _) = market
    leads_deliver(lead_ids=[lead.pk], via="api", now=at(0))

    lead_reject(lead=lead, actor=CONTRACTOR, reason="Too far", now=at(5))

    lead.refresh_from_db()
    assert (lead.state, lead.closed_at) == ("rejected", at(5))
    assert events(lead)[-1] == ("reject", at(5))


def test_a_return_and_its_approval_carry_the_time_given_and_the_window_counts_from_it(market):
    _, _, (first, second, _) = market
    leads_deliver(lead_ids=[first.pk, second.pk], via="api", now=at(0))

    with override_settings(LEAD_RETURN_RATE_PERCENT=0):
        waiting = lead_return(lead=first, reason="not_interested", now=at(24))
    assert waiting.pending
    approved = lead_return_approve(lead=waiting.lead, user=None, note="Checked", now=at(26))
    assert (approved.state, approved.return_requested_at, approved.closed_at) == ("returned", at(24), at(26))
    assert [action for action, _ in events(first)][-2:] == ["return_request", "return_approve"]
    assert events(first)[-2:] == [("return_request", at(24)), ("return_approve", at(26))]

    # The return window (7 days after delivery) is judged at the time given, not the clock's.
    with pytest.raises(ReturnRefused, match="returns are taken for 7 days after delivery"):
        lead_return(lead=second, reason="not_interested", now=at(24 * 8))
    second.refresh_from_db()
    assert (second.state, second.return_requested_at) == ("delivered", None)


def test_a_move_without_a_time_takes_the_clocks(market):
    _, _, (lead, _, _) = market
    leads_deliver(lead_ids=[lead.pk], via="api")
    before = timezone.now()

    lead_accept(lead=lead, actor=CONTRACTOR)

    lead.refresh_from_db()
    assert before <= lead.accepted_at <= timezone.now()
