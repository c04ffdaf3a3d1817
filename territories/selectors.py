"""Reads of territories: the ownerships and waitlist places an API caller may see, coverage per trade (what
is sold, to whom, and what to sell next), the waitlist."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet

from contractors.caller import Caller, caller_rows
from contractors.models import Contractor
from scoring.models import Property, Score, Trade, ZipCode, score_band
from territories.models import ClaimRequest, Territory, WaitlistEntry

# Demand counts the properties whose current score for the trade is at least this. A default, not the
# trade's lead threshold: that is the leads app's quality filter (LeadFilter.min_score, 80 unless staff
# change it), which territories cannot read (leads depends on territories); callers that want it pass it.
DEFAULT_DEMAND_MIN_SCORE = 70.0
DEFAULT_UNOWNED_LIMIT = 50


def territories_visible(*, caller: Caller) -> QuerySet[Territory]:
    """Staff see every ownership; a contractor its own, current and past; anyone else none."""
    return caller_rows(Territory.objects.all(), caller=caller)


def waitlist_entries_visible(*, caller: Caller) -> QuerySet[WaitlistEntry]:
    """Staff see every place in line; a contractor its own; anyone else none."""
    return caller_rows(WaitlistEntry.objects.all(), caller=caller)


def claim_requests_visible(*, caller: Caller) -> QuerySet[ClaimRequest]:
    """Staff see every claim request; a contractor its own; anyone else none."""
    return caller_rows(ClaimRequest.objects.all(), caller=caller)


def demand_sql(*, per_trade: bool = False, of_zip_codes: bool = False) -> str:
    """Demand as coverage counts it, the one definition: per ZIP (`code`), the properties whose current score
    for the trade is at least %(min_score)s (%(min_band)s its score band: index score_trade_band), as
    `demand`. For the trade %(trade)s, or with `per_trade` for every trade (with its `trade_id`); with
    `of_zip_codes`, of the ZIPs %(codes)s only."""
    score, prop = Score._meta, Property._meta
    trade, code = score.get_field("trade").column, prop.get_field("zip_code").column
    keys = f"s.{trade} AS trade_id, p.{code} AS code" if per_trade else f"p.{code} AS code"
    where = "" if per_trade else f"AND s.{trade} = %(trade)s"
    if of_zip_codes:
        where += f" AND p.{code} = ANY(%(codes)s)"
    return f"""
        SELECT {keys}, count(*) AS demand
        FROM {score.db_table} s
        JOIN {prop.db_table} p ON p.{prop.pk.column} = s.{score.get_field("property").column}
        WHERE s.score_band >= %(min_band)s AND s.score >= %(min_score)s {where}
        GROUP BY {"1, 2" if per_trade else "1"}"""


def zip_demand(*, trade_id: int, zip_codes: list[str], min_score: float = DEFAULT_DEMAND_MIN_SCORE) -> dict[str, int]:
    """The demand of these ZIPs for a trade (demand_sql); a ZIP without any is left out (0)."""
    with connection.cursor() as cursor:
        cursor.execute(
            demand_sql(of_zip_codes=True),
            {"trade": trade_id, "min_band": score_band(min_score), "min_score": min_score, "codes": zip_codes},
        )
        return dict(cursor.fetchall())


@dataclass(frozen=True)
class CoverageRow:
    zip_code: str
    city: str
    state: str
    demand: int  # properties in the ZIP scoring at least min_score for the trade
    contractor_id: int | None  # the owner; None for an unowned ZIP
    contractor_name: str
    contractor_slug: str
    owned_since: dt.datetime | None


@dataclass(frozen=True)
class Coverage:
    """One trade's coverage: every owned ZIP (by code) and the unowned ZIPs with the most demand."""

    trade: Trade
    min_score: float
    owned: list[CoverageRow]
    unowned: list[CoverageRow]  # highest demand first, at most `limit`
    unowned_with_demand: int  # all unowned sellable ZIPs with any demand, beyond the limit too


def territory_coverage(
    *,
    trade: Trade,
    min_score: float = DEFAULT_DEMAND_MIN_SCORE,
    limit: int = DEFAULT_UNOWNED_LIMIT,
    state: str | None = None,
) -> Coverage:
    """Owned and unowned ZIPs of `trade` (optionally in one US state), with demand, in one query: the
    market as market_zips reads it, the owned ZIPs by code and the sellable unowned ones with demand, most
    first (at most `limit`)."""
    zips = market_zips(trade=trade, min_score=min_score, state=state)

    def row(zip_: MarketZip) -> CoverageRow:
        return CoverageRow(zip_.zip_code, zip_.city, zip_.state, zip_.demand, zip_.contractor_id,
                           zip_.contractor_name, zip_.contractor_slug, zip_.owned_since)  # fmt: skip

    owned = [row(zip_) for zip_ in zips if zip_.contractor_id is not None]
    unowned = sorted(
        (zip_ for zip_ in zips if zip_.contractor_id is None and zip_.sellable and zip_.demand),
        key=lambda zip_: (-zip_.demand, zip_.zip_code),
    )
    return Coverage(
        trade=trade,
        min_score=min_score,
        owned=owned,
        unowned=[row(zip_) for zip_ in unowned[:limit]],
        unowned_with_demand=len(unowned),
    )


def waitlist_line(*, trade: Trade, zip_code: str) -> list[WaitlistEntry]:
    """The open entries for a (ZIP, trade), first in line first."""
    return list(
        WaitlistEntry.objects.filter(trade=trade, zip_code_id=zip_code, status__in=WaitlistEntry.OPEN)
        .select_related("contractor")
        .order_by("joined_at", "pk")
    )


@dataclass(frozen=True)
class CoverageSummary:
    """One trade's coverage in numbers: the market's ZIPs (those with properties) it owns, those still
    free, and the free ones whose demand is high (at least `high_demand` properties scoring min_score+)."""

    trade_slug: str
    trade_name: str
    owned: int
    free: int
    free_high_demand: int


def territory_coverage_summary(
    *, min_score: float = DEFAULT_DEMAND_MIN_SCORE, high_demand: int = 10
) -> list[CoverageSummary]:
    """CoverageSummary of every trade, by name, in one statement: the market's ZIPs (a scan of properties
    grouped by ZIP), each trade's active territories (the one_active_owner index) and each trade's demand
    (scores at or above min_score through the score_trade_band index). ZIPs owned outside the market
    count as owned."""
    prop, territory = Property._meta, Territory._meta
    sql = f"""
        WITH market AS (
            SELECT DISTINCT p.{prop.get_field("zip_code").column} AS code FROM {prop.db_table} p
        ),
        demand AS ({demand_sql(per_trade=True)}),
        free AS (
            -- per pair, a probe of the one_active_owner index
            SELECT t.id AS trade_id, m.code
            FROM {Trade._meta.db_table} t CROSS JOIN market m
            WHERE NOT EXISTS (
                SELECT 1 FROM {territory.db_table} o
                WHERE o.{territory.get_field("zip_code").column} = m.code AND o.trade_id = t.id AND o.ended_at IS NULL
            )
        )
        SELECT t.slug, t.name,
               (SELECT count(*) FROM {territory.db_table} o WHERE o.trade_id = t.id AND o.ended_at IS NULL),
               count(f.code),
               count(f.code) FILTER (WHERE d.demand >= %(high_demand)s)
        FROM {Trade._meta.db_table} t
        LEFT JOIN free f ON f.trade_id = t.id
        LEFT JOIN demand d ON d.trade_id = f.trade_id AND d.code = f.code
        GROUP BY t.id, t.slug, t.name
        ORDER BY t.name
    """
    params = {
        "min_score": min_score,
        "min_band": score_band(min_score),
        "high_demand": high_demand,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [CoverageSummary(*row) for row in rows]


def coverage_default_trade() -> Trade | None:
    """The trade coverage opens on when none is asked for: the one with the most active territories (the
    business's main market), the first by name on a tie or when nothing is sold yet."""
    return (
        Trade.objects.annotate(owned=Count("territories", filter=Q(territories__ended_at__isnull=True)))
        .order_by("-owned", "name")
        .first()
    )


@dataclass(frozen=True)
class MarketZip:
    """A ZIP of one trade's market, as its map and the coverage table show it."""

    zip_code: str
    city: str
    state: str
    latitude: float
    longitude: float
    demand: int  # properties in the ZIP scoring at least min_score for the trade (demand_sql)
    contractor_id: int | None  # the owner; None for a free ZIP
    contractor_name: str
    contractor_slug: str
    waitlisted: int  # contractors in line (open waitlist entries)
    owned_since: dt.datetime | None
    sellable: bool  # the reference still sells it (active): a free ZIP that is not is listed only while waited for


def market_zips(
    *, trade: Trade, min_score: float = DEFAULT_DEMAND_MIN_SCORE, state: str | None = None
) -> list[MarketZip]:
    """Every ZIP of `trade`'s market (optionally in one US state), by code, in one query: the ZIPs with
    properties (the market) and those owned or waited for in the trade, each with its centroid, demand,
    owner and line. A free ZIP is listed only while the reference still sells it (active), as coverage's
    unowned ZIPs are; an owned or waited-for one always is."""
    prop, territory, entry = Property._meta, Territory._meta, WaitlistEntry._meta
    sql = f"""
        WITH demand AS ({demand_sql()}),
        owned AS (
            -- the one_active_owner index
            SELECT {territory.get_field("zip_code").column} AS code, contractor_id, started_at
            FROM {territory.db_table} WHERE trade_id = %(trade)s AND ended_at IS NULL
        ),
        line AS (
            SELECT {entry.get_field("zip_code").column} AS code, count(*) AS waiting FROM {entry.db_table}
            WHERE trade_id = %(trade)s AND status = ANY(%(open)s)
            GROUP BY 1
        ),
        codes AS (
            SELECT DISTINCT {prop.get_field("zip_code").column} AS code FROM {prop.db_table}
            UNION SELECT code FROM owned
            UNION SELECT code FROM line
        )
        SELECT z.code, z.city, z.state, z.latitude, z.longitude, coalesce(d.demand, 0), o.contractor_id,
               coalesce(k.name, ''), coalesce(k.slug, ''), coalesce(l.waiting, 0), o.started_at, z.active
        FROM codes c
        JOIN {ZipCode._meta.db_table} z ON z.code = c.code
        LEFT JOIN demand d ON d.code = c.code
        LEFT JOIN owned o ON o.code = c.code
        LEFT JOIN line l ON l.code = c.code
        LEFT JOIN {Contractor._meta.db_table} k ON k.id = o.contractor_id
        WHERE (%(state)s::text IS NULL OR z.state = %(state)s::text)
          AND (z.active OR o.contractor_id IS NOT NULL OR l.waiting IS NOT NULL)
        ORDER BY z.code
    """
    params: dict[str, Any] = {
        "trade": trade.pk,
        "min_score": min_score,
        "min_band": score_band(min_score),
        "open": list(WaitlistEntry.OPEN),
        "state": state,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [MarketZip(*row) for row in cursor.fetchall()]


OFFER_EXPIRING_HOURS = 24  # an open offer lapsing within this many hours needs a word with the contractor


def waitlist_offers_expiring(*, now: dt.datetime) -> QuerySet[WaitlistEntry]:
    """Open offers that lapse within OFFER_EXPIRING_HOURS of `now` (or are past due, for the offer expiry
    job to close), soonest first (index waitlist_offers_due)."""
    return WaitlistEntry.objects.filter(
        status=WaitlistEntry.Status.OFFERED, offer_expires_at__lt=now + dt.timedelta(hours=OFFER_EXPIRING_HOURS)
    ).order_by("offer_expires_at", "pk")
