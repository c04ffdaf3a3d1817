"""Lead generation: each day the best scored properties of a trade that pass its filters become leads.

One INSERT ... SELECT per trade, with the event of every new lead written by the same statement. The
candidates are the trade's current scores that pass the filters (LeadFilter), minus properties with an
open lead or a lead in the cooldown (index lead_property_history) and do-not-contact matches (unique
index of leads_suppression on kind, value). They are ranked (leads.ranking); the per-ZIP daily limit
keeps the best of each ZIP, counting the leads that ZIP already got today (index lead_generated_day).

How many: with a volume target (LeadFilter.capacity_factor), as many as the ZIPs' owners can take and a
daily allowance for the ZIPs nobody owns (lead_volume_targets), best first in each; without one, every
candidate at or above the minimum score. While the trade runs a challenger version, its share of the
properties gets its share of each target. Then, with an exploration share, a few leads are drawn at
random from the candidates left below the cut (leads_explore), so that outcomes are also known there.

Running it again the same day makes nothing new: every property that got a lead is in its cooldown
(at least a day), and the targets count the day's leads. Two generations of one trade never interleave
(transaction advisory lock), so the per-ZIP limit and the targets hold; the partial unique index
one_open_per_property makes a second open lead for a property impossible whatever happens.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Count
from django.utils import timezone

from contractors.models import Contractor
from core import locks
from core.statistics import analyze_if_stale
from core.text import counted
from leads import ranking
from leads.models import SUPPRESSION_NORMALIZE_SQL, Lead, LeadEvent, LeadFilter, Suppression
from leads.selectors import contractor_cap_usage
from leads.services.filters import lead_filter_for
from scoring.challengers import challenger_share_sql
from scoring.models import Property, Score, ScoringModel, Trade, score_band
from territories.models import Territory

ANALYZE_AFTER = 10_000  # leads made in one generation that refresh the lead table's planner statistics

# Targets are per group of candidates: an owner's ZIPs (the group is its contractor id) or POOL (the ZIPs
# nobody owns; every ZIP under an explicit limit), each split in two arms, the properties in the
# challenger's share and the others. A target's key is group * 2 + arm (1: the challenger's share).
POOL = 0
CHAMPION, CHALLENGER = 0, 1


def target_key(group: int, arm: int) -> int:
    return group * 2 + arm


@dataclass(frozen=True)
class VolumeTargets:
    """How many leads a generation still aims at, best first, by target key (target_key)."""

    by_key: dict[int, int]
    owned: int = 0  # of which in owned ZIPs
    pool: int = 0  # of which in the pool's ZIPs (or everywhere, under an explicit limit)
    owners: tuple[int, ...] = ()  # the owners whose ZIPs are generated in (ZIPs of others get nothing)

    @property
    def total(self) -> int:
        return sum(self.by_key.values())


@dataclass(frozen=True)
class GenerationSummary:
    trade: Trade
    created: int  # every new lead, exploration included
    skipped: str = ""  # why nothing was tried (filters disabled)
    exploration: int = 0  # of `created`, drawn at random from below the cut
    owned_target: int | None = None  # the volume target in owned ZIPs; None: no volume target
    pool_target: int | None = None  # and in the ZIPs nobody owns

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.trade.slug}: skipped, {self.skipped}"
        text = f"{self.trade.slug}: {counted(self.created, 'new lead')}"
        if self.exploration:
            text += f" ({self.exploration:,} for exploration)"
        if self.owned_target is not None:
            text += f"; targets {self.owned_target:,} in owned ZIPs, {self.pool_target:,} in the pool"
        return text


def _challenger_split(gross: dict[int, int], share: float | None) -> dict[int, int]:
    """Targets by key from targets by group: the challenger's arm gets `share` of the groups' total, spread
    over the groups by largest remainder (rounding each small group down would starve it), the champion
    the rest of each group."""
    if not share:
        return {target_key(group, CHAMPION): n for group, n in gross.items()}
    exact = {group: n * share for group, n in gross.items()}
    challenger = {group: math.floor(value) for group, value in exact.items()}
    spare = math.floor(sum(exact.values()) + 0.5) - sum(challenger.values())
    for group in sorted(exact, key=lambda g: (challenger[g] - exact[g], g))[:spare]:
        challenger[group] += 1
    by_key = {}
    for group, n in gross.items():
        by_key[target_key(group, CHALLENGER)] = challenger[group]
        by_key[target_key(group, CHAMPION)] = n - challenger[group]
    return by_key


def _arm_sql(property_column: str, share: float | None) -> str:
    return f"({challenger_share_sql(property_column)})::int" if share else "0"


def lead_volume_targets(
    *, trade: Trade, lead_filter: LeadFilter, now: dt.datetime, challenger_share: float | None = None
) -> VolumeTargets:
    """How many leads today's generation of `trade` aims at, best first: the volume rule, in one place.

    Leads are worth making only where someone will buy them. In owned ZIPs that is each owner's remaining
    room under its caps now (CapUsage.room), times capacity_factor: a little more than the room, so that
    routing still picks the best and a returned lead has a successor. An owner without caps counts
    uncapped_leads_per_zip per ZIP it owns. Only owners that receive assignments count; the ZIPs of a
    paused or suspended owner get no leads, which would only wait for it and expire. Each owner's target
    is for its own ZIPs, so one owner's good ZIPs do not take the volume another owner has room for.
    Minus what already waits for the owner, its ZIPs' leads still in the pool (so yesterday's unrouted
    leads count against today's), and for an owner without caps, whose room routing never lowers, also
    its ZIPs' leads made today: a second run the same day makes nothing more. In the ZIPs nobody owns
    (sold by staff from the pool): pool_leads_per_day, minus the leads made there today.

    With a challenger version (`challenger_share`), the properties in its share get that share of each
    target (_challenger_split), so each version's leads are picked best first by its own scores.
    """
    factor = lead_filter.capacity_factor
    if factor is None:
        raise ValueError("the trade's filters set no volume target (capacity_factor is blank)")
    zips_by_owner = dict(
        Territory.objects.active()
        .filter(trade=trade, contractor__in=Contractor.objects.receiving_assignments())
        .values_list("contractor_id")
        .annotate(zips=Count("id"))
        .order_by()
    )
    usage = contractor_cap_usage(contractor_ids=zips_by_owner, now=now)
    gross, uncapped = {}, set()
    for owner, zips in sorted(zips_by_owner.items()):
        room = usage[owner].room
        if room is None:
            room = lead_filter.uncapped_leads_per_zip * zips
            uncapped.add(owner)
        gross[owner] = math.floor(room * factor)
    by_key = _challenger_split(gross, challenger_share) | _challenger_split(
        {POOL: lead_filter.pool_leads_per_day}, challenger_share
    )
    lead, territory = Lead._meta.db_table, Territory._meta.db_table
    with connection.cursor() as cursor:
        # The day's leads (index lead_generated_day) and the pool's (index lead_pool), by owner of their ZIP.
        cursor.execute(
            f"""
            SELECT t.contractor_id, {_arm_sql("l.property_id", challenger_share)},
                   count(*) FILTER (WHERE l.state = 'generated'), count(*) FILTER (WHERE l.generated_on = %(today)s),
                   count(*)
            FROM {lead} l
            LEFT JOIN {territory} t ON t.zip_code = l.zip_code AND t.trade_id = l.trade_id AND t.ended_at IS NULL
            WHERE l.trade_id = %(trade)s AND (l.generated_on = %(today)s OR l.state = 'generated')
            GROUP BY 1, 2
            """,
            {"trade": trade.pk, "today": timezone.localdate(now), "challenger_share": challenger_share},
        )
        for owner, arm, waiting, today, either in cursor.fetchall():
            key = target_key(POOL if owner is None else owner, arm)
            if key in by_key:
                already = today if owner is None else either if owner in uncapped else waiting
                by_key[key] = max(by_key[key] - already, 0)
    pool = sum(by_key[target_key(POOL, arm)] for arm in (CHAMPION, CHALLENGER) if target_key(POOL, arm) in by_key)
    return VolumeTargets(by_key, owned=sum(by_key.values()) - pool, pool=pool, owners=tuple(gross))


def _limit_targets(limit: int, challenger_share: float | None) -> VolumeTargets:
    """An explicit limit: one target over every ZIP, split with the challenger like any other."""
    by_key = _challenger_split({POOL: limit}, challenger_share)
    return VolumeTargets(by_key, pool=limit)


def _normalized(column: str) -> str:
    return SUPPRESSION_NORMALIZE_SQL.format(column)


def _candidates_sql(
    lead_filter: LeadFilter,
    *,
    draw: bool,
    windowed: bool,
    suppressed_kinds: set[str],
    scoped: bool,
    properties_only: bool = False,
) -> str:
    """The CTEs `scored` and `candidates` (see generation_sql); `windowed`, only the best %(window)s scores.
    Each candidate carries `grp`, its target group: `scoped`, the owner of its ZIP among %(owners)s, POOL
    for a ZIP nobody owns, NULL for the ZIP of another owner; else POOL.

    `draw`: exploration's population instead, every score of the trade whatever the minimum score, in ZIPs
    nobody owns or owned by one of %(owners)s when `scoped`; the leads that block a property and the ZIPs
    of other owners are then read once into hashed subplans, not probed for each of 100,000s of scores.
    `properties_only`: only the scores of the properties %(properties)s.
    """
    score, prop, lead = Score._meta.db_table, Property._meta.db_table, Lead._meta.db_table
    suppression, territory = Suppression._meta.db_table, Territory._meta.db_table
    open_states = ", ".join(f"'{state}'" for state in Lead.OPEN)
    # Reads index score_trade_band (trade, score band) for the score range, then lead_property_history.
    score_where = ["s.trade_id = %(trade)s"]
    scores = f"{score} s"
    if properties_only:
        # A signal's generation (the storm fast path): only the properties just rescored, each probed by the
        # unique index on (property_id, trade_id); = ANY() would scan the array for every score of the trade.
        scores = f"unnest(%(properties)s::bigint[]) AS touched(id) JOIN {score} s ON s.property_id = touched.id"
    if not draw:
        score_where += ["s.score_band >= %(min_band)s", "s.score >= %(min_score)s"]
    if lead_filter.min_urgency is not None:
        score_where.append("s.urgency >= %(min_urgency)s")
    # A lead of the property in the cooldown, or still open, blocks a new one.
    blocking = f"l.trade_id = %(trade)s AND (l.created_at >= %(cooldown_start)s OR l.state IN ({open_states}))"
    if draw:
        score_where.append(f"s.property_id NOT IN (SELECT l.property_id FROM {lead} l WHERE {blocking})")
    else:
        score_where.append(f"NOT EXISTS (SELECT 1 FROM {lead} l WHERE l.property_id = s.property_id AND {blocking})")
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
    group = f"{POOL} AS grp"
    if scoped and draw:
        property_where.append(
            f"""p.zip_code NOT IN (SELECT t.zip_code FROM {territory} t WHERE t.trade_id = %(trade)s
                AND t.ended_at IS NULL AND NOT t.contractor_id = ANY(%(owners)s))"""
        )
    elif scoped:
        # Probed per candidate by the unique index one_active_owner (zip_code, trade), as a scalar subquery:
        # joined, the planner scans every territory of the trade for each candidate (3 s for 6,000). The
        # aggregate always answers: 0 (POOL) when nobody owns the ZIP, -1 (then NULL) for an owner that
        # receives nothing.
        group = f"""nullif((
                SELECT coalesce(max(CASE WHEN t.contractor_id = ANY(%(owners)s) THEN t.contractor_id ELSE -1 END),
                                {POOL})
                FROM {territory} t
                WHERE t.zip_code = p.zip_code AND t.trade_id = %(trade)s AND t.ended_at IS NULL), -1) AS grp"""
    window = f"ORDER BY {ranking.order_sql('x')} LIMIT %(window)s" if windowed else ""
    return f"""
        scored AS (
            SELECT * FROM (
                SELECT s.id AS score_id, s.property_id, s.score, s.urgency,
                       {ranking.priority_sql("s.score", "s.urgency")} AS priority
                FROM {scores}
                WHERE {" AND ".join(score_where)}
            ) x
            {{window}}
        ),
        candidates AS (
            SELECT c.*, p.zip_code, {group} FROM scored c JOIN {prop} p ON p.id = c.property_id
            WHERE {" AND ".join(property_where)}
        )""".replace("{window}", window)


def _insert_sql(source: str, *, exploration: bool) -> str:
    """The CTEs `made` and `logged`: a lead and its event for each row of `source` (score_id, property_id,
    zip_code, score, urgency, priority; and draw_weight for exploration), reading the score's reasons and
    model by its primary key."""
    score, lead, event, model = (
        Score._meta.db_table,
        Lead._meta.db_table,
        LeadEvent._meta.db_table,
        ScoringModel._meta.db_table,
    )
    weight = "c.draw_weight" if exploration else "1"
    return f"""
        made AS (
            INSERT INTO {lead} (property_id, trade_id, zip_code, state, score, urgency, priority, model_id,
                                model_version, reasons, generated_on, created_at, expires_at, return_reason,
                                return_note, exploration, sampling_weight, urgent)
            SELECT c.property_id, %(trade)s, c.zip_code, %(state)s, c.score, c.urgency, c.priority, s.model_id,
                   m.version, s.reasons, %(today)s, %(now)s, %(expires)s, '', '', {str(exploration).lower()}, {weight},
                   coalesce(c.urgency >= %(urgent_at)s, false)
            FROM {source} c
            JOIN {score} s ON s.id = c.score_id
            JOIN {model} m ON m.id = s.model_id
            ON CONFLICT DO NOTHING
            RETURNING id
        ),
        logged AS (
            INSERT INTO {event} (lead_id, action, from_state, to_state, actor, reason, override, at)
            SELECT id, 'generate', '', %(state)s, %(actor)s, '', false, %(now)s FROM made
        )"""


def generation_sql(
    lead_filter: LeadFilter,
    *,
    windowed: bool,
    suppressed_kinds: set[str],
    scoped: bool = False,
    challenger: bool = False,
    properties_only: bool = False,
) -> str:
    """The statement. It returns (leads made, scores looked at, {target key: leads chosen}).

    `scored`: the trade's scores that pass the score filters and whose property has no open lead and
    none in the cooldown, best first; `windowed` (there are targets), only the first %(window)s of them
    (see leads_generate). `candidates`: those whose property passes the property filters and the
    do-not-contact list. Then the per-ZIP limit, and with targets, the best of each target's group and
    arm, as many as its target (%(keys)s, %(targets)s). Only what ranking needs goes through the sorts;
    the winners' reasons and model are read back by the score's primary key at insert time.
    """
    lead = Lead._meta.db_table
    candidates = _candidates_sql(
        lead_filter,
        draw=False,
        windowed=windowed,
        suppressed_kinds=suppressed_kinds,
        scoped=scoped,
        properties_only=properties_only,
    )
    arm = f"({challenger_share_sql('c.property_id')})::int" if challenger else "0"
    keyed = f"SELECT c.*, c.grp * 2 + {arm} AS key FROM candidates c"
    if lead_filter.max_per_zip_per_day is not None:
        zipped = f"""
            ranked AS (
                SELECT c.*, row_number() OVER (PARTITION BY c.zip_code ORDER BY {ranking.order_sql("c")}) AS zip_rank
                FROM ({keyed}) c
            ),
            today AS (
                SELECT zip_code, count(*) AS made FROM {lead}
                WHERE trade_id = %(trade)s AND generated_on = %(today)s GROUP BY zip_code
            ),
            zipped AS (
                SELECT r.* FROM ranked r LEFT JOIN today t ON t.zip_code = r.zip_code
                WHERE r.zip_rank <= %(zip_limit)s - coalesce(t.made, 0)
            )"""
    else:
        zipped = f"zipped AS ({keyed})"
    if windowed:
        chosen = f"""
            grouped AS (
                SELECT z.*, row_number() OVER (PARTITION BY z.key ORDER BY {ranking.order_sql("z")}) AS key_rank
                FROM zipped z WHERE z.key IS NOT NULL
            ),
            chosen AS (
                SELECT g.* FROM grouped g
                WHERE g.key_rank <= coalesce((%(targets)s::int[])[array_position(%(keys)s::bigint[], g.key)], 0)
                ORDER BY {ranking.order_sql("g")}
            )"""
    else:
        chosen = f"chosen AS (SELECT z.* FROM zipped z ORDER BY {ranking.order_sql('z')})"
    return f"""
        WITH {candidates},
        {zipped},
        {chosen},
        {_insert_sql("chosen", exploration=False)}
        SELECT (SELECT count(*) FROM made), (SELECT count(*) FROM scored),
               (SELECT coalesce(json_object_agg(key, n), '{{}}') FROM (
                    SELECT key, count(*) AS n FROM chosen GROUP BY key) k)
    """


def exploration_sql(lead_filter: LeadFilter, *, suppressed_kinds: set[str], scoped: bool) -> str:
    """The exploration statement: of the trade's candidates left after the day's leads (every filter,
    the cooldown, the do-not-contact list and open leads still apply; not the minimum score nor the
    targets; with targets, not the ZIPs of owners that receive nothing), %(draws)s drawn by a hash of the
    property, the trade and the day, each weighted by candidates / draws. It returns (leads made, pool)."""
    candidates = _candidates_sql(
        lead_filter, draw=True, windowed=False, suppressed_kinds=suppressed_kinds, scoped=scoped
    )
    draw_order = "md5(p.property_id::text || ':' || %(trade)s::text || ':' || %(today)s::text)"
    return f"""
        WITH {candidates},
        pool AS (SELECT c.*, count(*) OVER () AS size FROM candidates c),
        drawn AS (
            SELECT p.*, p.size::float8 / least(%(draws)s, p.size) AS draw_weight
            FROM pool p ORDER BY {draw_order}, p.property_id LIMIT %(draws)s
        ),
        {_insert_sql("drawn", exploration=True)}
        SELECT (SELECT count(*) FROM made), coalesce((SELECT max(size) FROM pool), 0)
    """


def exploration_draws(*, made: int, share: float) -> int:
    """How many exploration leads go with `made` best-first leads: `share` of all the day's leads."""
    if not 0 <= share < 1:
        raise ValueError("the exploration share must be at least 0 and below 1")
    return math.floor(made * share / (1 - share) + 0.5)


def leads_generate(
    *,
    trade: Trade,
    limit: int | None = None,
    now: dt.datetime | None = None,
    property_ids: Sequence[int] | None = None,
) -> GenerationSummary:
    """Make today's new leads of `trade` from its current scores: at most `limit`, best first; without a
    limit, up to the filters' volume target (lead_volume_targets), or every candidate at or above the
    minimum score when they set none. Then the exploration leads (exploration_draws). One transaction;
    before it, the scores' and leads' planner statistics are refreshed if the night's writes left them
    stale (core.statistics).

    `property_ids`: a signal's generation (the storm fast path), of these properties only: every one of
    them that passes the filters becomes a lead, with no volume target and no exploration. The target is
    how many of the night's best the owners can use; a storm's homes are news of the day, and routing
    still holds each owner to its caps (what does not fit waits in the pool, best first). Exploration
    draws from the whole market, never from a storm's few homes, or its sampling weights would be wrong."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be 0 or more")
    if property_ids is None:
        analyze_if_stale(Score, Lead)
    return _generate(trade=trade, limit=limit, now=now or timezone.now(), property_ids=property_ids)


@transaction.atomic
def _generate(
    *, trade: Trade, limit: int | None, now: dt.datetime, property_ids: Sequence[int] | None = None
) -> GenerationSummary:
    lead_filter = lead_filter_for(trade=trade)
    if not lead_filter.enabled:
        return GenerationSummary(trade, 0, "lead generation is off in its filters")
    challenger_share = (
        ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.CHALLENGER)
        .values_list("challenger_share", flat=True)
        .first()
    )
    params: dict[str, Any] = {
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
        "challenger_share": challenger_share,
        "urgent_at": lead_filter.urgent_urgency,
        "properties": sorted({int(pk) for pk in property_ids}) if property_ids is not None else None,
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
        targets: VolumeTargets | None = None
        if property_ids is not None:
            pass  # every candidate of these properties (see leads_generate)
        elif limit is not None:
            targets = _limit_targets(limit, challenger_share)
        elif lead_filter.capacity_factor is not None:
            # Counted under the lock, so that a generation waiting for it sees the leads just made.
            targets = lead_volume_targets(
                trade=trade, lead_filter=lead_filter, now=now, challenger_share=challenger_share
            )
        scoped = limit is None and targets is not None
        params["owners"] = list(targets.owners) if targets is not None else []
        created = 0
        if targets is None or targets.total > 0:
            created = _generate_best_first(
                cursor, lead_filter, params, targets, suppressed_kinds=suppressed_kinds, scoped=scoped
            )
        explored = 0
        share = lead_filter.exploration_share if property_ids is None else 0
        draws = exploration_draws(made=created, share=share)
        if draws:
            # A draw over every candidate of the trade, not a slice: hash joins read them fastest.
            cursor.execute("SET LOCAL enable_hashjoin = on")
            sql = exploration_sql(lead_filter, suppressed_kinds=suppressed_kinds, scoped=scoped)
            cursor.execute(sql, params | {"draws": draws})
            explored, _ = cursor.fetchone()
        if created + explored >= ANALYZE_AFTER:
            # Fresh statistics for the routing that follows: planned with a table it believes empty (a
            # new market, or stats from before this insert), routing 100,000 leads takes minutes instead
            # of 3 s (a nested loop scanning the pool per lead). 0.1-0.2 s here.
            cursor.execute(f"ANALYZE {Lead._meta.db_table}")
    volume = targets is not None and limit is None
    return GenerationSummary(
        trade,
        created + explored,
        exploration=explored,
        owned_target=targets.owned if volume and targets is not None else None,
        pool_target=targets.pool if volume and targets is not None else None,
    )


def _generate_best_first(
    cursor: CursorWrapper,
    lead_filter: LeadFilter,
    params: dict[str, Any],
    targets: VolumeTargets | None,
    *,
    suppressed_kinds: set[str],
    scoped: bool,
) -> int:
    """The best-first leads: every candidate without targets; with them, as many as each target.

    With targets, only the best 2 x total + 1,000 scores are looked at: a lead's rank in its ZIP and in its
    target's group depends only on better scores, so the window's result is exact, and it meets the
    targets unless the filters refuse more than half of it or a group's candidates are further down. If it
    falls short while scores remain, the next pass looks at four times as many (the leads just made are
    then out, by the cooldown, and their targets reduced by them). 1,000 leads of a 1,000,000-property
    market: 0.2 s looking at all 30,000 candidates, 0.1 s so.
    """
    windowed = targets is not None
    sql = generation_sql(
        lead_filter,
        windowed=windowed,
        suppressed_kinds=suppressed_kinds,
        scoped=scoped,
        challenger=params["challenger_share"] is not None,
        properties_only=params["properties"] is not None,
    )
    remaining = dict(targets.by_key) if targets is not None else {}
    window = 2 * sum(remaining.values()) + 1_000 if windowed else None
    created = 0
    while True:
        keys = [key for key, n in remaining.items() if n > 0]
        cursor.execute(sql, params | {"window": window, "keys": keys, "targets": [remaining[key] for key in keys]})
        made, looked_at, chosen = cursor.fetchone()
        created += int(made)
        if window is None:
            return created
        for key, n in chosen.items():
            remaining[int(key)] -= n
        if sum(n for n in remaining.values() if n > 0) == 0 or looked_at < window:
            return created
        window *= 4


def leads_generate_all(
    *, trades: list[Trade] | None = None, limit: int | None = None, now: dt.datetime | None = None
) -> list[GenerationSummary]:
    """leads_generate for each trade (all of them by default), each in its own transaction."""
    trades = trades if trades is not None else list(Trade.objects.order_by("slug"))
    return [leads_generate(trade=trade, limit=limit, now=now) for trade in trades]
