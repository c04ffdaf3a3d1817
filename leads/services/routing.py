"""Routing: unassigned (generated) leads go to the active owner of their ZIP for their trade, exploration
leads first, then the best (leads.ranking), as many as each owner's caps leave room for
(leads.selectors.CAP_USAGE_SQL) and, for a prepaid owner, as many as its balance can pay for, in the same
order: the first lead that does not fit holds back the ones after it, so that a payment brings the best
waiting lead rather than a cheaper one that jumped the line. Each lead is stamped with its price
(leads.pricing) and charged to its owner in the same statement (leads.services.billing).

Caps and prepaid credit limits hold under any concurrency because every write that gives a contractor a lead (this and
lifecycle.lead_assign) first locks the contractor's row, then counts, then assigns, in one transaction:
a second router waits for the first to commit and then counts its leads. Locks are taken contractors
first (by id), then leads, everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from contractors.models import Contractor
from core.cache import usage_bump
from core.text import counted
from leads import pricing, ranking
from leads.models import Lead, LeadEvent, LedgerEntry
from leads.selectors import contractor_cap_usage
from leads.services.billing import balance_held_tell, money_rooms
from territories.models import Territory


@dataclass(frozen=True)
class RoutingSummary:
    assigned: int
    by_contractor: dict[int, int] = field(default_factory=dict)
    waiting: int = 0  # leads left in the pool of the ZIPs looked at
    held: dict[int, int] = field(default_factory=dict)  # per prepaid owner: leads its balance held back

    def __str__(self) -> str:
        contractors = counted(len(self.by_contractor), "contractor")
        text = f"{counted(self.assigned, 'lead')} assigned to {contractors}, {self.waiting:,} in the pool"
        if self.held:
            text += f" ({counted(sum(self.held.values()), 'lead')} held back for prepaid balance)"
        return text


def _pool_filter(trade_ids: list[int] | None, zip_codes: list[str] | None) -> tuple[str, dict[str, Any]]:
    where = ""
    params: dict[str, Any] = {}
    if trade_ids is not None:
        where += " AND l.trade_id = ANY(%(trade_ids)s)"
        params["trade_ids"] = trade_ids
    if zip_codes is not None:
        where += " AND l.zip_code = ANY(%(zip_codes)s)"
        params["zip_codes"] = zip_codes
    return where, params


@transaction.atomic
def leads_route(
    *,
    trade_ids: Iterable[int] | None = None,
    zip_codes: Iterable[str] | None = None,
    contractor_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> RoutingSummary:
    """Assign the pool's leads (of these trades / ZIPs / owners; all by default) to their owners."""
    now = now or timezone.now()
    lead, territory, event = Lead._meta.db_table, Territory._meta.db_table, LeadEvent._meta.db_table
    ledger = LedgerEntry._meta.db_table
    trade_list = sorted(set(trade_ids)) if trade_ids is not None else None
    zip_list = sorted(set(zip_codes)) if zip_codes is not None else None
    where, params = _pool_filter(trade_list, zip_list)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT DISTINCT t.contractor_id FROM {territory} t
            WHERE t.ended_at IS NULL AND EXISTS (
                SELECT 1 FROM {lead} l
                WHERE l.state = 'generated' AND l.trade_id = t.trade_id AND l.zip_code = t.zip_code {where})
            """,
            params,
        )
        owners = {row[0] for row in cursor.fetchall()}
    if contractor_ids is not None:
        owners &= set(contractor_ids)
    # The lock that makes caps and prepaid balances safe; a paused or suspended owner gets nothing and its
    # leads wait.
    locked = list(Contractor.objects.receiving_assignments().select_for_update().filter(pk__in=owners).order_by("pk"))
    ids = [contractor.pk for contractor in locked]
    usage = contractor_cap_usage(contractor_ids=ids, now=now)
    money = money_rooms(contractors=locked)
    by_contractor: dict[int, int] = {}
    held: dict[int, int] = {}
    if locked:
        params |= {
            "ids": ids,
            "rooms": [usage[pk].room for pk in ids],
            "money": [money[pk] for pk in ids],
            "now": now,
            "due": now + dt.timedelta(hours=settings.LEAD_ACCEPT_SLA_HOURS),
        }
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH room AS (
                    SELECT * FROM unnest(%(ids)s::bigint[], %(rooms)s::int[], %(money)s::numeric[])
                        AS r(contractor_id, room, money)
                ),
                {pricing.IN_FORCE_SQL},
                pool AS (
                    SELECT l.id, t.contractor_id, l.trade_id, l.score, l.urgent, l.exploration, row_number() OVER (
                               PARTITION BY t.contractor_id ORDER BY {ranking.routing_order_sql("l")}) AS n
                    FROM {lead} l
                    JOIN {territory} t
                      ON t.trade_id = l.trade_id AND t.zip_code = l.zip_code AND t.ended_at IS NULL
                    JOIN room r ON r.contractor_id = t.contractor_id
                    WHERE l.state = 'generated' {where}
                ),
                chosen AS (  -- within the caps, priced
                    SELECT p.id, p.contractor_id, p.n, r.money, {pricing.price_sql("p")} AS price
                    FROM pool p JOIN room r ON r.contractor_id = p.contractor_id
                    WHERE r.room IS NULL OR p.n <= r.room
                ),
                paid AS (  -- and, for a prepaid owner, what it can pay for, best first (prices are never negative)
                    SELECT c.id, c.contractor_id, c.price, c.money IS NULL OR sum(coalesce(c.price, 0)) OVER (
                               PARTITION BY c.contractor_id ORDER BY c.n) <= c.money AS fits
                    FROM chosen c
                ),
                moved AS (
                    UPDATE {lead} l
                    SET state = 'assigned', contractor_id = a.contractor_id, assigned_at = %(now)s,
                        expires_at = %(due)s, price = a.price
                    FROM paid a
                    WHERE l.id = a.id AND a.fits AND l.state = 'generated'
                    RETURNING l.id, l.contractor_id, l.price
                ),
                logged AS (
                    INSERT INTO {event} (lead_id, action, from_state, to_state, actor, contractor_id, reason,
                                         override, at)
                    SELECT id, 'assign', 'generated', 'assigned', 'system', contractor_id, '', false, %(now)s
                    FROM moved
                ),
                charged AS (
                    INSERT INTO {ledger} (contractor_id, kind, amount, at, lead_id, assigned_at, note)
                    SELECT contractor_id, 'lead_charge', price, %(now)s, id, %(now)s, '' FROM moved
                    WHERE price IS NOT NULL
                )
                SELECT contractor_id, 'assigned', count(*) FROM moved GROUP BY contractor_id
                UNION ALL
                SELECT contractor_id, 'held', count(*) FROM paid WHERE NOT fits GROUP BY contractor_id
                """,
                params,
            )
            for contractor_id, outcome, count in cursor.fetchall():
                (by_contractor if outcome == "assigned" else held)[contractor_id] = count
        usage_bump(by_contractor)  # their cached cap usage, once this commits
        for contractor in locked:
            if contractor.pk in held:  # prepaid: told what its balance held back
                balance_held_tell(contractor=contractor, held=held[contractor.pk], now=now)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {lead} l WHERE l.state = 'generated' {where}", params)
        (waiting,) = cursor.fetchone()
    return RoutingSummary(sum(by_contractor.values()), by_contractor, waiting, held)


def leads_route_territories(*, territories: Iterable[Territory]) -> RoutingSummary:
    """Route the pool of these territories' (ZIP, trade) pairs to their new owners: what every way of
    getting a territory (claim, transfer, waitlist) calls once the ownership has committed."""
    summaries = []
    by_trade: dict[int, set[str]] = {}
    for territory in territories:
        by_trade.setdefault(territory.trade_id, set()).add(territory.zip_code_id)
    for trade_id, zip_codes in sorted(by_trade.items()):
        summaries.append(leads_route(trade_ids=[trade_id], zip_codes=zip_codes))
    by_contractor: dict[int, int] = {}
    for summary in summaries:
        for contractor_id, count in summary.by_contractor.items():
            by_contractor[contractor_id] = by_contractor.get(contractor_id, 0) + count
    return RoutingSummary(
        sum(summary.assigned for summary in summaries), by_contractor, sum(summary.waiting for summary in summaries)
    )
