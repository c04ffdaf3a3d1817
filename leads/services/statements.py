"""Closing a contractor's month: its territory fees, then its statement.

A month is the contractor's own (its time zone), closed once it is over there: the "Month close" job runs
every hour and closes each contractor's last month on the 1st, whatever its zone (months_close). Closing
charges each territory the contractor held during the month its tier's monthly fee (the price list of the
territory's trade in force at the month's end, the tier of the ZIP's demand then), prorated by the share
of the month it was held, then writes the statement: the balance before the month, what each kind of
entry of the month added, per trade what its leads cost and were given back, and the closing balance. A
close done twice (two workers, a retried job) writes nothing the second time: the contractor's row lock
orders them, the statement is unique per month, and a fee per territory and month (a unique index).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from contractors.models import Contractor
from core.numbers import CENT
from leads.errors import LeadError
from leads.models import Lead, LedgerEntry, PriceList, Statement
from leads.selectors import month_bounds
from scoring.models import Trade
from territories.models import Territory
from territories.selectors import zip_demand

Kind = LedgerEntry.Kind
ZERO = Decimal("0.00")


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _fee_of(price_list: PriceList | None, demand: int) -> Decimal:
    tiers = sorted(price_list.fees.all(), key=lambda tier: tier.min_demand) if price_list else []
    fee = ZERO
    for tier in tiers:
        if tier.min_demand <= demand:
            fee = tier.monthly
    return fee


def territory_fees_charge(*, contractor: Contractor, month: dt.date) -> list[LedgerEntry]:
    """Charge `contractor` the month's fee of every territory it held during `month` (its time zone),
    prorated by the seconds it held it; a territory already charged for the month is left alone. The
    caller holds the contractor's row lock. Returns the entries written."""
    start, end = month_bounds(month=month, zone=contractor.time_zone)
    held = list(
        Territory.objects.filter(contractor=contractor, started_at__lt=end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start))
        .select_related("trade")
        .order_by("trade_id", "zip_code_id", "started_at")
    )
    if not held:
        return []
    # Prorated by the contractor's calendar: times in its zone subtract as wall-clock time, so 15 days of a
    # 30-day month are half of it even across a daylight saving change.
    zone = ZoneInfo(contractor.time_zone)
    month_seconds = Decimal((end - start).total_seconds())
    last_instant = end - dt.timedelta(seconds=1)
    entries = []
    for trade_id in sorted({territory.trade_id for territory in held}):
        mine = [territory for territory in held if territory.trade_id == trade_id]
        price_list = (
            PriceList.objects.filter(trade_id=trade_id, effective_from__lte=last_instant)
            .prefetch_related("fees")
            .order_by("-effective_from")
            .first()
        )
        demand = zip_demand(trade_id=trade_id, zip_codes=sorted({territory.zip_code_id for territory in mine}))
        for territory in mine:
            monthly = _fee_of(price_list, demand.get(territory.zip_code_id, 0))
            held_from = max(territory.started_at, start).astimezone(zone)
            held_until = min(territory.ended_at or end, end).astimezone(zone)
            share = Decimal((held_until - held_from).total_seconds()) / month_seconds
            amount = (monthly * share).quantize(CENT, rounding=ROUND_HALF_UP)
            if amount <= 0:
                continue
            days = (held_until - held_from).total_seconds() / 86400
            whole = (end - start).days
            entries.append(
                LedgerEntry(
                    contractor=contractor,
                    kind=Kind.TERRITORY_FEE,
                    amount=amount,
                    at=last_instant,
                    territory=territory,
                    period=month,
                    note=f"{territory.zip_code_id} {territory.trade}, {month:%B %Y}: {monthly} a month, held "
                    f"{days:.1f} of {whole} days",
                )
            )
    return LedgerEntry.objects.bulk_create(entries, ignore_conflicts=True)


def _sums(
    contractor: Contractor, start: dt.datetime, end: dt.datetime
) -> tuple[Decimal, dict[str, Any], dict[str, Any]]:
    """The balance before `start`, the sums and counts of each kind in [start, end), and per trade."""
    ledger, lead, trade, territory = (
        LedgerEntry._meta.db_table, Lead._meta.db_table, Trade._meta.db_table, Territory._meta.db_table
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(sum(amount), 0) FROM {ledger} WHERE contractor_id = %s AND at < %s",
            [contractor.pk, start],
        )
        (opening,) = cursor.fetchone()
        cursor.execute(
            f"""
            SELECT e.kind, coalesce(lt.slug, tt.slug), sum(e.amount), count(*)
            FROM {ledger} e
            LEFT JOIN {lead} l ON l.id = e.lead_id LEFT JOIN {trade} lt ON lt.id = l.trade_id
            LEFT JOIN {territory} t ON t.id = e.territory_id LEFT JOIN {trade} tt ON tt.id = t.trade_id
            WHERE e.contractor_id = %s AND e.at >= %s AND e.at < %s
            GROUP BY 1, 2
            """,
            [contractor.pk, start, end],
        )
        rows = cursor.fetchall()
    kinds: dict[str, Any] = defaultdict(lambda: ZERO)
    charged = 0
    by_trade: dict[str, dict[str, Any]] = {}
    for kind, slug, amount, count in rows:
        kinds[kind] += amount
        if kind == Kind.LEAD_CHARGE:
            charged += count
        if slug is not None:
            figures = by_trade.setdefault(slug, {"leads": 0, "charged": ZERO, "credited": ZERO, "fees": ZERO})
            if kind == Kind.LEAD_CHARGE:
                figures["leads"] += count
                figures["charged"] += amount
            elif kind == Kind.LEAD_CREDIT:
                figures["credited"] -= amount
            elif kind == Kind.TERRITORY_FEE:
                figures["fees"] += amount
    kinds["leads_charged"] = charged
    shown = {
        slug: {name: value if name == "leads" else str(value.quantize(CENT)) for name, value in figures.items()}
        for slug, figures in sorted(by_trade.items())
    }
    return opening, kinds, shown


@transaction.atomic
def month_close(*, contractor: Contractor, month: dt.date, now: dt.datetime | None = None) -> Statement:
    """Close `contractor`'s `month` (its first day): its territory fees, then its statement. A month not yet
    over in the contractor's time zone is refused, and so is one before a month already closed (whose
    opening balance would miss its fees); a month already closed returns its statement."""
    if month.day != 1:
        raise LeadError(f"A month is named by its first day, not {month:%Y-%m-%d}.")
    now = now or timezone.now()
    contractor = Contractor.objects.select_for_update().get(pk=contractor.pk)
    start, end = month_bounds(month=month, zone=contractor.time_zone)
    if end > now:
        raise LeadError(f"{month:%B %Y} is not over yet for {contractor} ({contractor.time_zone}).")
    closed = Statement.objects.filter(contractor=contractor, month=month).first()
    if closed is not None:
        return closed
    later = Statement.objects.filter(contractor=contractor, month__gt=month).order_by("month").first()
    if later is not None:  # its opening balance was read without this month's fees
        raise LeadError(f"{contractor}'s {later.month:%B %Y} is already closed; months close in order.")
    territory_fees_charge(contractor=contractor, month=month)
    opening, kinds, by_trade = _sums(contractor, start, end)
    figures = {
        "lead_charges": kinds[Kind.LEAD_CHARGE],
        "lead_credits": kinds[Kind.LEAD_CREDIT],
        "territory_fees": kinds[Kind.TERRITORY_FEE],
        "payments": kinds[Kind.PAYMENT],
        "adjustments": kinds[Kind.ADJUSTMENT],
    }
    return Statement.objects.create(
        contractor=contractor,
        month=month,
        opening_balance=opening,
        closing_balance=opening + sum(figures.values(), ZERO),
        leads_charged=kinds["leads_charged"],
        by_trade=by_trade,
        closed_at=now,
        **figures,
    )


@dataclass(frozen=True)
class MonthsClosed:
    statements: int
    fees: Decimal

    def __str__(self) -> str:
        return f"{self.statements:,} statements closed, {self.fees:,.2f} {settings.CURRENCY} of territory fees"


def months_close(*, now: dt.datetime | None = None) -> MonthsClosed:
    """Close the last month of every contractor whose time zone has reached the 1st, when it is not closed
    yet and the contractor had a territory or a ledger entry by its end: what the hourly "Month close" job
    runs. Each contractor in a transaction of its own."""
    now = now or timezone.now()
    closed, fees = 0, ZERO
    for zone in sorted(set(Contractor.objects.values_list("time_zone", flat=True))):
        local_today = timezone.localtime(now, timezone=ZoneInfo(zone)).date()
        month = month_start(month_start(local_today) - dt.timedelta(days=1))
        _start, end = month_bounds(month=month, zone=zone)
        business = Exists(LedgerEntry.objects.filter(contractor=OuterRef("pk"), at__lt=end)) | Exists(
            Territory.objects.filter(contractor=OuterRef("pk"), started_at__lt=end)
        )  # nothing to state before a contractor's first territory or entry
        due = Contractor.objects.filter(business, time_zone=zone).exclude(statements__month=month).order_by("pk")
        for contractor in due:
            statement = month_close(contractor=contractor, month=month, now=now)
            closed += 1
            fees += statement.territory_fees
    return MonthsClosed(statements=closed, fees=fees)
