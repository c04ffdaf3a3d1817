"""Lead generation: each day the best scored properties of a trade that pass its filters become leads.

One INSERT ... SELECT per trade, with the event of every new lead written by the same statement. The
candidates are the trade's current scores that pass the filters (LeadFilter), minus properties with an
open lead or a lead in the cooldown (index lead_property_history) and do-not-contact matches (unique
index of leads_suppression on kind, value). They are ranked (leads.ranking); the per-ZIP daily limit
keeps the best of each ZIP, counting the leads that ZIP already got today (index lead_generated_day).

Running it again the same day makes nothing new: every property that got a lead is in its cooldown
(at least a day). Two generations of one trade never interleave (transaction advisory lock), so the
per-ZIP limit holds; the partial unique index one_open_per_property makes a second open lead for a
property impossible whatever happens.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core import locks
from core.text import counted
from leads import ranking
from leads.models import SUPPRESSION_NORMALIZE_SQL, Lead, LeadEvent, LeadFilter, Suppression
from leads.services.filters import lead_filter_for
from scoring.models import Property, Score, ScoringModel, Trade, score_band

ANALYZE_AFTER = 10_000  # leads made in one generation that refresh the lead table's planner statistics


@dataclass(frozen=True)
class GenerationSummary:
    trade: Trade
    created: int
    skipped: str = ""  # why nothing was tried (filters disabled)

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.trade.slug}: skipped, {self.skipped}"
        return f"{self.trade.slug}: {counted(self.created, 'new lead')}"


def _normalized(column: str) -> str:
    return SUPPRESSION_NORMALIZE_SQL.format(column)


def generation_sql(lead_filter: LeadFilter, *, windowed: bool, suppressed_kinds: set[str]) -> str:
    """The statement. It returns (leads made, scores looked at).

    `scored`: the trade's scores that pass the score filters and whose property has no open lead and
    none in the cooldown, best first; `windowed`, only the first %(window)s of them (see leads_generate).
    `candidates`: those whose property passes the property filters and the do-not-contact list. Only
    what ranking needs goes through the sorts; the winners' reasons and model are read back by the
    score's primary key at insert time.
    """
    score, prop = Score._meta.db_table, Property._meta.db_table
    lead, event = Lead._meta.db_table, LeadEvent._meta.db_table
    suppression, model = Suppression._meta.db_table, ScoringModel._meta.db_table
    open_states = ", ".join(f"'{state}'" for state in Lead.OPEN)
    # Reads index score_trade_band (trade, score band) for the score range, then lead_property_history.
    score_where = ["s.trade_id = %(trade)s", "s.score_band >= %(min_band)s", "s.score >= %(min_score)s"]
    if lead_filter.min_urgency is not None:
        score_where.append("s.urgency >= %(min_urgency)s")
    score_where.append(
        f"""NOT EXISTS (
            SELECT 1 FROM {lead} l
            WHERE l.property_id = s.property_id AND l.trade_id = %(trade)s
              AND (l.created_at >= %(cooldown_start)s OR l.state IN ({open_states})))"""
    )
    property_where = ["TRUE"]
    if lead_filter.owner_occupied_only:
        property_where.append("p.owner_occupied")
    if lead_filter.property_types:
        property_where.append("p.property_type = ANY(%(types)s)")
    # Only kinds that have entries: normalizing every candidate's address costs 30 ms per 30,000.
    if Suppression.Kind.PARCEL in suppressed_kinds:
        property_where.append(
            f"""NOT EXISTS (SELECT 1 FROM {suppression} x WHERE x.kind = 'parcel'
                AND x.value = {_normalized("p.parcel_id")})"""
        )
    if Suppression.Kind.ADDRESS in suppressed_kinds:
        property_where.append(
            f"""NOT EXISTS (SELECT 1 FROM {suppression} x WHERE x.kind = 'address'
                AND x.value = {_normalized("p.address")} AND x.zip_code IN ('', p.zip_code))"""
        )
    if Suppression.Kind.OWNER in suppressed_kinds:
        property_where.append(
            f"""NOT EXISTS (SELECT 1 FROM {suppression} x WHERE x.kind = 'owner' AND p.owner_name <> ''
                AND x.value = {_normalized("p.owner_name")})"""
        )
    limit = "LIMIT %(limit)s" if windowed else ""
    if lead_filter.max_per_zip_per_day is not None:
        chosen = f"""
            ranked AS (
                SELECT c.*, row_number() OVER (PARTITION BY c.zip_code ORDER BY {ranking.order_sql("c")}) AS zip_rank
                FROM candidates c
            ),
            today AS (
                SELECT zip_code, count(*) AS made FROM {lead}
                WHERE trade_id = %(trade)s AND generated_on = %(today)s GROUP BY zip_code
            ),
            chosen AS (
                SELECT r.* FROM ranked r LEFT JOIN today t ON t.zip_code = r.zip_code
                WHERE r.zip_rank <= %(zip_limit)s - coalesce(t.made, 0)
                ORDER BY {ranking.order_sql("r")} {limit}
            )"""
    else:
        chosen = f"""
            chosen AS (SELECT c.* FROM candidates c ORDER BY {ranking.order_sql("c")} {limit})"""
    return f"""
        WITH scored AS (
            SELECT * FROM (
                SELECT s.id AS score_id, s.property_id, s.score, s.urgency,
                       {ranking.priority_sql("s.score", "s.urgency")} AS priority
                FROM {score} s
                WHERE {" AND ".join(score_where)}
            ) x
            {f"ORDER BY {ranking.order_sql('x')} LIMIT %(window)s" if windowed else ""}
        ),
        candidates AS (
            SELECT c.*, p.zip_code FROM scored c JOIN {prop} p ON p.id = c.property_id
            WHERE {" AND ".join(property_where)}
        ),
        {chosen},
        made AS (
            INSERT INTO {lead} (property_id, trade_id, zip_code, state, score, urgency, priority, model_id,
                                model_version, reasons, generated_on, created_at, expires_at, return_reason,
                                return_note)
            SELECT c.property_id, %(trade)s, c.zip_code, %(state)s, c.score, c.urgency, c.priority, s.model_id,
                   m.version, s.reasons, %(today)s, %(now)s, %(expires)s, '', ''
            FROM chosen c
            JOIN {score} s ON s.id = c.score_id
            JOIN {model} m ON m.id = s.model_id
            ON CONFLICT DO NOTHING
            RETURNING id
        ),
        logged AS (
            INSERT INTO {event} (lead_id, action, from_state, to_state, actor, reason, override, at)
            SELECT id, 'generate', '', %(state)s, %(actor)s, '', false, %(now)s FROM made
        )
        SELECT (SELECT count(*) FROM made), (SELECT count(*) FROM scored)
    """


@transaction.atomic
def leads_generate(*, trade: Trade, limit: int | None = None, now: dt.datetime | None = None) -> GenerationSummary:
    """Make today's new leads of `trade` (at most `limit`, best first) from its current scores."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be 0 or more")
    now = now or timezone.now()
    lead_filter = lead_filter_for(trade=trade)
    if not lead_filter.enabled:
        return GenerationSummary(trade, 0, "lead generation is off in its filters")
    params = {
        "trade": trade.pk,
        "min_score": lead_filter.min_score,
        "min_band": score_band(lead_filter.min_score),
        "min_urgency": lead_filter.min_urgency,
        "types": list(lead_filter.property_types),
        "zip_limit": lead_filter.max_per_zip_per_day,
        "cooldown_start": now - dt.timedelta(days=lead_filter.cooldown_days),
        "today": timezone.localdate(now),
        "now": now,
        "expires": now + dt.timedelta(days=settings.LEAD_POOL_DAYS),
        "state": Lead.State.GENERATED,
        "actor": LeadEvent.Actor.SYSTEM,
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [locks.LEAD_GENERATION, trade.pk])
        # The ranking sorts of 100,000s of candidates stay in memory.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        # Candidates are a slice of the market (30,000 of 1,000,000 properties at score 80): probing
        # properties, leads and the do-not-contact list by index for each is 0.2 s, where the hash joins
        # the planner prefers read all 1,000,000 properties (0.5 s). Measured with bench/leads.py.
        cursor.execute("SET LOCAL enable_hashjoin = off")
        cursor.execute("SET LOCAL enable_mergejoin = off")
        suppressed_kinds = set(Suppression.objects.values_list("kind", flat=True).distinct())
        # With a limit, only the best 2 x limit + 1,000 scores are looked at: a lead's rank in its ZIP
        # depends only on better scores, so the window's result is exact, and it holds the limit unless
        # the property filters refuse more than half of it. If it falls short while scores remain, the
        # next pass looks at four times as many (the leads just made are then out, by the cooldown).
        # 1,000 leads of a 1,000,000-property market: 0.2 s looking at all 30,000 candidates, 0.1 s so.
        windowed = limit is not None
        sql = generation_sql(lead_filter, windowed=windowed, suppressed_kinds=suppressed_kinds)
        created, window = 0, (2 * limit + 1_000) if limit is not None else None
        while True:
            cursor.execute(sql, params | {"limit": None if limit is None else limit - created, "window": window})
            made, looked_at = cursor.fetchone()
            created += made
            if limit is None or window is None or created >= limit or looked_at < window:
                break
            window *= 4
        if created >= ANALYZE_AFTER:
            # Fresh statistics for the routing that follows: planned with a table it believes empty (a
            # new market, or stats from before this insert), routing 100,000 leads takes minutes instead
            # of 3 s (a nested loop scanning the pool per lead). 0.1-0.2 s here.
            cursor.execute(f"ANALYZE {Lead._meta.db_table}")
    return GenerationSummary(trade, created)


def leads_generate_all(
    *, trades: list[Trade] | None = None, limit: int | None = None, now: dt.datetime | None = None
) -> list[GenerationSummary]:
    """leads_generate for each trade (all of them by default), each in its own transaction."""
    trades = trades if trades is not None else list(Trade.objects.order_by("slug"))
    return [leads_generate(trade=trade, limit=limit, now=now) for trade in trades]
