"""Every move of a single lead, and expiry. Each one locks the lead, asks leads.transitions whether the
move is allowed from its current state for this actor, writes the change and its LeadEvent in one
transaction. A refused move raises before anything is written.

Moves that give a contractor a lead (assign, reassign) or count its returns lock the contractor row
first, then the lead: the lock order of routing, so they never deadlock with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from contractors.models import Contractor, ContractorNotice
from contractors.selectors import contractor_serves
from contractors.services.notices import contractor_event_record
from core.cache import usage_bump
from leads.errors import (
    CapReached,
    ContractorNotReceiving,
    CreditLimitReached,
    LeadError,
    NotTerritoryOwner,
    ReturnRefused,
)
from leads.models import Lead, LeadEvent
from leads.pricing import lead_price
from leads.selectors import contractor_cap_usage
from leads.services.billing import lead_charge, lead_credit, money_rooms
from leads.services.suppressions import leads_on_do_not_contact
from leads.transitions import from_states, transition_check
from territories.models import Territory

State, Actor = Lead.State, LeadEvent.Actor


def _lock(lead: Lead) -> Lead:
    return Lead.objects.select_for_update().get(pk=lead.pk)


def _record(
    lead: Lead,
    *,
    action: str,
    from_state: str,
    actor: str,
    at: dt.datetime,
    user: User | None = None,
    reason: str = "",
    override: bool = False,
    fields: tuple[str, ...] = (),
) -> Lead:
    """Save the lead's changed `fields` (its state always) and write the event."""
    lead.save(update_fields=sorted({"state", *fields}))
    LeadEvent.objects.create(
        lead=lead,
        action=action,
        from_state=from_state,
        to_state=lead.state,
        actor=actor,
        user=user if user is not None and user.is_authenticated else None,
        contractor_id=lead.contractor_id,
        reason=reason[:300],
        override=override,
        at=at,
    )
    return lead


def _owner_of(lead: Lead) -> int | None:
    return (
        Territory.objects.active()
        .filter(trade_id=lead.trade_id, zip_code_id=lead.zip_code)
        .values_list("contractor_id", flat=True)
        .first()
    )


@transaction.atomic
def lead_assign(
    *,
    lead: Lead,
    contractor: Contractor,
    user: User | None,
    reason: str,
    override: bool = False,
    comp: bool = False,
) -> Lead:
    """Staff give `lead` (in the pool, or assigned/delivered to another contractor: a reassignment) to
    `contractor`, at the price in force (leads.pricing), or free when `comp`. The contractor must own the
    lead's ZIP for its trade, have cap room and, prepaid, the balance for the price, unless staff
    override; the event records what was overridden. It must always serve the trade and be active. A
    reassignment gives the previous contractor's charge back."""
    if not reason.strip():
        raise LeadError("Say why the lead is assigned by hand.")
    contractor = Contractor.objects.select_for_update().get(pk=contractor.pk)
    lead = _lock(lead)
    action = "assign" if lead.state == State.GENERATED else "reassign"
    to_state = transition_check(lead=lead, action=action, actor=Actor.STAFF)
    if lead.contractor_id == contractor.pk:
        raise LeadError(f"Lead {lead.pk} is already with {contractor}.")
    if contractor.status != Contractor.Status.ACTIVE:
        raise ContractorNotReceiving(f"{contractor} is {contractor.get_status_display().lower()}; it takes no leads.")
    if not contractor_serves(contractor=contractor, trade_id=lead.trade_id):
        raise ContractorNotReceiving(f"{contractor} does not serve {lead.trade}.")
    now = timezone.now()
    overridden = []
    owner_id = _owner_of(lead)
    if owner_id != contractor.pk:
        if not override:
            owner = Contractor.objects.filter(pk=owner_id).first() if owner_id is not None else None
            held = f"owned by {owner}" if owner else "owned by nobody"
            raise NotTerritoryOwner(
                f"{lead.zip_code} {lead.trade} is {held}; {contractor} may have this lead only with an override."
            )
        overridden.append("exclusivity")
    room = contractor_cap_usage(contractor_ids=[contractor.pk], now=now)[contractor.pk].room
    if room is not None and room <= 0:
        if not override:
            raise CapReached(f"{contractor} has reached its lead cap; assign with an override to exceed it.")
        overridden.append("caps")
    price = Decimal(0) if comp else lead_price(lead_id=lead.pk, now=now)
    room_left = money_rooms(contractors=[contractor])[contractor.pk]
    if price is not None and room_left is not None and price > room_left:
        if not override:
            raise CreditLimitReached(
                f"{contractor} is prepaid and has {room_left} {settings.CURRENCY} of credit left; this lead costs "
                f"{price}. Record its payment first, or assign with an override."
            )
        overridden.append("credit limit")
    if action == "reassign":
        lead_credit(lead=lead, now=now, note=f"Reassigned to {contractor}")
    from_state = lead.state
    usage_bump([lead.contractor_id, contractor.pk])  # a reassignment moves the lead out of one count into another
    lead.state, lead.contractor, lead.assigned_at, lead.price = to_state, contractor, now, price
    lead.delivered_at = None
    lead.expires_at = now + dt.timedelta(hours=settings.LEAD_ACCEPT_SLA_HOURS)
    # A return the previous contractor asked for is not the new one's.
    lead.return_reason, lead.return_note, lead.return_requested_at = "", "", None
    note = f"{reason.strip()} (overrode {' and '.join(overridden)})" if overridden else reason.strip()
    if comp:
        note += " (free of charge)"
    lead = _record(
        lead,
        action=action,
        from_state=from_state,
        actor=Actor.STAFF,
        at=now,
        user=user,
        reason=note,
        override=bool(overridden),
        fields=(
            "contractor",
            "assigned_at",
            "delivered_at",
            "expires_at",
            "return_reason",
            "return_note",
            "return_requested_at",
            "price",
        ),
    )
    lead_charge(lead=lead, now=now)
    return lead


def _move(
    lead: Lead,
    *,
    action: str,
    actor: str,
    user: User | None = None,
    reason: str = "",
    update: Callable[[Lead, dt.datetime], Iterable[str]] | None = None,
    now: dt.datetime | None = None,
) -> Lead:
    """The common shape of a move: lock, check, change (`update(lead, now)` returns changed fields), record.
    `now` is the move's time (default the clock's): a replayed or simulated day passes its own."""
    lead = _lock(lead)
    to_state = transition_check(lead=lead, action=action, actor=actor)
    now = now or timezone.now()
    fields = tuple(update(lead, now)) if update else ()
    from_state, lead.state = lead.state, to_state
    if to_state not in Lead.OPEN and lead.closed_at is None:
        lead.closed_at = now
        fields += ("closed_at",)
    return _record(
        lead, action=action, from_state=from_state, actor=actor, at=now, user=user, reason=reason, fields=fields
    )


@transaction.atomic
def lead_deliver(
    *, lead: Lead, actor: str = Actor.SYSTEM, user: User | None = None, via: str = "", now: dt.datetime | None = None
) -> Lead:
    """The lead reached its contractor (API, webhook or email: `via`)."""

    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        lead.delivered_at = now
        return ("delivered_at",)

    return _move(lead, action="deliver", actor=actor, user=user, reason=via, update=update, now=now)


@transaction.atomic
def leads_deliver(*, lead_ids: list[int], via: str, now: dt.datetime | None = None) -> set[int]:
    """Mark these leads delivered (their contractor has now seen them: an API read, a webhook, an email)
    where the table allows it (assigned), with their events, in one statement; returns the ids moved."""
    if not lead_ids:
        return set()
    now = now or timezone.now()
    (from_state,) = from_states("deliver")  # the table delivers from one state
    lead, event = Lead._meta.db_table, LeadEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH moved AS (
                UPDATE {lead} SET state = 'delivered', delivered_at = %(now)s
                WHERE id = ANY(%(ids)s) AND state = %(from)s
                RETURNING id, contractor_id
            ),
            logged AS (
                INSERT INTO {event} (lead_id, action, from_state, to_state, actor, contractor_id, reason, override, at)
                SELECT id, 'deliver', %(from)s, 'delivered', 'system', contractor_id, %(via)s, false, %(now)s
                FROM moved
            )
            SELECT id FROM moved
            """,
            {"ids": sorted(lead_ids), "from": str(from_state), "now": now, "via": via},
        )
        return {row[0] for row in cursor.fetchall()}


@transaction.atomic
def lead_accept(*, lead: Lead, actor: str, user: User | None = None, now: dt.datetime | None = None) -> Lead:
    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        lead.accepted_at, lead.expires_at = now, None
        return ("accepted_at", "expires_at")

    return _move(lead, action="accept", actor=actor, user=user, update=update, now=now)


@transaction.atomic
def lead_reject(
    *, lead: Lead, actor: str, user: User | None = None, reason: str = "", now: dt.datetime | None = None
) -> Lead:
    """The contractor declines the lead. Unlike a return it keeps its cap slot: it was a good lead."""

    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        lead.expires_at = None
        return ("expires_at",)

    return _move(lead, action="reject", actor=actor, user=user, reason=reason, update=update, now=now)


@transaction.atomic
def lead_contact(
    *, lead: Lead, actor: str, user: User | None = None, note: str = "", now: dt.datetime | None = None
) -> Lead:
    """The contractor reached (or tried to reach) the homeowner of an accepted lead. Each contact is an
    event with its note; `contacted_at` is the last one. The lead stays accepted."""

    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        lead.contacted_at = now
        return ("contacted_at",)

    return _move(lead, action="contact", actor=actor, user=user, reason=note.strip(), update=update, now=now)


def job_value_parse(value: object) -> Decimal:
    try:
        amount = Decimal(str(value).replace(",", "").replace("$", "").strip())
    except (InvalidOperation, ValueError):
        raise LeadError(f"Job value {value!r} is not an amount such as 18500.00.") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise LeadError(f"Job value {value!r} must be between 0 and 9,999,999,999.99.")
    return amount.quantize(Decimal("0.01"))


@transaction.atomic
def lead_convert(
    *, lead: Lead, job_value: object, actor: str, user: User | None = None, now: dt.datetime | None = None
) -> Lead:
    """The contractor sold the job: its value is kept for reporting."""
    amount = job_value_parse(job_value)

    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        lead.converted_at, lead.job_value = now, amount
        return ("converted_at", "job_value")

    return _move(lead, action="convert", actor=actor, user=user, reason=f"job value {amount}", update=update, now=now)


def _slot_freed(lead: Lead, now: dt.datetime | None = None) -> Lead:
    """After a move that freed the cap slot of the lead's contractor has committed: the pool's next lead
    for that contractor, if any, goes to it now."""
    from leads.services.routing import leads_route

    if lead.contractor_id is not None and lead.state in Lead.CAP_FREE:
        leads_route(contractor_ids=[lead.contractor_id], now=now)
    return lead


def lead_withdraw(
    *, lead: Lead, actor: str, user: User | None = None, reason: str, now: dt.datetime | None = None
) -> Lead:
    """Take a lead back (do-not-contact, bad data). A withdrawn lead frees its cap slot. A lead its
    contractor held (assigned, delivered, accepted) is told to it in the same transaction: the event
    `lead.withdrawn` by webhook and email, with the reason "do_not_contact" when the lead matches the
    do-not-contact list, "other" otherwise (staff's own words stay in the lead's history)."""
    if not reason.strip():
        raise LeadError("Say why the lead is withdrawn.")
    held: list[str] = []

    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        held.append(lead.state)
        lead.expires_at = None
        return ("expires_at",)

    with transaction.atomic():
        lead = _move(lead, action="withdraw", actor=actor, user=user, reason=reason.strip(), update=update, now=now)
        usage_bump([lead.contractor_id])
        lead_credit(lead=lead, now=lead.closed_at or timezone.now(), note=f"Withdrawn: {reason.strip()}")
        if held[0] in WITHDRAWN_TOLD and lead.contractor is not None:
            _withdrawal_tell(lead, lead.contractor)
    return _slot_freed(lead, now)


# The states a withdrawn lead's contractor is told about: it had the lead (or was about to get it).
WITHDRAWN_TOLD = (Lead.State.ASSIGNED, Lead.State.DELIVERED, Lead.State.ACCEPTED)


def _withdrawal_tell(lead: Lead, contractor: Contractor) -> None:
    withdrawn_at = lead.closed_at
    assert withdrawn_at is not None  # a withdrawn lead is closed (a check constraint)
    do_not_contact = lead.pk in leads_on_do_not_contact([lead.pk])
    contractor_event_record(
        contractor=contractor,
        event=ContractorNotice.Event.LEAD_WITHDRAWN,
        payload={
            "id": lead.pk,
            "trade": lead.trade.slug,
            "zip_code": lead.zip_code,
            "reason": "do_not_contact" if do_not_contact else "other",
            "withdrawn_at": withdrawn_at,
        },
        key=f"lead.withdrawn-{lead.pk}",
        now=withdrawn_at,
    )


@dataclass(frozen=True)
class ReturnOutcome:
    lead: Lead
    pending: bool  # True: over the return rate, waiting for staff approval


def _return_rate_exceeded(*, contractor: Contractor, now: dt.datetime) -> tuple[bool, int, int]:
    """Would one more return put the contractor above LEAD_RETURN_RATE_PERCENT of the leads it was given
    this month (its time zone)? Returns (exceeded, returns asked for this month, leads of the month)."""
    local = timezone.localtime(now, timezone=ZoneInfo(contractor.time_zone))
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    mine = Lead.objects.filter(contractor=contractor)
    leads = mine.filter(assigned_at__gte=month_start).count()
    returns = mine.filter(return_requested_at__gte=month_start).count()
    return (returns + 1) * 100 > settings.LEAD_RETURN_RATE_PERCENT * max(leads, 1), returns, leads


def lead_return(
    *,
    lead: Lead,
    reason: str,
    note: str = "",
    actor: str = Actor.CONTRACTOR,
    user: User | None = None,
    now: dt.datetime | None = None,
) -> ReturnOutcome:
    """A contractor returns a delivered or accepted lead within LEAD_RETURN_WINDOW_DAYS of delivery, with
    a reason from the list ("other" needs a note). Within the monthly return rate the lead is returned
    at once and frees its cap slot; above it the request waits for staff (lead_return_approve). Staff
    returning a lead for the contractor are not held to the rate."""
    outcome = _lead_return(lead=lead, reason=reason, note=note, actor=actor, user=user, now=now)
    _slot_freed(outcome.lead, now)
    return outcome


@transaction.atomic
def _lead_return(
    *, lead: Lead, reason: str, note: str, actor: str, user: User | None, now: dt.datetime | None
) -> ReturnOutcome:
    if reason not in Lead.ReturnReason.values:
        choices = ", ".join(Lead.ReturnReason.values)
        raise ReturnRefused(f"Return reason {reason!r} is not one of: {choices}.")
    if reason == Lead.ReturnReason.OTHER and not note.strip():
        raise ReturnRefused('A return for "other" needs a note saying what was wrong.')
    current = Lead.objects.get(pk=lead.pk)
    contractor = Contractor.objects.select_for_update().get(pk=current.contractor_id) if current.contractor_id else None
    lead = _lock(lead)
    action = "return" if actor == Actor.STAFF else "return_request"
    transition_check(lead=lead, action=action, actor=actor)
    if lead.return_pending:
        raise ReturnRefused(f"Lead {lead.pk} already has a return waiting for approval.")
    now = now or timezone.now()
    window = dt.timedelta(days=settings.LEAD_RETURN_WINDOW_DAYS)
    if lead.delivered_at is None or now > lead.delivered_at + window:
        raise ReturnRefused(
            f"Lead {lead.pk} was delivered on {lead.delivered_at:%Y-%m-%d}; returns are taken for "
            f"{settings.LEAD_RETURN_WINDOW_DAYS} days after delivery."
        )
    lead.return_reason, lead.return_note, lead.return_requested_at = reason, note.strip()[:500], now
    text = Lead.ReturnReason(reason).label + (f": {note.strip()}" if note.strip() else "")
    fields: tuple[str, ...] = ("return_reason", "return_note", "return_requested_at")
    assert contractor is not None  # a delivered lead has its contractor
    exceeded, returns, leads = _return_rate_exceeded(contractor=contractor, now=now)
    if actor == Actor.CONTRACTOR and exceeded:
        text += f" (needs approval: {returns + 1} returns of {leads} leads this month)"
        return ReturnOutcome(
            _record(lead, action="return_request", from_state=lead.state, actor=actor, at=now, user=user,
                    reason=text, fields=fields),
            pending=True,
        )  # fmt: skip
    transition_check(lead=lead, action="return", actor=actor)
    usage_bump([lead.contractor_id])
    from_state, lead.state, lead.closed_at, lead.expires_at = lead.state, State.RETURNED, now, None
    fields += ("closed_at", "expires_at")
    lead = _record(
        lead, action="return", from_state=from_state, actor=actor, at=now, user=user, reason=text, fields=fields
    )
    lead_credit(lead=lead, now=now, note=f"Returned: {lead.get_return_reason_display()}")
    return ReturnOutcome(lead, pending=False)


def lead_return_approve(*, lead: Lead, user: User | None, note: str = "", now: dt.datetime | None = None) -> Lead:
    """Staff accept a return that was over the rate: the lead is returned and frees its cap slot."""

    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        lead.expires_at = None
        return ("expires_at",)

    with transaction.atomic():
        _return_waiting_check(lead, action="return_approve")
        lead = _move(
            lead, action="return_approve", actor=Actor.STAFF, user=user, reason=note.strip(), update=update, now=now
        )
        usage_bump([lead.contractor_id])
        credit_note = f"Return approved: {lead.get_return_reason_display()}"
        lead_credit(lead=lead, now=lead.closed_at or timezone.now(), note=credit_note)
    return _slot_freed(lead, now)


def _return_waiting_check(lead: Lead, *, action: str) -> None:
    """Staff decide a waiting return: refused naming the state when the lead has moved on, or when no
    return waits."""
    lead = _lock(lead)
    transition_check(lead=lead, action=action, actor=Actor.STAFF)
    if not lead.return_pending:
        raise ReturnRefused(f"Lead {lead.pk} has no return waiting for approval.")


@transaction.atomic
def lead_return_deny(*, lead: Lead, user: User | None, note: str, now: dt.datetime | None = None) -> Lead:
    """Refuse a waiting return: the lead stays with the contractor, the request is cleared."""
    if not note.strip():
        raise LeadError("Say why the return is refused; the contractor sees it.")
    _return_waiting_check(lead, action="return_deny")

    def update(lead: Lead, now: dt.datetime) -> tuple[str, ...]:
        lead.return_requested_at, lead.return_reason, lead.return_note = None, "", ""
        return ("return_requested_at", "return_reason", "return_note")

    return _move(lead, action="return_deny", actor=Actor.STAFF, user=user, reason=note.strip(), update=update, now=now)


@dataclass(frozen=True)
class ExpirySummary:
    unassigned: int
    unaccepted: int

    def __str__(self) -> str:
        return f"{self.unassigned:,} unassigned and {self.unaccepted:,} unaccepted leads expired"


@transaction.atomic
def leads_expire(*, now: dt.datetime | None = None) -> ExpirySummary:
    """Expire every lead past its expires_at: pool leads after LEAD_POOL_DAYS, assigned or delivered ones
    not accepted within LEAD_ACCEPT_SLA_HOURS. One UPDATE with its events (index lead_due)."""
    now = now or timezone.now()
    lead, event = Lead._meta.db_table, LeadEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH due AS (
                SELECT id, state FROM {lead}
                WHERE state = ANY(%(states)s) AND expires_at <= %(now)s
                ORDER BY id FOR UPDATE
            ),
            moved AS (
                UPDATE {lead} l SET state = 'expired', closed_at = %(now)s
                FROM due WHERE l.id = due.id
                RETURNING l.id, due.state AS from_state, l.contractor_id
            ),
            logged AS (
                INSERT INTO {event} (lead_id, action, from_state, to_state, actor, contractor_id, reason, override, at)
                SELECT id, 'expire', from_state, 'expired', 'system', contractor_id, '', false, %(now)s FROM moved
            )
            SELECT from_state = 'generated', count(*) FROM moved GROUP BY 1
            """,
            {"states": [str(state) for state in from_states("expire")], "now": now},
        )
        counts = dict(cursor.fetchall())
    return ExpirySummary(unassigned=counts.get(True, 0), unaccepted=counts.get(False, 0))
