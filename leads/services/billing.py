"""Money: the price lists staff set, and the contractors' ledger (what charges a lead, what gives a charge
back, the entries staff make, and the room a prepaid contractor's balance leaves). Entries are only ever
added (a trigger refuses UPDATE and DELETE on the table); the database holds each kind's sign, one charge
per assignment and one credit per charge, so a rule raced twice writes once.

A lead is charged its price (leads.pricing) when it is assigned: routing writes the charges in its own
statement, lead_assign through lead_charge. It is given back (lead_credit) when its contractor got
nothing it could work: the lead returned or withdrawn (Lead.CAP_FREE, the states that free a cap slot
too), or taken away by a reassignment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from contractors.models import Contractor, ContractorNotice
from contractors.services.notices import contractor_event_record
from core.numbers import CENT
from leads.errors import LeadError
from leads.models import Lead, LedgerEntry, Price, PriceList, Statement, TerritoryFee
from leads.selectors import contractor_balances
from scoring.models import Trade

Kind = LedgerEntry.Kind
STAFF_KINDS = (Kind.PAYMENT, Kind.ADJUSTMENT)


@dataclass(frozen=True)
class Band:
    min_score: float
    amount: Decimal
    urgent: bool = False


@dataclass(frozen=True)
class FeeTier:
    min_demand: int
    monthly: Decimal


def _amount_check(amount: object, *, what: str) -> Decimal:
    """A money amount as entered: a Decimal of whole cents, finite."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount != amount.quantize(CENT):
        raise LeadError(f"{what} must be an amount in {settings.CURRENCY} with at most 2 decimals; got {amount!r}.")
    return amount


@transaction.atomic
def price_list_create(
    *,
    trade: Trade,
    bands: list[Band],
    effective_from: dt.datetime,
    fees: Sequence[FeeTier] = (),
    exploration_free: bool = True,
    note: str = "",
    user: User | None = None,
    now: dt.datetime | None = None,
) -> PriceList:
    """A new price list for `trade`, in force from `effective_from` (now or later: what leads were priced
    at is never rewritten) until the trade's next list. Every score must have a price, so the bands start
    at 0 (urgent bands are optional and price urgent leads only). `fees`: the monthly territory fee tiers by
    ZIP demand (leads.services.statements charges them); none, no fee."""
    now = now or timezone.now()
    if effective_from < now - dt.timedelta(minutes=1):
        raise LeadError(
            f"A price list starts now or later, not {effective_from:%Y-%m-%d %H:%M}: leads already assigned keep "
            "the prices they were charged."
        )
    if not any(band.min_score == 0 and not band.urgent for band in bands):
        raise LeadError("A price list needs a band from score 0 (not urgent-only), so that every lead has a price.")
    seen: set[tuple[float, bool]] = set()
    for band in bands:
        if not 0 <= band.min_score <= 100:
            raise LeadError(f"A band's lowest score is between 0 and 100; got {band.min_score}.")
        if (band.min_score, band.urgent) in seen:
            raise LeadError(f"Two bands start at score {band.min_score:g}{' (urgent)' if band.urgent else ''}.")
        seen.add((band.min_score, band.urgent))
        if _amount_check(band.amount, what="A price") < 0:
            raise LeadError(f"A price is never negative; got {band.amount}.")
    tiers = [tier.min_demand for tier in fees]
    if len(set(tiers)) != len(tiers):
        raise LeadError("Two territory fee tiers start at the same demand.")
    for tier in fees:
        if tier.min_demand < 0 or _amount_check(tier.monthly, what="A territory fee") < 0:
            raise LeadError(f"A fee tier is a demand of 0 or more and a fee of 0 or more; got {tier}.")
    if PriceList.objects.filter(trade=trade, effective_from=effective_from).exists():
        raise LeadError(f"{trade} already has a price list starting {effective_from:%Y-%m-%d %H:%M}.")
    price_list = PriceList.objects.create(
        trade=trade,
        effective_from=effective_from,
        exploration_free=exploration_free,
        note=note.strip(),
        created_by=user if user is not None and user.is_authenticated else None,
    )
    Price.objects.bulk_create(
        Price(price_list=price_list, min_score=band.min_score, urgent=band.urgent, amount=band.amount) for band in bands
    )
    TerritoryFee.objects.bulk_create(
        TerritoryFee(price_list=price_list, min_demand=tier.min_demand, monthly=tier.monthly) for tier in fees
    )
    return price_list


def lead_charge(*, lead: Lead, now: dt.datetime) -> LedgerEntry | None:
    """Charge the lead's contractor its price for the lead's current assignment; nothing for an unpriced
    lead. The caller holds the lead's row lock, in the transaction that assigned it."""
    if lead.price is None or lead.contractor_id is None or lead.assigned_at is None:
        return None
    return LedgerEntry.objects.create(
        contractor_id=lead.contractor_id,
        kind=Kind.LEAD_CHARGE,
        amount=lead.price,
        at=now,
        lead=lead,
        assigned_at=lead.assigned_at,
    )


def lead_credit(*, lead: Lead, now: dt.datetime, note: str) -> LedgerEntry | None:
    """Give back the charge of the lead's current assignment, once: a second credit of the same charge
    (two approvals racing, a retried job) writes nothing, by the unique index one_credit_per_charge. Returns the
    credit written, None when there was no charge or it was already given back."""
    if lead.assigned_at is None:
        return None
    table = LedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (contractor_id, kind, amount, at, lead_id, reverses_id, note)
            SELECT contractor_id, %(kind)s, -amount, %(now)s, lead_id, id, %(note)s FROM {table}
            WHERE kind = 'lead_charge' AND lead_id = %(lead)s AND assigned_at = %(assigned_at)s
            ON CONFLICT (reverses_id) WHERE reverses_id IS NOT NULL DO NOTHING
            RETURNING id
            """,
            {
                "kind": Kind.LEAD_CREDIT,
                "now": now,
                "lead": lead.pk,
                "assigned_at": lead.assigned_at,
                "note": note[:300],
            },
        )
        row = cursor.fetchone()
    return None if row is None else LedgerEntry.objects.get(pk=row[0])


@transaction.atomic
def ledger_entry_add(
    *, contractor: Contractor, kind: str, amount: Decimal, note: str, user: User | None, at: dt.datetime | None = None
) -> LedgerEntry:
    """A payment received (a positive amount, written as what it takes off the balance) or an adjustment
    (either sign: positive adds to what the contractor owes), entered by staff with a note. An entry that
    lowers a prepaid contractor's balance routes the leads its balance held back at once. Written under the
    contractor's row lock, as every charge is, so a prepaid room read under that lock stays true."""
    if kind not in STAFF_KINDS:
        raise LeadError(f"Staff enter payments and adjustments; {kind!r} entries are written by LeadEngine.")
    if not note.strip():
        raise LeadError("Say what the entry is for (a payment's reference, an adjustment's reason).")
    _amount_check(amount, what="The amount")
    contractor = Contractor.objects.select_for_update().get(pk=contractor.pk)
    at = at or timezone.now()
    local = timezone.localtime(at, timezone=ZoneInfo(contractor.time_zone)).date().replace(day=1)
    if Statement.objects.filter(contractor=contractor, month__gte=local).exists():
        raise LeadError(f"{contractor}'s {local:%B %Y} is closed (its statement is written); date the entry later.")
    if kind == Kind.PAYMENT:
        if amount <= 0:
            raise LeadError("A payment is a positive amount received.")
        amount = -amount
    elif amount == 0:
        raise LeadError("An adjustment of 0 changes nothing.")
    entry = LedgerEntry.objects.create(
        contractor=contractor,
        kind=kind,
        amount=amount,
        at=at,
        note=note.strip(),
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if amount < 0 and contractor.billing == Contractor.Billing.PREPAID:
        from leads.services.routing import leads_route  # routing charges through this module

        leads_route(contractor_ids=[contractor.pk], now=entry.at)
    return entry


def money_rooms(*, contractors: list[Contractor]) -> dict[int, Decimal | None]:
    """What each contractor may still be charged: credit limit minus balance for a prepaid one (at
    least 0), None (no limit) for one billed in arrears. Read under the contractors' row locks, which
    every charge takes first, so the room cannot change before the caller assigns."""
    prepaid = [contractor for contractor in contractors if contractor.billing == Contractor.Billing.PREPAID]
    balances = contractor_balances(contractor_ids=[contractor.pk for contractor in prepaid])
    rooms: dict[int, Decimal | None] = {contractor.pk: None for contractor in contractors}
    for contractor in prepaid:
        rooms[contractor.pk] = max(contractor.credit_limit - balances.get(contractor.pk, Decimal(0)), Decimal(0))
    return rooms


def balance_held_tell(*, contractor: Contractor, held: int, now: dt.datetime) -> bool:
    """Tell a prepaid contractor (webhook event `balance.held`, and email) that leads waiting for it were
    held back because their price would take it past its credit limit: once a day (its time zone), in the
    caller's transaction. Returns whether it was told now."""
    day = timezone.localtime(now, timezone=ZoneInfo(contractor.time_zone)).date()
    key = f"balance.held-{contractor.pk}-{day.isoformat()}"
    if ContractorNotice.objects.filter(contractor=contractor, key=key).exists():
        return False
    balance = contractor_balances(contractor_ids=[contractor.pk]).get(contractor.pk, Decimal(0))
    room = max(contractor.credit_limit - balance, Decimal(0))
    contractor_event_record(
        contractor=contractor,
        event=ContractorNotice.Event.BALANCE_HELD,
        payload={
            "leads_held": held,
            "balance": str(balance),
            "credit_limit": str(contractor.credit_limit),
            "room": str(room),
            "currency": settings.CURRENCY,
            "held_at": now,
        },
        key=key,
        now=now,
    )
    return True
