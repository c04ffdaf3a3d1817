"""A scoring model tried on a sample of the market before it is activated: nothing is written.

Beside the model, the sample is scored with the trade's active version and its challenger (when they are
not the model itself), and with the split a run makes between them: the score each property has now."""

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
from scoring.services.scores import (
    PartitionScores,
    challenger_of,
    distribution_summary,
    score_properties,
    version_of,
)
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
    # The best-scored properties: property, score, urgency, reasons, active_score; while the trade runs a
    # challenger, also current_score and current_version: the score a run gives the property now and its version.
    top: list[dict[str, Any]]
    challenger: ScoringModel | None = None  # the trade's challenger when it is not `model`, scored on the sample
    challenger_distribution: dict[str, Any] | None = None
    current_distribution: dict[str, Any] | None = None  # the scores a run gives now (active, challenger's share)


def scoring_model_preview(
    *, model: ScoringModel, sample_size: int = PREVIEW_SAMPLE, top: int = PREVIEW_TOP, as_of: dt.date | None = None
) -> ScoringPreview:
    """Score a random sample of properties with `model` (any status) and, when it is not the active
    version, with the active one too (and with the trade's challenger, when it runs one): score
    distributions side by side and the best properties with their reasons. While the trade runs a
    challenger, each property's score now is the one a run gives it: the challenger's in its share (the
    same rule as runs and rescores). ValidationError when the model cannot be computed."""
    factors = scoring_model_check(model=model)
    as_of = as_of or timezone.localdate()
    sample = selectors.scoring_property_sample(trade_id=model.trade_id, size=sample_size, as_of=as_of)
    scores = _score(model, factors, sample, as_of)
    running = {
        version.status: version
        for version in ScoringModel.objects.filter(
            trade_id=model.trade_id, status__in=[ScoringModel.Status.ACTIVE, ScoringModel.Status.CHALLENGER]
        )
    }
    active = running.get(ScoringModel.Status.ACTIVE)
    challenger = running.get(ScoringModel.Status.CHALLENGER)
    current = _current(active, challenger, sample, as_of) if active and challenger else None
    active = active if active != model else None
    challenger = challenger if challenger != model else None
    active_scores = _score(active, scoring_model_check(model=active), sample, as_of) if active else None
    challenger_scores = _score(challenger, scoring_model_check(model=challenger), sample, as_of) if challenger else None

    rows = scores.rows.sort_values(["score", "urgency", "property_id"], ascending=[False, False, True]).head(top)
    homes = Property.objects.in_bulk(rows["property_id"].tolist())
    active_score = (
        dict(zip(active_scores.rows["property_id"], active_scores.rows["score"], strict=True))
        if active_scores is not None
        else {}
    )
    now = current.rows.set_index("property_id")[["score", "model_id"]].to_dict("index") if current is not None else {}
    versions = {version.pk: version.version for version in running.values()}
    best = [
        {
            "property": homes[row.property_id],
            "score": row.score,
            "urgency": row.urgency,
            "reasons": [reason["text"] for reason in json.loads(str(row.reasons))],
            "active_score": active_score.get(row.property_id),
            **(
                {
                    "current_score": now[row.property_id]["score"],
                    "current_version": versions[now[row.property_id]["model_id"]],
                }
                if row.property_id in now
                else {}
            ),
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
        challenger=challenger,
        challenger_distribution=distribution_summary([challenger_scores]) if challenger_scores is not None else None,
        current_distribution=distribution_summary([current]) if current is not None else None,
    )


def _score(model: ScoringModel, factors: Sequence[FactorSpec], sample: pd.DataFrame, as_of: dt.date) -> PartitionScores:
    storms = selectors.scoring_storms(as_of=as_of, window_days=model.storm_window_days)
    return score_properties(sample, storms, factors, as_of=as_of, model_id=model.pk)


def _current(active: ScoringModel, challenger: ScoringModel, sample: pd.DataFrame, as_of: dt.date) -> PartitionScores:
    """The sample as a run scores it now: the challenger's scores in its share, the active version's elsewhere."""
    version = version_of(active, as_of=as_of)
    split = challenger_of(challenger, active=active, active_version=version, as_of=as_of)
    return score_properties(sample, version.storms, version.factors, as_of=as_of, model_id=active.pk, challenger=split)
