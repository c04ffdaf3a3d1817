"""Lead quality: how each scoring model version's leads turned out, recorded as evaluation runs.

Over a period's leads whose outcome is known (leads.selectors.lead_outcomes_known: converted, or closed
without a sale once a contractor had it), per version that made them: the conversion rate, AUC with its
95% interval, the conversion and return rate by score decile, the top decile's lift, a calibration table
(the observed conversion rate per 10-point score band) and the conversion rate per reason. Every figure
weighs a lead by its sampling weight, so an exploration lead drawn from below the day's cut stands for the
homes it was drawn from (scoring.quality holds the figures themselves).

A figure that the leads cannot support yet (no conversion, every lead converted, fewer leads than
deciles) is None, and the run's figures say why under "missing". Each evaluation is a new row, so the
figures have a history: the daily "evaluation" job (leadengine.services.jobs) evaluates the last
EVALUATION_DAYS days of every version with known outcomes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from leads.errors import EvaluationRefused
from leads.selectors import lead_outcomes_known
from scoring import quality
from scoring.models import EvaluationRun, ScoringModel, Trade

EVALUATION_DAYS = 90  # the period the daily job evaluates: leads generated in the last this many days
AUC_LEVEL = 0.95
AUC_RESAMPLES = 200  # bootstrap resamples of the AUC's interval: its ends move by about 0.005 between seeds
BAND_POINTS = 10  # the calibration table's score bands

NO_OUTCOME = "no lead with a known outcome in the period"
NO_CONVERSION = "no conversion yet"
ALL_CONVERTED = "every lead converted: nothing to rank them against"
TOO_FEW_FOR_DECILES = f"fewer than {quality.DECILES} leads with a known outcome: too few for deciles"
NO_REASONS = "no lead carries a reason"


@dataclass(frozen=True)
class EvaluationFigures:
    """What an EvaluationRun records: its columns and its `figures` JSON."""

    outcomes: int
    conversions: int
    exploration_outcomes: int
    conversion_rate: float | None
    auc: float | None
    auc_low: float | None
    auc_high: float | None
    top_decile_lift: float | None
    figures: dict[str, Any]


def _rate(part: np.ndarray, weight: np.ndarray) -> float | None:
    total = float(weight.sum())
    return float((weight * part).sum() / total) if total > 0 else None


def _subset(label: np.ndarray, weight: np.ndarray, chosen: np.ndarray) -> dict[str, Any] | None:
    """Counts and weighted conversion rate of the `chosen` leads (exploration or best first); None for none."""
    if not chosen.any():
        return None
    return {
        "outcomes": int(chosen.sum()),
        "conversions": int(label[chosen].sum()),
        "weight": float(weight[chosen].sum()),
        "conversion_rate": _rate(label[chosen], weight[chosen]),
    }


def evaluation_figures(*, outcomes: pd.DataFrame) -> EvaluationFigures:
    """The figures of one version's leads with known outcomes (lead_outcomes_known's columns). Pure: no
    database, so a benchmark or a test can give it any frame."""
    count = len(outcomes)
    score = outcomes["score"].to_numpy(dtype=float)
    label = outcomes["converted"].to_numpy(dtype=float)
    returned = outcomes["returned"].to_numpy(dtype=float)
    weight = outcomes["sampling_weight"].to_numpy(dtype=float)
    exploration = outcomes["exploration"].to_numpy(dtype=bool)
    conversions = int(label.sum())
    missing: dict[str, str] = {}

    auc = interval = None
    if count == 0:
        missing["auc"] = NO_OUTCOME
    elif conversions == 0:
        missing["auc"] = NO_CONVERSION
    elif conversions == count:
        missing["auc"] = ALL_CONVERTED
    else:
        auc = quality.auc(score, label, weight)
        interval = quality.auc_interval(score, label, weight, resamples=AUC_RESAMPLES, level=AUC_LEVEL)

    deciles = lift = None
    if count < quality.DECILES:
        missing["deciles"] = NO_OUTCOME if count == 0 else TOO_FEW_FOR_DECILES
        missing["top_decile_lift"] = missing["deciles"]
    else:
        deciles = [asdict(decile) for decile in quality.deciles(score, label, weight, returned)]
        if conversions == 0:
            missing["top_decile_lift"] = NO_CONVERSION
        else:
            lift = quality.top_decile_lift(score, label, weight)

    calibration = None
    if count == 0:
        missing["calibration"] = NO_OUTCOME
    else:
        calibration = [asdict(band) for band in quality.calibration(score, label, weight, width=BAND_POINTS)]

    reasons = None
    features = [list(names or ()) for names in outcomes["reason_features"]]
    if count == 0:
        missing["reasons"] = NO_OUTCOME
    elif not any(features):
        missing["reasons"] = NO_REASONS
    else:
        reasons = [
            {"feature": group.name, "leads": group.leads, "weight": group.weight, "conversions": group.conversions,
             "conversion_rate": group.conversion_rate, "lift": group.lift}
            for group in quality.rates_by_group(features, label, weight)
        ]  # fmt: skip
    if count and conversions == 0:
        missing["reason_lift"] = NO_CONVERSION

    return EvaluationFigures(
        outcomes=count,
        conversions=conversions,
        exploration_outcomes=int(exploration.sum()),
        conversion_rate=_rate(label, weight),
        auc=auc,
        auc_low=interval[0] if interval else None,
        auc_high=interval[1] if interval else None,
        top_decile_lift=lift,
        figures={
            "weight": float(weight.sum()),
            "returns": int(returned.sum()),
            "return_rate": _rate(returned, weight),
            "auc_interval": {"level": AUC_LEVEL, "resamples": AUC_RESAMPLES, "method": "bootstrap"},
            "deciles": deciles,
            "calibration": calibration,
            "reasons": reasons,
            "best_first": _subset(label, weight, ~exploration),
            "exploration": _subset(label, weight, exploration),
            "missing": missing,
        },
    )


def _run_record(*, model: ScoringModel, first_day: dt.date, last_day: dt.date, outcomes: pd.DataFrame) -> EvaluationRun:
    figures = evaluation_figures(outcomes=outcomes)
    return EvaluationRun.objects.create(
        trade_id=model.trade_id, model=model, first_day=first_day, last_day=last_day, **vars(figures)
    )


def _period_check(first_day: dt.date, last_day: dt.date) -> None:
    if last_day < first_day:
        raise EvaluationRefused(f"The period ends ({last_day}) before it starts ({first_day}).")


@transaction.atomic
def model_evaluate(*, model: ScoringModel, first_day: dt.date, last_day: dt.date) -> EvaluationRun:
    """Evaluate `model`'s leads generated from `first_day` to `last_day` (inclusive) whose outcome is known,
    and record the run (a run with no outcome says so; its figures are None)."""
    _period_check(first_day, last_day)
    outcomes = lead_outcomes_known(
        trade_id=model.trade_id, first_day=first_day, last_day=last_day, model_ids=[model.pk]
    )
    return _run_record(model=model, first_day=first_day, last_day=last_day, outcomes=outcomes)


@transaction.atomic
def models_evaluate(
    *, trades: Iterable[Trade] | None = None, days: int = EVALUATION_DAYS, today: dt.date | None = None
) -> list[EvaluationRun]:
    """Evaluate every version of `trades` (None: every trade) that has leads with a known outcome among
    those generated in the last `days` days up to `today` (TIME_ZONE; default today): the active one, a
    challenger, and retired ones whose leads are still in the period. One run each, over the same period,
    so versions compare on equal terms; per trade by name, then by version. All runs or none (one
    transaction), so a job repeated after a lost connection records each once."""
    if days < 1:
        raise EvaluationRefused(f"The period is at least one day, not {days}.")
    last_day = today or timezone.localdate()
    first_day = last_day - dt.timedelta(days=days - 1)
    chosen = list(Trade.objects.order_by("name")) if trades is None else sorted(trades, key=lambda t: t.name)
    runs = []
    for trade in chosen:
        outcomes = lead_outcomes_known(trade_id=trade.pk, first_day=first_day, last_day=last_day)
        if outcomes.empty:
            continue
        by_model = dict(iter(outcomes.groupby("model_id", sort=False)))
        for model in ScoringModel.objects.select_related("trade").filter(pk__in=list(by_model)).order_by("version"):
            frame = by_model[model.pk].reset_index(drop=True)
            runs.append(_run_record(model=model, first_day=first_day, last_day=last_day, outcomes=frame))
    return runs
