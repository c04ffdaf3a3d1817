"""The lead lifecycle: every move of the transition table made through the services, every move it refuses
(wrong state, wrong actor) refused with nothing changed, conversion values, returns within the window and
the monthly rate, cap slots freed by returns and withdrawals, and expiry."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from leads.errors import LeadError, ReturnRefused, TransitionRefused
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.lifecycle import (
    ExpirySummary,
    lead_accept,
    lead_assign,
    lead_contact,
    lead_convert,
    lead_deliver,
    lead_reject,
    lead_return,
    lead_return_approve,
    lead_return_deny,
    lead_withdraw,
    leads_expire,
)
from leads.services.routing import leads_route
from leads.transitions import TRANSITIONS, from_states, transition_check
from tests.leads.factories import owner, scored_home

State, Actor = Lead.State, LeadEvent.Actor
SYSTEM, STAFF, CONTRACTOR = Actor.SYSTEM, Actor.STAFF, Actor.CONTRACTOR
SLA = dt.timedelta(hours=72)
NOTE = "Phone number is disconnected"
RETURN_TEXT = f"Wrong contact information: {NOTE}"
HAND_REASON = "Homeowner called the office"

# How a refusal names each state and, per action, the states it may start from: written out by hand so
# that the messages are checked against what a person reads, not recomputed from the table.
STATE_TEXT = {state: state for state in State.values} | {"generated": "generated (unassigned)"}
VERB = {
    "assign": "assigned",
    "reassign": "reassigned",
    "deliver": "delivered",
    "accept": "accepted",
    "reject": "rejected",
    "contact": "marked contacted",
    "convert": "converted",
    "return": "returned",
    "return_request": "returned",
    "return_approve": "returned",
    "return_deny": "refused a return",
    "expire": "expired",
    "withdraw": "withdrawn",
}
ALLOWED_TEXT = {
    "assign": "generated (unassigned)",
    "reassign": "assigned, delivered",
    "deliver": "assigned",
    "accept": "delivered",
    "reject": "delivered",
    "contact": "accepted",
    "convert": "accepted",
    "return": "delivered, accepted",
    "return_request": "delivered, accepted",
    "return_approve": "delivered, accepted",
    "return_deny": "delivered, accepted",
    "expire": "generated (unassigned), assigned, delivered",
    "withdraw": "generated (unassigned), assigned, delivered, accepted",
}
# (action, from state) -> who may make it, as the refusal lists them.
ACTORS_TEXT = {
    ("assign", "generated"): "staff, system",
    ("reassign", "assigned"): "staff",
    ("reassign", "delivered"): "staff",
    ("deliver", "assigned"): "staff, system",
    ("accept", "delivered"): "contractor, staff",
    ("reject", "delivered"): "contractor, staff",
    ("contact", "accepted"): "contractor, staff",
    ("convert", "accepted"): "contractor, staff",
    ("return", "delivered"): "contractor, staff",
    ("return", "accepted"): "contractor, staff",
    ("return_request", "delivered"): "contractor",
    ("return_request", "accepted"): "contractor",
    ("return_approve", "delivered"): "staff",
    ("return_approve", "accepted"): "staff",
    ("return_deny", "delivered"): "staff",
    ("return_deny", "accepted"): "staff",
    ("expire", "generated"): "system",
    ("expire", "assigned"): "system",
    ("expire", "delivered"): "system",
    ("withdraw", "generated"): "staff, system",
    ("withdraw", "assigned"): "staff",
    ("withdraw", "delivered"): "staff",
    ("withdraw", "accepted"): "staff",
}


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user("dispatcher", password="pw-for-tests-only", is_staff=True)


def lead_in(trade, state, *, contractor, zip_code="80202", pending_return=False, score=90.0) -> Lead:
    """A new lead of `trade` brought to `state` through the services, held by `contractor` once past the
    pool. With `pending_return` it is delivered, its contractor asks for a return that waits for
    approval, and it then moves on to `state`."""
    prop = scored_home(trade, score=score, zip_code=zip_code)
    leads_generate(trade=trade)
    lead = Lead.objects.get(property=prop)
    if state == State.GENERATED:
        return lead
    if not pending_return and state == State.EXPIRED:
        leads_expire(now=lead.expires_at)
        return Lead.objects.get(pk=lead.pk)
    if not pending_return and state == State.WITHDRAWN:
        return lead_withdraw(lead=lead, actor=SYSTEM, reason="Bad parcel data")
    lead = lead_assign(lead=lead, contractor=contractor, user=None, reason=HAND_REASON)
    if state == State.ASSIGNED and not pending_return:
        return lead
    lead = lead_deliver(lead=lead, via="api")
    if pending_return:
        with override_settings(LEAD_RETURN_RATE_PERCENT=0):
            outcome = lead_return(lead=lead, reason="wrong_contact", note=NOTE, actor=CONTRACTOR)
        assert outcome.pending
        lead = outcome.lead
    if state == State.ASSIGNED:  # only with a pending return: handed over to another contractor
        lead = lead_assign(lead=lead, contractor=owner(trade), user=None, reason=HAND_REASON, override=True)
    elif state == State.ACCEPTED:
        lead = lead_accept(lead=lead, actor=CONTRACTOR)
    elif state == State.CONVERTED:
        lead = lead_convert(lead=lead_accept(lead=lead, actor=CONTRACTOR), job_value="18500", actor=CONTRACTOR)
    elif state == State.REJECTED:
        lead = lead_reject(lead=lead, actor=CONTRACTOR, reason="Too far out")
    elif state == State.RETURNED:
        lead = lead_return(lead=lead, reason="duplicate", actor=STAFF).lead
    elif state == State.EXPIRED:
        leads_expire(now=lead.expires_at)
    elif state == State.WITHDRAWN:
        lead = lead_withdraw(lead=lead, actor=STAFF, reason="Bad parcel data")
    lead = Lead.objects.get(pk=lead.pk)
    assert lead.state == state
    return lead


def snapshot(lead: Lead) -> tuple[dict, int, int]:
    """Every column of the lead as stored, its event count and the count of all events."""
    stored = Lead.objects.get(pk=lead.pk)
    columns = {field.attname: getattr(stored, field.attname) for field in Lead._meta.concrete_fields}
    return columns, LeadEvent.objects.filter(lead=lead).count(), LeadEvent.objects.count()


def last_event(lead: Lead) -> LeadEvent:
    return LeadEvent.objects.filter(lead=lead).latest("id")


def event_row(event: LeadEvent) -> tuple:
    return (
        event.action,
        event.from_state,
        event.to_state,
        event.actor,
        event.user_id,
        event.contractor_id,
        event.reason,
        event.override,
    )


# --- The table itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_the_table_allows_its_moves_and_refuses_every_other_state_and_actor_by_name(action):
    for state in State.values:
        for actor in Actor.values:
            lead = Lead(pk=41, state=state)
            move = TRANSITIONS[action].get(state)
            if move is None:
                with pytest.raises(TransitionRefused) as refused:
                    transition_check(lead=lead, action=action, actor=actor)
                assert str(refused.value) == (
                    f"Lead 41 is {STATE_TEXT[state]}; it cannot be {VERB[action]} "
                    f"(only a lead that is {ALLOWED_TEXT[action]})."
                )
            elif actor not in move.actors:
                with pytest.raises(TransitionRefused) as refused:
                    transition_check(lead=lead, action=action, actor=actor)
                assert str(refused.value) == (
                    f"Lead 41 cannot be {VERB[action]} by {actor}; only by {ACTORS_TEXT[action, state]}."
                )
            else:
                assert transition_check(lead=lead, action=action, actor=actor) == move.to_state


def test_the_table_refuses_an_unknown_action():
    with pytest.raises(TransitionRefused) as refused:
        transition_check(lead=Lead(pk=41, state=State.DELIVERED), action="archive", actor=STAFF)
    assert str(refused.value) == "Unknown lead action 'archive'."


def test_the_table_lists_who_may_make_each_move():
    assert {(action, state): ", ".join(sorted(move.actors)) for action, moves in TRANSITIONS.items()
            for state, move in moves.items()} == ACTORS_TEXT  # fmt: skip


# --- Every allowed move, through the services --------------------------------------------------------

ALLOWED = [
    (action, state, actor)
    for action, moves in TRANSITIONS.items()
    for state, move in moves.items()
    for actor in sorted(move.actors)
]


def _perform(action, actor, lead, *, acme, rival, user):
    """Make `action` as `actor`; return what its event must say: (reason, override)."""
    if action == "assign" and actor == SYSTEM:
        leads_route()
        return "", False
    if action == "assign":
        lead_assign(lead=lead, contractor=acme, user=user, reason=HAND_REASON)
        return HAND_REASON, False
    if action == "reassign":
        lead_assign(lead=lead, contractor=rival, user=user, reason="Acme is booked for a month", override=True)
        return "Acme is booked for a month (overrode exclusivity)", True
    if action == "deliver":
        lead_deliver(lead=lead, actor=actor, user=user, via="webhook")
        return "webhook", False
    if action == "accept":
        lead_accept(lead=lead, actor=actor, user=user)
        return "", False
    if action == "reject":
        lead_reject(lead=lead, actor=actor, user=user, reason="Too far out")
        return "Too far out", False
    if action == "contact":
        lead_contact(lead=lead, actor=actor, user=user, note=" Left a voicemail ")
        return "Left a voicemail", False
    if action == "convert":
        lead_convert(lead=lead, job_value="18,500.00", actor=actor, user=user)
        return "job value 18500.00", False
    if action == "return":
        with override_settings(LEAD_RETURN_RATE_PERCENT=100):
            outcome = lead_return(lead=lead, reason="wrong_contact", note=f"  {NOTE} ", actor=actor, user=user)
        assert not outcome.pending
        return RETURN_TEXT, False
    if action == "return_request":
        with override_settings(LEAD_RETURN_RATE_PERCENT=0):
            outcome = lead_return(lead=lead, reason="wrong_contact", note=NOTE, actor=actor, user=user)
        assert outcome.pending
        return f"{RETURN_TEXT} (needs approval: 1 returns of 1 leads this month)", False
    if action == "return_approve":
        lead_return_approve(lead=lead, user=user, note="Checked with the county records")
        return "Checked with the county records", False
    if action == "return_deny":
        lead_return_deny(lead=lead, user=user, note="The owner confirmed the number")
        return "The owner confirmed the number", False
    if action == "expire":
        leads_expire(now=lead.expires_at)  # due at expires_at itself
        return "", False
    if action == "withdraw":
        lead_withdraw(lead=lead, actor=actor, user=user, reason=" Owner asked not to be contacted ")
        return "Owner asked not to be contacted", False
    raise AssertionError(action)


@pytest.mark.parametrize(
    ("action", "from_state", "actor"), ALLOWED, ids=[f"{action}-{state}-{actor}" for action, state, actor in ALLOWED]
)
def test_every_allowed_move_changes_the_state_and_writes_its_event(roofing, staff_user, action, from_state, actor):
    acme, rival = owner(roofing, "80202"), owner(roofing)
    lead = lead_in(roofing, from_state, contractor=acme, pending_return=action in ("return_approve", "return_deny"))
    before = Lead.objects.get(pk=lead.pk)
    events = LeadEvent.objects.filter(lead=lead).count()
    user = staff_user if actor == STAFF else None
    started = timezone.now()

    reason, override = _perform(action, actor, lead, acme=acme, rival=rival, user=user)

    lead.refresh_from_db()
    to_state = TRANSITIONS[action][from_state].to_state
    holder = (
        rival.pk
        if action == "reassign"
        else (None if from_state == State.GENERATED and action != "assign" else acme.pk)
    )
    assert (lead.state, lead.contractor_id) == (to_state, holder)
    assert LeadEvent.objects.filter(lead=lead).count() == events + 1
    event = last_event(lead)
    assert event_row(event) == (action, from_state, to_state, actor, user and user.pk, holder, reason, override)
    at = event.at
    if action != "expire":
        assert started <= at <= timezone.now()
    # Final states are closed when they are reached; open ones are not closed.
    assert lead.closed_at == (None if to_state in Lead.OPEN else at)
    if action in ("assign", "reassign"):
        assert (lead.assigned_at, lead.delivered_at, lead.expires_at) == (at, None, at + SLA)
    elif action == "deliver":
        assert (lead.assigned_at, lead.delivered_at, lead.expires_at) == (before.assigned_at, at, before.expires_at)
    elif action == "accept":
        assert (lead.delivered_at, lead.accepted_at, lead.expires_at) == (before.delivered_at, at, None)
    elif action == "reject":
        assert (lead.accepted_at, lead.expires_at) == (None, None)
    elif action == "contact":
        assert (lead.accepted_at, lead.contacted_at, lead.expires_at) == (before.accepted_at, at, None)
    elif action == "convert":
        assert (lead.accepted_at, lead.converted_at, lead.job_value) == (before.accepted_at, at, Decimal("18500.00"))
    elif action == "return":
        assert (lead.return_reason, lead.return_note, lead.return_requested_at, lead.expires_at) == (
            "wrong_contact",
            NOTE,
            at,
            None,
        )
        assert not lead.return_pending
    elif action == "return_request":
        assert (lead.return_reason, lead.return_note, lead.return_requested_at, lead.expires_at) == (
            "wrong_contact",
            NOTE,
            at,
            before.expires_at,
        )
        assert lead.return_pending
    elif action == "return_approve":
        assert (lead.return_reason, lead.return_requested_at, lead.expires_at) == (
            "wrong_contact",
            before.return_requested_at,
            None,
        )
        assert not lead.return_pending
    elif action == "return_deny":
        assert (lead.return_reason, lead.return_note, lead.return_requested_at) == ("", "", None)
        assert not lead.return_pending
    elif action == "expire":
        assert at == before.expires_at
    elif action == "withdraw":
        assert lead.expires_at is None
    if action not in ("accept", "convert"):
        assert lead.accepted_at == before.accepted_at
    if action != "convert":
        assert (lead.converted_at, lead.job_value) == (None, None)
    if action != "contact":
        assert lead.contacted_at == before.contacted_at


# --- Every refused move, through the services: nothing changes ---------------------------------------


def _refusable(action, lead, acme, user):
    """The service call that makes `action` as an actor allowed to make it."""
    calls = {
        "reassign": lambda: lead_assign(lead=lead, contractor=acme, user=user, reason=HAND_REASON),
        "deliver": lambda: lead_deliver(lead=lead, actor=SYSTEM, via="api"),
        "accept": lambda: lead_accept(lead=lead, actor=CONTRACTOR),
        "reject": lambda: lead_reject(lead=lead, actor=CONTRACTOR, reason="Too far out"),
        "contact": lambda: lead_contact(lead=lead, actor=CONTRACTOR, note="No answer"),
        "convert": lambda: lead_convert(lead=lead, job_value="18,500.00", actor=CONTRACTOR),
        "return": lambda: lead_return(lead=lead, reason="duplicate", actor=STAFF, user=user),
        "return_request": lambda: lead_return(lead=lead, reason="duplicate", actor=CONTRACTOR),
        "withdraw": lambda: lead_withdraw(lead=lead, actor=STAFF, user=user, reason="Bad parcel data"),
    }
    return calls[action]


# A staff assignment of a lead outside the pool is a reassignment: refused from every state but the pool's
# and reassign's.
REFUSED_BY_STATE = [
    (action, state)
    for action in (
        "reassign",
        "deliver",
        "accept",
        "reject",
        "contact",
        "convert",
        "return",
        "return_request",
        "withdraw",
    )
    for state in State.values
    if state not in from_states(action) and not (action == "reassign" and state == State.GENERATED)
]


@pytest.mark.parametrize(("action", "state"), REFUSED_BY_STATE, ids=[f"{a}-from-{s}" for a, s in REFUSED_BY_STATE])
def test_a_move_from_a_state_the_table_does_not_allow_is_refused_naming_the_state(roofing, staff_user, action, state):
    acme = owner(roofing, "80202")
    lead = lead_in(roofing, state, contractor=acme)
    before = snapshot(lead)

    with pytest.raises(TransitionRefused) as refused:
        _refusable(action, lead, acme, staff_user)()

    allowed = ALLOWED_TEXT[action]
    assert str(refused.value) == (
        f"Lead {lead.pk} is {STATE_TEXT[state]}; it cannot be {VERB[action]} (only a lead that is {allowed})."
    )
    assert snapshot(lead) == before


# Approving or refusing a return needs a return waiting: these states can carry one (asked for when the
# lead was delivered, before it moved on).
PENDING_ELSEWHERE = [
    (action, state)
    for action in ("return_approve", "return_deny")
    for state in (State.ASSIGNED, State.CONVERTED, State.REJECTED, State.EXPIRED, State.WITHDRAWN)
]


@pytest.mark.parametrize(("action", "state"), PENDING_ELSEWHERE, ids=[f"{a}-from-{s}" for a, s in PENDING_ELSEWHERE])
def test_deciding_a_waiting_return_of_a_lead_that_moved_on_is_refused_naming_the_state(
    roofing, staff_user, action, state
):
    acme = owner(roofing, "80202")
    lead = lead_in(roofing, state, contractor=acme, pending_return=True)
    if state != State.ASSIGNED:  # a reassignment clears the previous contractor's request
        assert lead.return_requested_at is not None
    before = snapshot(lead)

    with pytest.raises(TransitionRefused) as refused:
        if action == "return_approve":
            lead_return_approve(lead=lead, user=staff_user, note="Checked")
        else:
            lead_return_deny(lead=lead, user=staff_user, note="The owner confirmed the number")

    assert str(refused.value) == (
        f"Lead {lead.pk} is {STATE_TEXT[state]}; it cannot be {VERB[action]} (only a lead that is delivered, accepted)."
    )
    assert snapshot(lead) == before


NO_RETURN_WAITING = [
    (action, state) for action in ("return_approve", "return_deny") for state in (State.DELIVERED, State.ACCEPTED)
]


@pytest.mark.parametrize(("action", "state"), NO_RETURN_WAITING, ids=[f"{a}-{s}" for a, s in NO_RETURN_WAITING])
def test_deciding_a_return_nobody_asked_for_is_refused(roofing, staff_user, action, state):
    acme = owner(roofing, "80202")
    lead = lead_in(roofing, state, contractor=acme)
    before = snapshot(lead)

    with pytest.raises(ReturnRefused) as refused:
        if action == "return_approve":
            lead_return_approve(lead=lead, user=staff_user, note="Checked")
        else:
            lead_return_deny(lead=lead, user=staff_user, note="The owner confirmed the number")

    assert str(refused.value) == f"Lead {lead.pk} has no return waiting for approval."
    assert snapshot(lead) == before


REFUSED_BY_ACTOR = [
    ("deliver", State.ASSIGNED, CONTRACTOR, "delivered", "staff, system"),
    ("accept", State.DELIVERED, SYSTEM, "accepted", "contractor, staff"),
    ("reject", State.DELIVERED, SYSTEM, "rejected", "contractor, staff"),
    ("convert", State.ACCEPTED, SYSTEM, "converted", "contractor, staff"),
    ("return", State.DELIVERED, SYSTEM, "returned", "contractor"),
    ("return", State.ACCEPTED, SYSTEM, "returned", "contractor"),
    ("withdraw", State.GENERATED, CONTRACTOR, "withdrawn", "staff, system"),
    ("withdraw", State.ASSIGNED, CONTRACTOR, "withdrawn", "staff"),
    ("withdraw", State.DELIVERED, CONTRACTOR, "withdrawn", "staff"),
    ("withdraw", State.ACCEPTED, CONTRACTOR, "withdrawn", "staff"),
    ("withdraw", State.ASSIGNED, SYSTEM, "withdrawn", "staff"),
    ("withdraw", State.DELIVERED, SYSTEM, "withdrawn", "staff"),
    ("withdraw", State.ACCEPTED, SYSTEM, "withdrawn", "staff"),
]


@pytest.mark.parametrize(
    ("action", "state", "actor", "verb", "who"),
    REFUSED_BY_ACTOR,
    ids=[f"{a}-{s}-by-{actor}" for a, s, actor, *_ in REFUSED_BY_ACTOR],
)
def test_a_move_by_an_actor_the_table_does_not_allow_is_refused(roofing, action, state, actor, verb, who):
    acme = owner(roofing, "80202")
    lead = lead_in(roofing, state, contractor=acme)
    before = snapshot(lead)
    calls = {
        "deliver": lambda: lead_deliver(lead=lead, actor=actor),
        "accept": lambda: lead_accept(lead=lead, actor=actor),
        "reject": lambda: lead_reject(lead=lead, actor=actor),
        "convert": lambda: lead_convert(lead=lead, job_value="100", actor=actor),
        "return": lambda: lead_return(lead=lead, reason="duplicate", actor=actor),
        "withdraw": lambda: lead_withdraw(lead=lead, actor=actor, reason="Bad parcel data"),
    }

    with pytest.raises(TransitionRefused) as refused:
        calls[action]()

    assert str(refused.value) == f"Lead {lead.pk} cannot be {verb} by {actor}; only by {who}."
    assert snapshot(lead) == before


def test_withdrawing_without_a_reason_is_refused(roofing, staff_user):
    lead = lead_in(roofing, State.ASSIGNED, contractor=owner(roofing, "80202"))
    before = snapshot(lead)

    with pytest.raises(LeadError) as refused:
        lead_withdraw(lead=lead, actor=STAFF, user=staff_user, reason="   ")

    assert str(refused.value) == "Say why the lead is withdrawn."
    assert snapshot(lead) == before


def test_refusing_a_return_without_a_note_is_refused(roofing, staff_user):
    lead = lead_in(roofing, State.DELIVERED, contractor=owner(roofing, "80202"), pending_return=True)
    before = snapshot(lead)

    with pytest.raises(LeadError) as refused:
        lead_return_deny(lead=lead, user=staff_user, note=" ")

    assert str(refused.value) == "Say why the return is refused; the contractor sees it."
    assert snapshot(lead) == before


# --- Conversion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entered", "stored"),
    [
        ("18,500.00", "18500.00"),
        ("$18500", "18500.00"),
        (" $1,234.5 ", "1234.50"),
        (0, "0.00"),
        (Decimal("99.999"), "100.00"),
    ],
)
def test_conversion_stores_the_job_value_as_an_amount(roofing, entered, stored):
    lead = lead_in(roofing, State.ACCEPTED, contractor=owner(roofing, "80202"))

    lead_convert(lead=lead, job_value=entered, actor=CONTRACTOR)

    lead.refresh_from_db()
    assert (lead.state, lead.job_value) == ("converted", Decimal(stored))
    assert last_event(lead).reason == f"job value {stored}"


@pytest.mark.parametrize(
    ("entered", "message"),
    [
        ("abc", "Job value 'abc' is not an amount such as 18500.00."),
        ("", "Job value '' is not an amount such as 18500.00."),
        ("-5", "Job value '-5' must be between 0 and 9,999,999,999.99."),
        ("$-18,500", "Job value '$-18,500' must be between 0 and 9,999,999,999.99."),
        ("NaN", "Job value 'NaN' must be between 0 and 9,999,999,999.99."),
        ("Infinity", "Job value 'Infinity' must be between 0 and 9,999,999,999.99."),
        ("10000000000", "Job value '10000000000' must be between 0 and 9,999,999,999.99."),
    ],
)
def test_conversion_with_a_job_value_that_is_not_an_amount_is_refused(roofing, entered, message):
    lead = lead_in(roofing, State.ACCEPTED, contractor=owner(roofing, "80202"))
    before = snapshot(lead)

    with pytest.raises(LeadError) as refused:
        lead_convert(lead=lead, job_value=entered, actor=CONTRACTOR)

    assert str(refused.value) == message
    assert snapshot(lead) == before


# --- Returns -------------------------------------------------------------------------------------


@pytest.fixture
def delivered(roofing, settings):
    """A lead delivered to Acme now, with returns within a week and no rate limit to speak of."""
    settings.LEAD_RETURN_WINDOW_DAYS = 7
    settings.LEAD_RETURN_RATE_PERCENT = 100
    return lead_in(roofing, State.DELIVERED, contractor=owner(roofing, "80202"))


def test_a_return_within_the_window_is_taken(delivered):
    Lead.objects.filter(pk=delivered.pk).update(delivered_at=timezone.now() - dt.timedelta(days=7, minutes=-1))

    outcome = lead_return(lead=delivered, reason="not_owner")

    assert outcome.pending is False
    lead = Lead.objects.get(pk=delivered.pk)
    assert (lead.state, lead.return_reason, lead.return_note) == ("returned", "not_owner", "")
    assert event_row(last_event(lead)) == (
        "return", "delivered", "returned", "contractor", None, lead.contractor_id, "Not the owner", False
    )  # fmt: skip


def test_a_return_after_the_window_is_refused_and_nothing_changes(delivered):
    delivered_at = timezone.now() - dt.timedelta(days=7, minutes=1)
    Lead.objects.filter(pk=delivered.pk).update(delivered_at=delivered_at)
    before = snapshot(delivered)

    with pytest.raises(ReturnRefused) as refused:
        lead_return(lead=delivered, reason="not_owner")

    assert str(refused.value) == (
        f"Lead {delivered.pk} was delivered on {delivered_at.astimezone(dt.UTC):%Y-%m-%d}; returns are taken for "
        "7 days after delivery."
    )
    assert snapshot(delivered) == before


def test_staff_are_held_to_the_return_window_too(delivered, staff_user):
    Lead.objects.filter(pk=delivered.pk).update(delivered_at=timezone.now() - dt.timedelta(days=8))
    before = snapshot(delivered)

    with pytest.raises(ReturnRefused):
        lead_return(lead=delivered, reason="duplicate", actor=STAFF, user=staff_user)

    assert snapshot(delivered) == before


def test_an_accepted_lead_is_returnable_within_the_window_of_its_delivery(delivered):
    lead_accept(lead=delivered, actor=CONTRACTOR)
    Lead.objects.filter(pk=delivered.pk).update(delivered_at=timezone.now() - dt.timedelta(days=8))
    before = snapshot(delivered)

    with pytest.raises(ReturnRefused):
        lead_return(lead=delivered, reason="already_done")

    assert snapshot(delivered) == before


@pytest.mark.parametrize(
    ("reason", "note", "message"),
    [
        (
            "too_expensive",
            "",
            (
                "Return reason 'too_expensive' is not one of: wrong_contact, not_owner, already_done, out_of_area, "
                "duplicate, not_interested, other."
            ),
        ),
        (
            "",
            "",
            (
                "Return reason '' is not one of: wrong_contact, not_owner, already_done, out_of_area, duplicate, "
                "not_interested, other."
            ),
        ),
        ("other", "", 'A return for "other" needs a note saying what was wrong.'),
        ("other", "   ", 'A return for "other" needs a note saying what was wrong.'),
    ],
)
def test_a_return_needs_a_listed_reason_and_a_note_for_other(delivered, reason, note, message):
    before = snapshot(delivered)

    with pytest.raises(ReturnRefused) as refused:
        lead_return(lead=delivered, reason=reason, note=note)

    assert str(refused.value) == message
    assert snapshot(delivered) == before


def test_a_return_for_other_keeps_its_note(delivered):
    lead_return(lead=delivered, reason="other", note="  Commercial building, not a home ")

    lead = Lead.objects.get(pk=delivered.pk)
    assert (lead.state, lead.return_reason, lead.return_note) == (
        "returned",
        "other",
        "Commercial building, not a home",
    )
    assert last_event(lead).reason == "Other (see note): Commercial building, not a home"


def test_returns_above_the_monthly_rate_wait_for_staff_who_approve_or_refuse_them(roofing, settings, staff_user):
    settings.LEAD_RETURN_RATE_PERCENT = 15
    settings.LEAD_RETURN_WINDOW_DAYS = 7
    acme = owner(roofing, "80202")
    for index in range(10):
        scored_home(roofing, score=90 - index, zip_code="80202")
    leads_generate(trade=roofing)
    assert leads_route().by_contractor == {acme.pk: 10}
    leads = list(Lead.objects.filter(contractor=acme).order_by("-score"))
    for lead in leads:
        lead_deliver(lead=lead)

    # 1 return of 10 leads is 10%: taken at once.
    first = lead_return(lead=leads[0], reason="duplicate")
    assert (first.pending, first.lead.state, first.lead.return_pending) == (False, "returned", False)

    # A second would be 20%: it waits, and the lead stays delivered.
    events = LeadEvent.objects.count()
    second = lead_return(lead=leads[1], reason="not_owner")
    lead = Lead.objects.get(pk=leads[1].pk)
    assert (second.pending, lead.state, lead.return_pending, lead.return_reason) == (
        True,
        "delivered",
        True,
        "not_owner",
    )
    assert lead.closed_at is None
    assert LeadEvent.objects.count() == events + 1
    assert event_row(last_event(lead)) == (
        "return_request", "delivered", "delivered", "contractor", None, acme.pk,
        "Not the owner (needs approval: 2 returns of 10 leads this month)", False,
    )  # fmt: skip

    # Asking again while it waits is refused.
    before = snapshot(lead)
    with pytest.raises(ReturnRefused) as refused:
        lead_return(lead=lead, reason="not_owner")
    assert str(refused.value) == f"Lead {lead.pk} already has a return waiting for approval."
    assert snapshot(lead) == before

    # Staff approve it: returned.
    lead_return_approve(lead=lead, user=staff_user, note="Deed shows another owner")
    lead.refresh_from_db()
    assert (lead.state, lead.return_pending, lead.closed_at) == ("returned", False, last_event(lead).at)
    assert event_row(last_event(lead)) == (
        "return_approve", "delivered", "returned", "staff", staff_user.pk, acme.pk, "Deed shows another owner", False
    )  # fmt: skip

    # A third waits too, and staff refuse it: the request is cleared, the lead stays with Acme.
    third = lead_return(lead=leads[2], reason="already_done")
    assert third.pending is True
    lead_return_deny(lead=leads[2], user=staff_user, note="The roof is original")
    lead = Lead.objects.get(pk=leads[2].pk)
    assert (lead.state, lead.contractor_id, lead.return_pending) == ("delivered", acme.pk, False)
    assert (lead.return_reason, lead.return_note, lead.return_requested_at) == ("", "", None)
    assert event_row(last_event(lead)) == (
        "return_deny", "delivered", "delivered", "staff", staff_user.pk, acme.pk, "The roof is original", False
    )  # fmt: skip
    assert list(Lead.objects.filter(contractor=acme).values_list("state", flat=True).order_by("-score")) == [
        "returned",
        "returned",
        *["delivered"] * 8,
    ]


def test_staff_returning_a_lead_are_not_held_to_the_rate(roofing, settings, staff_user):
    settings.LEAD_RETURN_RATE_PERCENT = 0
    lead = lead_in(roofing, State.DELIVERED, contractor=owner(roofing, "80202"))

    outcome = lead_return(lead=lead, reason="duplicate", actor=STAFF, user=staff_user)

    assert (outcome.pending, outcome.lead.state) == (False, "returned")


# --- Cap slots -----------------------------------------------------------------------------------


@pytest.fixture
def full(roofing, settings):
    """Acme at its daily cap of 1 with a delivered lead, and a second lead waiting in the pool."""
    settings.LEAD_RETURN_RATE_PERCENT = 100
    acme = owner(roofing, "80202", daily_cap=1)
    scored_home(roofing, score=90, zip_code="80202")
    scored_home(roofing, score=80, zip_code="80202")
    leads_generate(trade=roofing)
    summary = leads_route()
    assert (summary.assigned, summary.waiting) == (1, 1)
    held = Lead.objects.get(contractor=acme)
    lead_deliver(lead=held)
    waiting = Lead.objects.get(state="generated")
    return acme, held, waiting


def assert_given_to(lead: Lead, acme) -> None:
    lead.refresh_from_db()
    assert (lead.state, lead.contractor_id) == ("assigned", acme.pk)
    assert event_row(last_event(lead)) == ("assign", "generated", "assigned", "system", None, acme.pk, "", False)


def test_a_returned_lead_frees_its_cap_slot_for_the_next_pool_lead(full):
    acme, held, waiting = full

    lead_return(lead=held, reason="wrong_contact", note=NOTE)

    assert_given_to(waiting, acme)


def test_a_withdrawn_lead_frees_its_cap_slot_for_the_next_pool_lead(full, staff_user):
    acme, held, waiting = full

    lead_withdraw(lead=held, actor=STAFF, user=staff_user, reason="Owner asked not to be contacted")

    assert_given_to(waiting, acme)


def test_a_return_waiting_for_approval_keeps_the_slot_until_staff_approve_it(full, settings, staff_user):
    acme, held, waiting = full
    settings.LEAD_RETURN_RATE_PERCENT = 0

    assert lead_return(lead=held, reason="duplicate").pending is True
    assert leads_route().assigned == 0
    waiting.refresh_from_db()
    assert (waiting.state, waiting.contractor_id) == ("generated", None)

    lead_return_approve(lead=held, user=staff_user)

    assert_given_to(waiting, acme)


def test_a_rejected_lead_keeps_its_cap_slot(full):
    _acme, held, waiting = full

    lead_reject(lead=held, actor=CONTRACTOR, reason="Too far out")

    assert leads_route().assigned == 0
    waiting.refresh_from_db()
    assert (waiting.state, waiting.contractor_id) == ("generated", None)


# --- Expiry --------------------------------------------------------------------------------------


def test_expiry_ends_pool_leads_past_their_time_and_unaccepted_ones_past_the_sla(roofing, settings):
    settings.LEAD_POOL_DAYS, settings.LEAD_ACCEPT_SLA_HOURS = 14, 72
    acme = owner(roofing, "80202")
    start = timezone.now()
    in_pool = lead_in(roofing, State.GENERATED, contractor=acme, zip_code="80203")
    assigned = lead_in(roofing, State.ASSIGNED, contractor=acme)
    delivered = lead_in(roofing, State.DELIVERED, contractor=acme)
    accepted = lead_in(roofing, State.ACCEPTED, contractor=acme)
    # Closed leads are never expired, even with a due date left in the past.
    closed = [lead_in(roofing, state, contractor=acme) for state in ("converted", "rejected", "returned", "withdrawn")]
    Lead.objects.filter(pk__in=[accepted.pk, *(lead.pk for lead in closed)]).update(expires_at=start)
    later = timezone.now() + dt.timedelta(days=1)
    young = lead_in(roofing, State.GENERATED, contractor=acme, zip_code="80203")
    Lead.objects.filter(pk=young.pk).update(expires_at=later + dt.timedelta(days=14))
    untouched = [snapshot(lead)[:2] for lead in (accepted, *closed, young)]

    due = later + dt.timedelta(days=14)
    summary = leads_expire(now=due - dt.timedelta(microseconds=1))

    assert summary == ExpirySummary(unassigned=1, unaccepted=2)
    assert str(summary) == "1 unassigned and 2 unaccepted leads expired"
    for lead, from_state, holder in ((in_pool, "generated", None), (assigned, "assigned", acme.pk),
                                     (delivered, "delivered", acme.pk)):  # fmt: skip
        lead.refresh_from_db()
        expired_at = due - dt.timedelta(microseconds=1)
        assert (lead.state, lead.closed_at, lead.contractor_id) == ("expired", expired_at, holder)
        assert list(LeadEvent.objects.filter(lead=lead, action="expire").values_list(
            "from_state", "to_state", "actor", "contractor_id", "reason", "at")) == [
            (from_state, "expired", "system", holder, "", expired_at)
        ]  # fmt: skip
    assert [snapshot(lead)[:2] for lead in (accepted, *closed, young)] == untouched

    # Run again: nothing more is due.
    events = LeadEvent.objects.count()
    assert leads_expire(now=due - dt.timedelta(microseconds=1)) == ExpirySummary(unassigned=0, unaccepted=0)
    assert LeadEvent.objects.count() == events

    # The young pool lead is due at its expires_at exactly.
    assert leads_expire(now=due) == ExpirySummary(unassigned=1, unaccepted=0)
    young.refresh_from_db()
    assert young.state == "expired"


def test_an_assigned_lead_expires_at_its_sla_not_before(roofing, settings):
    settings.LEAD_ACCEPT_SLA_HOURS = 72
    lead = lead_in(roofing, State.ASSIGNED, contractor=owner(roofing, "80202"))
    assert lead.expires_at == lead.assigned_at + SLA
    before = snapshot(lead)

    assert leads_expire(now=lead.expires_at - dt.timedelta(seconds=1)) == ExpirySummary(0, 0)
    assert snapshot(lead) == before

    assert leads_expire(now=lead.expires_at) == ExpirySummary(0, 1)


# --- A waiting return after the lead moves on ----------------------------------------------------


def test_a_lead_handed_to_another_contractor_does_not_carry_the_return_the_first_one_asked_for(roofing, staff_user):
    acme, rival = owner(roofing, "80202"), owner(roofing)
    lead = lead_in(roofing, State.DELIVERED, contractor=acme, pending_return=True)

    lead_assign(lead=lead, contractor=rival, user=staff_user, reason="Acme is booked for a month", override=True)

    lead.refresh_from_db()
    assert (lead.state, lead.contractor_id, lead.return_pending) == ("assigned", rival.pk, False)
    assert (lead.return_reason, lead.return_note, lead.return_requested_at) == ("", "", None)


@pytest.mark.parametrize("state", [State.CONVERTED, State.REJECTED, State.EXPIRED, State.WITHDRAWN])
def test_a_lead_closed_while_its_return_waited_has_no_return_waiting(roofing, state):
    lead = lead_in(roofing, state, contractor=owner(roofing, "80202"), pending_return=True)

    assert lead.return_pending is False
