"""Reads of leads: the leads an API caller may see, what a contractor may still receive under its caps, and
the unassigned pool."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from contractors.caller import Caller, caller_rows
from contractors.models import Contractor
from core.cache import cached, usage
from leads.models import Lead, LeadEvent, LedgerEntry, Statement
from scoring.models import Trade, ZipCode


def leads_visible(*, caller: Caller) -> QuerySet[Lead]:
    """The leads `caller` may see, the rule every API view applies: staff see every lead; a contractor (its
    API key, or a member's session) the leads it holds now; anyone else none. Another contractor's lead
    is therefore not found (404), never forbidden."""
    return caller_rows(Lead.objects.all(), caller=caller)


def leads_to_post_exist(*, trade_ids: Iterable[int]) -> bool:
    """Whether an assigned lead of these trades waits for a webhook (its contractor takes webhooks): the
    leads webhook delivery posts (leads.services.webhooks)."""
    return (
        Lead.objects.filter(trade_id__in=list(trade_ids), state=Lead.State.ASSIGNED)
        .exclude(contractor__webhook_url="")
        .exists()
    )


def urgent_leads_waiting(*, since: dt.datetime) -> bool:
    """Whether an urgent lead assigned before `since` still waits for the urgent email: its contractor takes
    no webhook and has a contact address (leads.services.digest)."""
    return (
        Lead.objects.filter(state=Lead.State.ASSIGNED, urgent=True, assigned_at__lt=since, contractor__webhook_url="")
        .exclude(contractor__contact_email="")
        .exclude(contractor__status=Contractor.Status.SUSPENDED)
        .exists()
    )


def urgent_leads_to_email_exist(*, trade_ids: Iterable[int]) -> bool:
    """Whether an urgent assigned lead of these trades waits for the urgent email (its contractor takes no
    webhook)."""
    return (
        Lead.objects.filter(trade_id__in=list(trade_ids), state=Lead.State.ASSIGNED, urgent=True)
        .filter(contractor__webhook_url="")
        .exists()
    )


@dataclass(frozen=True)
class CapUsage:
    """A contractor's leads so far in its current day, week (Monday to Sunday) and month, counted in its
    own time zone, and how many more it may receive now (None: no cap)."""

    contractor_id: int
    today: int
    this_week: int
    this_month: int
    room: int | None


# The one definition of cap usage. A lead counts in the windows its assigned_at falls in, in the
# contractor's time zone (PostgreSQL converts across DST), unless it was returned or withdrawn: those
# free the slot they used. Reads lead_contractor_assigned (contractor, assigned_at).
CAP_USAGE_SQL = f"""
    SELECT c.id,
           count(l.id) FILTER (WHERE l.assigned_at >= w.day) AS today,
           count(l.id) FILTER (WHERE l.assigned_at >= w.week) AS this_week,
           count(l.id) FILTER (WHERE l.assigned_at >= w.month) AS this_month,
           c.daily_cap, c.weekly_cap, c.monthly_cap
    FROM contractors_contractor c
    CROSS JOIN LATERAL (SELECT (%(now)s::timestamptz AT TIME ZONE c.time_zone) AS local) n
    CROSS JOIN LATERAL (
        SELECT date_trunc('day', n.local) AT TIME ZONE c.time_zone AS day,
               date_trunc('week', n.local) AT TIME ZONE c.time_zone AS week,
               date_trunc('month', n.local) AT TIME ZONE c.time_zone AS month
    ) w
    LEFT JOIN {Lead._meta.db_table} l
           ON l.contractor_id = c.id
          AND l.assigned_at >= least(w.week, w.month)
          AND l.state NOT IN ({", ".join(f"'{state}'" for state in Lead.CAP_FREE)})
    WHERE c.id = ANY(%(ids)s)
    GROUP BY c.id, w.day, w.week, w.month
"""


def contractor_cap_usage(*, contractor_ids: Iterable[int], now: dt.datetime) -> dict[int, CapUsage]:
    ids = sorted(set(contractor_ids))
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(CAP_USAGE_SQL, {"ids": ids, "now": now})
        rows = cursor.fetchall()
    usage = {}
    for contractor_id, today, week, month, daily, weekly, monthly in rows:
        rooms = [cap - used for cap, used in ((daily, today), (weekly, week), (monthly, month)) if cap is not None]
        usage[contractor_id] = CapUsage(contractor_id, today, week, month, max(min(rooms), 0) if rooms else None)
    return usage


def contractor_cap_usage_cached(*, contractor: Contractor, now: dt.datetime) -> CapUsage:
    """contractor_cap_usage for display (the profile endpoint), from Redis until a lead move bumps the
    contractor's usage generation (cache.usage_bump). Never for deciding an assignment: routing and
    lead_assign count under the contractor's row lock with contractor_cap_usage.

    The key also carries what the answer depends on beyond the leads, as `contractor` says now: its caps
    and time zone (so editing them, by any path, needs no bump) and its local date, from which the day,
    week and month windows start (so a cached "today" is not read after local midnight)."""
    local_date = timezone.localtime(now, timezone=ZoneInfo(contractor.time_zone)).date()
    parts = (
        contractor.pk,
        contractor.time_zone,
        local_date.isoformat(),
        contractor.daily_cap,
        contractor.weekly_cap,
        contractor.monthly_cap,
    )
    return cached(
        "cap_usage",
        parts,
        depends_on=(usage(contractor.pk),),
        compute=lambda: contractor_cap_usage(contractor_ids=[contractor.pk], now=now)[contractor.pk],
    )


def contractor_balances(*, contractor_ids: Iterable[int]) -> dict[int, Decimal]:
    """What each contractor owes now (the sum of its ledger entries; negative: paid in advance). A
    contractor without entries is left out (it owes 0)."""
    ids = sorted(set(contractor_ids))
    if not ids:
        return {}
    rows = (
        LedgerEntry.objects.filter(contractor_id__in=ids)
        .values("contractor_id")
        .annotate(balance=Sum("amount"))
        .values_list("contractor_id", "balance")
    )
    return dict(rows)


@dataclass(frozen=True)
class Revenue:
    """Money of a period, from the ledger: per day (its time zone) and trade, what leads were charged and
    what was given back; per contractor, what it spent (charges less credits, fees); and what contractors
    owe now (balances above 0), most first."""

    per_day: dict[dt.date, dict[str, Decimal]]  # day: trade slug: charged less credited
    by_trade: dict[str, tuple[Decimal, Decimal]]  # trade slug: (charged, credited, as a positive amount)
    spenders: list[tuple[int, Decimal]]  # (contractor id, spent in the period), most first
    unpaid: list[tuple[int, Decimal]]  # (contractor id, balance owed now), most first
    unpaid_total: Decimal
    unpaid_count: int

    @property
    def charged(self) -> Decimal:
        return sum((charged for charged, _ in self.by_trade.values()), Decimal(0))

    @property
    def credited(self) -> Decimal:
        return sum((credited for _, credited in self.by_trade.values()), Decimal(0))


def revenue(*, start: dt.datetime, end: dt.datetime, zone: str, top: int = 10) -> Revenue:
    ledger, lead, trade = LedgerEntry._meta.db_table, Lead._meta.db_table, Trade._meta.db_table
    per_day: dict[dt.date, dict[str, Decimal]] = {}
    by_trade: dict[str, tuple[Decimal, Decimal]] = {}
    period: dict[str, Any] = {"start": start, "end": end, "zone": zone, "top": top}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (e.at AT TIME ZONE %(zone)s)::date, t.slug, e.kind, sum(e.amount)
            FROM {ledger} e JOIN {lead} l ON l.id = e.lead_id JOIN {trade} t ON t.id = l.trade_id
            WHERE e.kind IN ('lead_charge', 'lead_credit') AND e.at >= %(start)s AND e.at < %(end)s
            GROUP BY 1, 2, 3
            """,
            period,
        )
        for day, slug, kind, amount in cursor.fetchall():
            per_day.setdefault(day, {})[slug] = per_day.get(day, {}).get(slug, Decimal(0)) + amount
            charged, credited = by_trade.get(slug, (Decimal(0), Decimal(0)))
            by_trade[slug] = (charged + amount, credited) if kind == "lead_charge" else (charged, credited - amount)
        cursor.execute(
            f"""
            SELECT contractor_id, sum(amount) FROM {ledger}
            WHERE kind IN ('lead_charge', 'lead_credit', 'territory_fee') AND at >= %(start)s AND at < %(end)s
            GROUP BY 1 HAVING sum(amount) > 0 ORDER BY 2 DESC, 1 LIMIT %(top)s
            """,
            period,
        )
        spenders = cursor.fetchall()
        cursor.execute(
            f"""
            WITH owed AS (SELECT contractor_id, sum(amount) AS balance FROM {ledger} GROUP BY 1
                          HAVING sum(amount) > 0)
            SELECT contractor_id, balance, sum(balance) OVER (), count(*) OVER () FROM owed
            ORDER BY balance DESC, contractor_id LIMIT %(top)s
            """,
            period,
        )
        rows = cursor.fetchall()
    return Revenue(
        per_day=per_day,
        by_trade=by_trade,
        spenders=[(contractor_id, amount) for contractor_id, amount in spenders],
        unpaid=[(contractor_id, balance) for contractor_id, balance, _, _ in rows],
        unpaid_total=rows[0][2] if rows else Decimal(0),
        unpaid_count=rows[0][3] if rows else 0,
    )


def month_bounds(*, month: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of `month` (its first day) in time zone `zone`: a contractor's month."""
    tz = ZoneInfo(zone)
    after = (month + dt.timedelta(days=32)).replace(day=1)
    return dt.datetime.combine(month, dt.time(), tzinfo=tz), dt.datetime.combine(after, dt.time(), tzinfo=tz)


def statements_visible(*, caller: Caller) -> QuerySet[Statement]:
    """Staff see every statement; a contractor its own; anyone else none."""
    return caller_rows(Statement.objects.all(), caller=caller)


def statement_entries(*, statement: Statement) -> QuerySet[LedgerEntry]:
    """The ledger entries a statement sums: its contractor's, in its month (the contractor's time zone)."""
    start, end = month_bounds(month=statement.month, zone=statement.contractor.time_zone)
    return (
        LedgerEntry.objects.filter(contractor_id=statement.contractor_id, at__gte=start, at__lt=end)
        .select_related("lead__trade", "territory__trade")
        .order_by("at", "id")
    )


def lead_pool_by_zip(*, trade: Trade, state: str | None = None) -> dict[str, int]:
    """Unassigned (generated) leads of `trade` per ZIP, optionally of one US state (index lead_pool)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT l.zip_code, count(*) FROM {Lead._meta.db_table} l
            JOIN {ZipCode._meta.db_table} z ON z.code = l.zip_code
            WHERE l.trade_id = %(trade)s AND l.state = 'generated' AND (%(state)s::text IS NULL OR z.state = %(state)s)
            GROUP BY 1
            """,
            {"trade": trade.pk, "state": state},
        )
        return dict(cursor.fetchall())


# The funnel's steps: the state a lead reached, in the order a lead moves through them.
FUNNEL_STEPS = ("generated", "assigned", "delivered", "accepted", "converted", "rejected", "returned", "expired")


def leads_funnel(*, start: dt.datetime, end: dt.datetime) -> dict[str, dict[str, int]]:
    """Per trade slug, how many leads reached each funnel step (FUNNEL_STEPS) in [start, end): leads counted
    once per step however often they reached it (a reassigned lead is assigned once). Requests that
    change no state (a return waiting for approval, a contact) are not steps. Every trade is present,
    with zeros."""
    event = LeadEvent._meta.db_table
    funnel = {
        slug: dict.fromkeys(FUNNEL_STEPS, 0) for slug in Trade.objects.order_by("slug").values_list("slug", flat=True)
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT t.slug, e.to_state, count(DISTINCT e.lead_id)
            FROM {event} e
            JOIN {Lead._meta.db_table} l ON l.id = e.lead_id
            JOIN {Trade._meta.db_table} t ON t.id = l.trade_id
            WHERE e.at >= %(start)s AND e.at < %(end)s AND e.to_state = ANY(%(steps)s)
              AND e.from_state IS DISTINCT FROM e.to_state
            GROUP BY 1, 2
            """,
            {"start": start, "end": end, "steps": list(FUNNEL_STEPS)},
        )
        for slug, step, count in cursor.fetchall():
            funnel[slug][step] = count
    return funnel


def leads_reached(*, step: str, start: dt.datetime, end: dt.datetime) -> QuerySet[LeadEvent, Any]:
    """The ids (lead_id) of the leads that reached funnel step `step` in [start, end), as leads_funnel and
    leads_per_day count them: the set behind one of their figures (BRIN index lead_event_at)."""
    return (
        LeadEvent.objects.filter(at__gte=start, at__lt=end, to_state=step)
        .filter(Q(from_state__isnull=True) | ~Q(from_state=F("to_state")))
        .values("lead_id")
    )


def contractors_at_cap(*, now: dt.datetime) -> list[int]:
    """The ids of the active contractors with a cap that has no room left now (contractor_cap_usage):
    routing passes them by until their day, week or month turns."""
    capped = Contractor.objects.filter(status=Contractor.Status.ACTIVE).filter(
        Q(daily_cap__isnull=False) | Q(weekly_cap__isnull=False) | Q(monthly_cap__isnull=False)
    )
    usage_of = contractor_cap_usage(contractor_ids=capped.values_list("pk", flat=True), now=now)
    return sorted(pk for pk, used in usage_of.items() if used.room == 0)


def leads_per_day(
    *, start: dt.datetime, end: dt.datetime, zone: str, steps: Iterable[str] = ("generated", "assigned", "converted")
) -> dict[dt.date, dict[str, int]]:
    """Per day of [start, end) in time zone `zone` that had any, how many leads reached each of `steps`
    (counted as leads_funnel counts them). Reads a period's events through the BRIN index lead_event_at."""
    steps = list(steps)
    days: dict[dt.date, dict[str, int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (e.at AT TIME ZONE %(zone)s)::date AS day, e.to_state, count(DISTINCT e.lead_id)
            FROM {LeadEvent._meta.db_table} e
            WHERE e.at >= %(start)s AND e.at < %(end)s AND e.to_state = ANY(%(steps)s)
              AND e.from_state IS DISTINCT FROM e.to_state
            GROUP BY 1, 2
            """,
            {"start": start, "end": end, "steps": steps, "zone": zone},
        )
        for day, step, count in cursor.fetchall():
            days.setdefault(day, dict.fromkeys(steps, 0))[step] = count
    return days


@dataclass(frozen=True)
class LeadOutcomes:
    """Of the leads assigned to a contractor (or in a ZIP) in a period, how many that contractor has
    converted and returned since."""

    key: str  # contractor id or ZIP code, as text
    assigned: int
    converted: int
    returned: int

    @property
    def conversion_rate(self) -> float:
        return 100 * self.converted / self.assigned if self.assigned else 0.0

    @property
    def return_rate(self) -> float:
        return 100 * self.returned / self.assigned if self.assigned else 0.0


def lead_outcomes(*, start: dt.datetime, end: dt.datetime) -> dict[str, list[LeadOutcomes]]:
    """Conversion and return of the leads assigned in [start, end), by contractor ("contractor": keyed by
    its id) and by ZIP ("zip"), most leads first. A lead counts once per contractor it was assigned to;
    its conversion or return counts for the contractor holding it. One statement: the period's assignment
    events (BRIN index lead_event_at), their leads by primary key, grouped both ways at once."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH assigned AS (
                SELECT DISTINCT e.lead_id, e.contractor_id
                FROM {LeadEvent._meta.db_table} e
                WHERE e.at >= %(start)s AND e.at < %(end)s AND e.to_state = 'assigned'
                  AND e.from_state IS DISTINCT FROM e.to_state AND e.contractor_id IS NOT NULL
            )
            SELECT a.contractor_id, l.zip_code, count(DISTINCT a.lead_id),
                   count(DISTINCT a.lead_id) FILTER (WHERE l.state = 'converted' AND l.contractor_id = a.contractor_id),
                   count(DISTINCT a.lead_id) FILTER (WHERE l.state = 'returned' AND l.contractor_id = a.contractor_id)
            FROM assigned a
            JOIN {Lead._meta.db_table} l ON l.id = a.lead_id
            GROUP BY GROUPING SETS ((a.contractor_id), (l.zip_code))
            """,
            {"start": start, "end": end},
        )
        rows = cursor.fetchall()
    outcomes: dict[str, list[LeadOutcomes]] = {"contractor": [], "zip": []}
    for contractor_id, zip_code, assigned, converted, returned in rows:
        if contractor_id is not None:
            outcomes["contractor"].append(LeadOutcomes(str(contractor_id), assigned, converted, returned))
        else:
            outcomes["zip"].append(LeadOutcomes(zip_code, assigned, converted, returned))
    for rows_of in outcomes.values():
        rows_of.sort(key=lambda row: (-row.assigned, row.key))
    return outcomes


# The one definition of a lead's known outcome for lead quality (evaluation and learning). A lead sold to
# a contractor ends as a job (converted: 1) or without one (returned, rejected, or expired after it was
# assigned: 0). Leads still open, withdrawn by staff, or expired in the pool never reached a homeowner
# through a contractor, so they say nothing about the score and are left out.
OUTCOME_KNOWN_STATES = (Lead.State.CONVERTED, Lead.State.RETURNED, Lead.State.REJECTED, Lead.State.EXPIRED)
OUTCOME_COLUMNS = (
    "id",
    "property_id",
    "model_id",
    "model_version",
    "score",
    "generated_on",
    "exploration",
    "sampling_weight",
    "converted",
    "returned",
    "reason_features",
)


def lead_outcomes_known(
    *,
    trade_id: int,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    model_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """The trade's leads generated in [first_day, last_day] whose outcome is known (OUTCOME_KNOWN_STATES,
    assigned at some point), one row each with OUTCOME_COLUMNS: `converted` and `returned` are 1 or 0,
    `reason_features` the features of the lead's reasons, best first. Ordered by generation day, then id."""
    where = ["trade_id = %(trade)s", "state = ANY(%(states)s)", "assigned_at IS NOT NULL"]
    params: dict[str, Any] = {"trade": trade_id, "states": [str(state) for state in OUTCOME_KNOWN_STATES]}
    if first_day is not None:
        where.append("generated_on >= %(first)s")
        params["first"] = first_day
    if last_day is not None:
        where.append("generated_on <= %(last)s")
        params["last"] = last_day
    if model_ids is not None:
        where.append("model_id = ANY(%(models)s)")
        params["models"] = sorted(set(model_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT id, property_id, model_id, model_version, score, generated_on, exploration, sampling_weight,
                   (state = 'converted')::int, (state = 'returned')::int,
                   ARRAY(SELECT r ->> 'feature' FROM json_array_elements(reasons) r)
            FROM {Lead._meta.db_table}
            WHERE {" AND ".join(where)}
            ORDER BY generated_on, id
            """,
            params,
        )
        rows = cursor.fetchall()
    return pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))


def lead_counts_by_state(*, cache_seconds: int = 0) -> dict[tuple[str, str], int]:
    """How many leads are in each state, per trade: {(trade slug, state): count}, for the pairs that have any. One
    grouped count over the whole table: a parallel sequential scan (no index serves it), 0.66 to 1.1 s for 3 million
    leads on 2 cores (README, "Metrics"); with `cache_seconds`, the answer is kept that long in Django's cache
    (computed directly while Redis is unavailable)."""

    def count() -> dict[tuple[str, str], int]:
        rows = Lead.objects.values_list("trade__slug", "state").annotate(leads=Count("id")).order_by()
        return {(slug, state): leads for slug, state, leads in rows}

    if not cache_seconds:
        return count()
    return cached("lead_counts_by_state", (), depends_on=(), compute=count, seconds=cache_seconds)
