"""Scores: computing them from property rows (pure), writing them, and rescoring one property.

score_properties is the one function from data to scores, shared by runs (scoring/services/runs.py),
the rescore of a property and the preview of a draft model; it reads nothing and writes nothing. It
also holds the split between a trade's active version and its challenger, so that a run, a rescore and
a preview give a property the same version's score.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.cache import SCORES, generation_bump
from scoring import engine, features, selectors
from scoring.bulk import copy_rows, id_range_plan
from scoring.challengers import in_challenger_share
from scoring.engine import FactorSpec
from scoring.models import Property, Score, ScoringModel, ScoringPartition
from scoring.services.scoring_models import scoring_model_check

HISTOGRAM_BINS = 1001  # 0.1-point bins: 0.0-0.1, ..., 99.9-100.0, and 100.0 itself
PERCENTILES = (5, 10, 25, 50, 75, 90, 95, 99)


def _histogram(score: np.ndarray) -> list[int]:
    bins = np.minimum((score * 10 + 1e-9).astype(np.int64), HISTOGRAM_BINS - 1)
    counts: list[int] = np.bincount(bins, minlength=HISTOGRAM_BINS).tolist()
    return counts


@dataclass(frozen=True)
class ScoreFigures:
    """What a distribution is summed from (see distribution_summary): how many scores, their sums and
    their 0.1-point histogram."""

    properties_scored: int
    score_sum: float
    urgency_sum: float
    histogram: list[int]

    @classmethod
    def of(cls, score: np.ndarray, urgency: np.ndarray) -> ScoreFigures:
        return cls(len(score), float(score.sum()), float(urgency.sum()), _histogram(score))

    def as_json(self) -> dict[str, Any]:
        return {
            "properties_scored": self.properties_scored,
            "score_sum": self.score_sum,
            "urgency_sum": self.urgency_sum,
            "histogram": self.histogram,
        }


@dataclass(frozen=True)
class Version:
    """A scoring model version as score_properties runs it: its id, its factors and the storms of its window."""

    model_id: int
    factors: Sequence[FactorSpec]
    storms: pd.DataFrame


@dataclass(frozen=True)
class Challenger:
    """The trade's challenger: it scores every property in shadow and writes the scores of its share."""

    version: Version
    share: float


@dataclass(frozen=True)
class PartitionScores:
    """What a partition computed: one row per property (property_id, score, urgency, reasons as JSON
    text, digest, model_id: the version that scored it) and which of them differ from the stored scores.
    With a challenger, `shadow` holds each version's figures over every property ("active", "challenger")."""

    rows: pd.DataFrame
    scored: np.ndarray  # bool per row: the property had a score for the trade when it was read
    stored: np.ndarray  # int64 per row: that score's digest (0 when none)
    changed: np.ndarray  # bool per row: the new score differs from that one (or there was none)
    shadow: dict[str, ScoreFigures] | None = None

    # The figures a partition keeps for its run's distribution (see distribution_summary).
    @property
    def properties_scored(self) -> int:
        return len(self.rows)

    @property
    def score_sum(self) -> float:
        return float(self.rows["score"].sum())

    @property
    def urgency_sum(self) -> float:
        return float(self.rows["urgency"].sum())

    @property
    def histogram(self) -> list[int]:
        return _histogram(self.rows["score"].to_numpy())


def score_properties(
    properties: pd.DataFrame,
    storms: pd.DataFrame,
    factors: Sequence[FactorSpec],
    *,
    as_of: dt.date,
    model_id: int,
    challenger: Challenger | None = None,
) -> PartitionScores:
    """Pure: property rows (with their stored digests) and storms in, score rows out; the same function
    for a run, a rescore and a preview.

    With a `challenger`, every property is scored by both versions (the challenger with the storms of its
    own window); the properties in the challenger's share (scoring.challengers.in_challenger_share) get
    the challenger's score, the others the active version's, and `shadow` keeps both versions' figures
    over every property. Reasons are rendered only for the version whose score a row keeps."""
    frame = features.property_features(properties, storms, as_of=as_of)
    result = engine.score_frame(frame, factors)
    ids = frame.index.to_numpy()
    shadow = None
    if challenger is None:
        score, urgency = result["score"].to_numpy(), result["urgency"].to_numpy()
        reasons = engine.reasons_json(result, factors, frame)
        models: int | np.ndarray = model_id
    else:
        other = challenger.version
        other_frame = (
            frame if other.storms is storms else features.property_features(properties, other.storms, as_of=as_of)
        )
        other_result = engine.score_frame(other_frame, other.factors)
        theirs = in_challenger_share(ids, challenger.share)
        score = np.where(theirs, other_result["score"].to_numpy(), result["score"].to_numpy())
        urgency = np.where(theirs, other_result["urgency"].to_numpy(), result["urgency"].to_numpy())
        reasons = np.empty(len(ids), dtype=object)
        ours = ~theirs
        reasons[ours] = engine.reasons_json(result[ours], factors, frame[ours])
        reasons[theirs] = engine.reasons_json(other_result[theirs], other.factors, other_frame[theirs])
        models = np.where(theirs, other.model_id, model_id).astype(np.int64)
        shadow = {
            "active": ScoreFigures.of(result["score"].to_numpy(), result["urgency"].to_numpy()),
            "challenger": ScoreFigures.of(other_result["score"].to_numpy(), other_result["urgency"].to_numpy()),
        }
    rows = pd.DataFrame({"property_id": ids, "score": score, "urgency": urgency, "reasons": reasons})
    # The digest covers the version, so a property that changes version is written again.
    rows["digest"] = pd.util.hash_pandas_object(rows[["score", "urgency", "reasons"]].assign(model=models), index=False)
    rows["digest"] = rows["digest"].to_numpy().view(np.int64)
    rows["model_id"] = models
    scored = properties["scored"].to_numpy(dtype=bool)
    stored = properties["digest"].to_numpy(dtype=np.int64)
    changed = ~scored | (rows["digest"].to_numpy() != stored)
    return PartitionScores(rows=rows, scored=scored, stored=stored, changed=changed, shadow=shadow)


def scores_write(*, scores: PartitionScores, trade_id: int, scored_at: dt.datetime, guard: bool = True) -> int:
    """Write the scores that changed, whole rows (each with the version that computed it), in the caller's
    transaction; returns how many were written.

    `scored_at` is when the caller began reading the data it scored from (before the storms and the
    properties): a stored score read from data no older (its scored_at later) is never replaced, so a
    night's run that read its storms before a storm was imported cannot overwrite the storm's rescoring,
    whichever writes last. With `guard`, also only if it is still the one read with the properties (same
    digest, or still absent): a score written in between is left alone. They are staged through COPY with
    the reasons as text, which PostgreSQL checks as JSON once per row written."""
    changed = scores.rows[scores.changed]
    if changed.empty:
        return 0
    table = Score._meta.db_table
    if not scores.scored.any():
        # None of these properties had a score (a new market, a new trade): straight into the table.
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                rows = changed.assign(trade_id=trade_id, scored_at=scored_at)
                copy_rows(cursor, table, rows)
            return len(rows)
        except IntegrityError:
            pass  # a rescore wrote one of them meanwhile: merge with what is there, below
    # The digest each row expects to replace; NULL where the property had no score.
    expected = pd.arrays.IntegerArray(scores.stored[scores.changed], ~scores.scored[scores.changed])
    stage = changed.assign(expected=expected)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS score_stage (property_id bigint, score double precision, "
            "urgency double precision, reasons text, digest bigint, model_id bigint, expected bigint) "
            "ON COMMIT DELETE ROWS"
        )
        copy_rows(cursor, "score_stage", stage)

        def values(source: str) -> str:
            return (
                f"model_id = {source}.model_id, score = {source}.score, urgency = {source}.urgency, "
                f"reasons = {source}.reasons::json, digest = {source}.digest, scored_at = %(at)s"
            )

        params: dict[str, Any] = {"trade": trade_id, "at": scored_at}
        if guard:
            # The partition's range of the unique index on (property_id, trade_id), merged with the stage.
            id_range_plan(cursor)
            params.update(first=int(changed["property_id"].min()), last=int(changed["property_id"].max()))
            cursor.execute(
                f"""UPDATE {table} t SET {values("s")} FROM score_stage s
                WHERE t.property_id BETWEEN %(first)s AND %(last)s AND t.trade_id = %(trade)s
                  AND t.property_id = s.property_id AND t.digest = s.expected AND t.scored_at <= %(at)s""",
                params,
            )
            written: int = cursor.rowcount
            cursor.execute(
                f"""INSERT INTO {table} (property_id, trade_id, model_id, score, urgency, reasons, digest, scored_at)
                SELECT property_id, %(trade)s, model_id, score, urgency, reasons::json, digest, %(at)s
                FROM score_stage WHERE expected IS NULL
                ON CONFLICT (property_id, trade_id) DO NOTHING""",
                params,
            )
            written += cursor.rowcount
        else:
            cursor.execute(
                f"""INSERT INTO {table} AS t (property_id, trade_id, model_id, score, urgency, reasons, digest,
                    scored_at)
                SELECT property_id, %(trade)s, model_id, score, urgency, reasons::json, digest, %(at)s
                FROM score_stage s
                ON CONFLICT (property_id, trade_id) DO UPDATE SET {values("EXCLUDED")}
                WHERE t.scored_at <= EXCLUDED.scored_at""",
                params,
            )
            written = cursor.rowcount
        cursor.execute("TRUNCATE score_stage")
    return written


def distribution_summary(partitions: Sequence[ScoringPartition | PartitionScores | ScoreFigures]) -> dict[str, Any]:
    """Mean score and urgency, percentiles (to the 0.1 point) and a 10-point histogram of the scores of
    `partitions` (stored partitions, scores just computed, or a version's figures)."""
    count = sum(p.properties_scored for p in partitions)
    if not count:
        return {"count": 0}
    histogram = np.sum([np.asarray(p.histogram, dtype=np.int64) for p in partitions if p.histogram], axis=0)
    cumulative = np.cumsum(histogram)
    percentiles = {
        f"p{q}": round(float(np.searchsorted(cumulative, q / 100 * count, side="left")) / 10, 1) for q in PERCENTILES
    }
    tens = [int(histogram[start : start + 100].sum()) for start in range(0, 1000, 100)]
    tens[-1] += int(histogram[1000])
    return {
        "count": count,
        "mean_score": round(sum(p.score_sum for p in partitions) / count, 2),
        "mean_urgency": round(sum(p.urgency_sum for p in partitions) / count, 2),
        **percentiles,
        "histogram": {f"{10 * i}-{10 * i + 10}": n for i, n in enumerate(tens)},
    }


def version_of(
    model: ScoringModel,
    *,
    as_of: dt.date,
    near: tuple[float, float, str] | None = None,
    storms: pd.DataFrame | None = None,
) -> Version:
    """`model` as score_properties runs it: its checked factors and the storms of its window (those
    `near` a point only, for one property); `storms` when the caller read them already for this window."""
    factors = scoring_model_check(model=model)
    if storms is None:
        storms = selectors.scoring_storms(as_of=as_of, window_days=model.storm_window_days, near=near)
    return Version(model_id=model.pk, factors=factors, storms=storms)


def challenger_of(
    challenger: ScoringModel | None, *, active: ScoringModel, active_version: Version, as_of: dt.date,
    near: tuple[float, float, str] | None = None,
) -> Challenger | None:  # fmt: skip
    """The trade's challenger as score_properties runs it beside `active` (None without one): with the
    active version's storms when both read the same window, so the storm features are computed once."""
    if challenger is None:
        return None
    same_window = challenger.storm_window_days == active.storm_window_days
    storms = active_version.storms if same_window else None
    return Challenger(
        version=version_of(challenger, as_of=as_of, near=near, storms=storms), share=challenger.challenger_share
    )


@transaction.atomic
def property_rescore(*, property_id: int, as_of: dt.date | None = None) -> list[Score]:
    """Score one property again for every trade with an active model, as a full run on the same day
    would (the same reads, the same function, the same version: the trade's challenger when the property
    is in its share); for a property whose data just changed."""
    as_of = as_of or timezone.localdate()
    home = Property.objects.select_related("zip_code").get(pk=property_id)
    latitude = home.latitude if home.latitude is not None else home.zip_code.latitude
    longitude = home.longitude if home.longitude is not None else home.zip_code.longitude
    near = (latitude, longitude, home.zip_code_id)
    now = timezone.now()  # before anything is read: the scores' scored_at (see scores_write)
    for model in ScoringModel.objects.filter(status=ScoringModel.Status.ACTIVE).select_related("trade"):
        active = version_of(model, as_of=as_of, near=near)
        challenger = challenger_of(
            selectors.trade_challenger(trade_id=model.trade_id), active=model, active_version=active, as_of=as_of,
            near=near,
        )  # fmt: skip
        properties = selectors.scoring_properties(
            trade_id=model.trade_id, first_id=property_id, last_id=property_id, as_of=as_of
        )
        scores = score_properties(
            properties, active.storms, active.factors, as_of=as_of, model_id=model.pk, challenger=challenger
        )
        # Unguarded by digest: these are the freshest data, whatever a run read before them.
        scores_write(scores=scores, trade_id=model.trade_id, scored_at=now, guard=False)
    generation_bump(SCORES)
    return list(Score.objects.filter(property_id=property_id).select_related("trade", "model"))
