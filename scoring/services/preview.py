"""A scoring model tried on a sample of the market before it is activated: nothing is written."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.utils import timezone

from scoring import selectors
from scoring.engine import FactorSpec
from scoring.models import Property, ScoringModel
from scoring.services.scores import PartitionScores, distribution_summary, score_properties
from scoring.services.scoring_models import scoring_model_check

PREVIEW_SAMPLE = 5000
PREVIEW_TOP = 25


@dataclass(frozen=True)
class ScoringPreview:
    model: ScoringModel
    active: ScoringModel | None  # the trade's active version, scored on the same sample for comparison
    as_of: dt.date
    sample_size: int
    distribution: dict[str, Any]
    active_distribution: dict[str, Any] | None
    top: list[dict[str, Any]]  # the best-scored properties: id, address, score, urgency, reasons, active_score


def scoring_model_preview(
    *, model: ScoringModel, sample_size: int = PREVIEW_SAMPLE, top: int = PREVIEW_TOP, as_of: dt.date | None = None
) -> ScoringPreview:
    """Score a random sample of properties with `model` (any status) and, when it is not the active
    version, with the active one too: score distributions side by side and the best properties with
    their reasons. ValidationError when the model cannot be computed."""
    factors = scoring_model_check(model=model)
    as_of = as_of or timezone.localdate()
    sample = selectors.scoring_property_sample(trade_id=model.trade_id, size=sample_size, as_of=as_of)
    scores = _score(model, factors, sample, as_of)
    active = (
        ScoringModel.objects.filter(trade_id=model.trade_id, status=ScoringModel.Status.ACTIVE)
        .exclude(pk=model.pk)
        .first()
    )
    active_scores = _score(active, scoring_model_check(model=active), sample, as_of) if active else None

    rows = scores.rows.sort_values(["score", "urgency", "property_id"], ascending=[False, False, True]).head(top)
    homes = Property.objects.in_bulk(rows["property_id"].tolist())
    active_score = (
        dict(zip(active_scores.rows["property_id"], active_scores.rows["score"], strict=True))
        if active_scores is not None
        else {}
    )
    best = [
        {
            "property": homes[row.property_id],
            "score": row.score,
            "urgency": row.urgency,
            "reasons": [reason["text"] for reason in json.loads(str(row.reasons))],
            "active_score": active_score.get(row.property_id),
        }
        for row in rows.itertuples(index=False)
    ]
    return ScoringPreview(
        model=model,
        active=active,
        as_of=as_of,
        sample_size=len(sample),
        distribution=distribution_summary([scores]),
        active_distribution=distribution_summary([active_scores]) if active_scores is not None else None,
        top=best,
    )


def _score(model: ScoringModel, factors: Sequence[FactorSpec], sample: pd.DataFrame, as_of: dt.date) -> PartitionScores:
    storms = selectors.scoring_storms(as_of=as_of, window_days=model.storm_window_days)
    return score_properties(sample, storms, factors, as_of=as_of, model_id=model.pk)
