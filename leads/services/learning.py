"""Learning a trade's scoring model from its leads' outcomes: a new draft version, backtested beside the
active one, activated only by staff or by the rule LEARN_AUTO_ACTIVATE allows.

The numbers are scoring.learning's (candidates, design matrix, non-negative fit) and scoring.quality's
(AUC, interval, lift); this service reads the outcomes (leads.selectors.lead_outcomes_known, the one
definition of a known outcome) and each lead's property as it stood on the day the lead was made, and
writes the draft.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from leads.errors import LearningRefused, NotEnoughOutcomes
from leads.selectors import lead_outcomes_known
from scoring import engine, quality
from scoring.engine import FactorSpec
from scoring.features import property_features
from scoring.learning import (
    WEIGHT_CAP,
    Candidate,
    backtest_beats_active,
    candidate_factors,
    design_matrix,
    fit_nonnegative,
    learning_weights,
)
from scoring.models import Factor, ScoringModel, Trade
from scoring.selectors import scoring_properties_of, scoring_storms
from scoring.services.scoring_models import scoring_model_activate, scoring_model_check


@dataclass(frozen=True)
class Learned:
    """What learning made: the draft (None when no factor pointed toward conversion, `why` says so), its
    backtest (ScoringModel.backtest's shape) and whether the draft was activated (`why` says why not)."""

    trade: Trade
    model: ScoringModel | None
    why: str
    backtest: dict[str, Any] = field(default_factory=dict)
    activated: bool = False

    def __str__(self) -> str:
        backtest = self.backtest
        train, test = backtest.get("train", {}), backtest.get("test", {})
        candidate, active = backtest.get("candidate", {}), backtest.get("active", {})
        active_name = f"active v{active.get('version')}"
        head = f"{self.trade}: draft v{self.model.version}" if self.model else f"{self.trade}: no draft"
        lines = [
            (
                f"{head} learned from {backtest.get('outcomes', 0):,} outcomes ({backtest.get('conversions', 0):,} "
                f"converted), {backtest.get('first_day')}..{backtest.get('last_day')}"
            ),
            (
                f"Backtest: trained on {train.get('outcomes', 0):,} outcomes ({train.get('conversions', 0):,} "
                f"converted) before {backtest.get('split_day')}, tested on {test.get('outcomes', 0):,} "
                f"({test.get('conversions', 0):,} converted) from then"
            ),
            f"Held-out AUC: candidate {auc_text(candidate)}, {active_name} {auc_text(active)}",
            f"Held-out top-decile lift: candidate {lift_text(candidate)}, {active_name} {lift_text(active)}",
            f"Factors: {backtest.get('kept', 0)} kept of {backtest.get('candidates', 0)} candidates",
            f"Activated: {'yes' if self.activated else 'no'} ({self.why})",
        ]
        return "\n".join(lines)


def auc_text(figures: dict[str, Any]) -> str:
    """ "0.712 [0.680, 0.741]", or "n/a" without both conversions and other leads to rank."""
    if figures.get("auc") is None:
        return "n/a"
    return f"{figures['auc']:.3f} [{figures['auc_low']:.3f}, {figures['auc_high']:.3f}]"


def lift_text(figures: dict[str, Any]) -> str:
    return "n/a" if figures.get("lift") is None else f"{figures['lift']:.2f}x"


def outcome_features(*, trade_id: int, outcomes: pd.DataFrame, storm_window_days: int) -> pd.DataFrame:
    """Each outcome's property features as of the day its lead was generated (the ages, the last permit
    of the trade and the storms of the window up to that day), one row per outcome in its order. Read a
    day at a time: the properties of the day's leads, and the storms once for every day."""
    if outcomes.empty:
        return pd.DataFrame()
    days = sorted(outcomes["generated_on"].unique())
    storms = scoring_storms(as_of=days[-1], window_days=storm_window_days + (days[-1] - days[0]).days)
    event_day = pd.to_datetime(storms["event_date"]).dt.date.to_numpy()
    parts = []
    for key, group in outcomes.groupby("generated_on", sort=True):
        day = cast(dt.date, key)
        properties = scoring_properties_of(trade_id=trade_id, property_ids=group["property_id"].tolist(), as_of=day)
        window = (event_day > day - dt.timedelta(days=storm_window_days)) & (event_day <= day)
        features = property_features(properties, storms[window], as_of=day)
        parts.append(features.reindex(group["property_id"].to_numpy()).set_axis(group.index, axis=0))
    return pd.concat(parts).loc[outcomes.index]


def _figures(score: np.ndarray, label: np.ndarray, weight: np.ndarray) -> dict[str, float | None]:
    """Held-out AUC with its 95% interval and top-decile lift, each lead weighted as the fit weighs it."""
    value = quality.auc(score, label, weight)
    interval = quality.auc_interval(score, label, weight)
    return {
        "auc": value,
        "auc_low": interval[0] if interval else None,
        "auc_high": interval[1] if interval else None,
        "lift": quality.top_decile_lift(score, label, weight),
    }


def _specs(candidates: list[Candidate], weights: np.ndarray) -> list[FactorSpec]:
    return [
        FactorSpec(c.spec.feature, c.spec.transform, float(w), c.spec.params, c.spec.reason)
        for c, w in zip(candidates, weights, strict=True)
    ]


def model_learn(
    *,
    trade: Trade,
    now: dt.datetime | None = None,
    test_share: float = 0.25,
    activate_if_better: bool | None = None,
    basis: bool = True,
    last_day: dt.date | None = None,
    most_outcomes: int | None = None,
) -> Learned:
    """Learn a new draft version of the trade's scoring model from the outcomes of its leads.

    Every lead with a known outcome up to today is a row: converted or not, weighted by its sampling
    weight capped at scoring.learning.WEIGHT_CAP (an exploration lead stands for some of the homes below
    the cut it was drawn from, but not so many that a few dozen outvote the rest), its home's
    features as of the day it was made. The candidates are the active version's factors and, with
    `basis`, the catalogue's shapes (scoring.learning). Backtest: the weights are fitted on the older
    (1 - test_share) of the days and scored, with the active version beside them, on the newer ones;
    then the draft is fitted on every outcome. LearningRefused (NotEnoughOutcomes) when the outcomes
    cannot teach anything. The draft activates itself only when `activate_if_better` (by default the
    setting LEARN_AUTO_ACTIVATE) is on and backtest_beats_active. `last_day` (default today) and
    `most_outcomes` (the newest that many) limit the outcomes learned from, e.g. to keep days for a test."""
    if not 0 < test_share < 1:
        raise LearningRefused(f"the held-out share of days must be between 0 and 1 (got {test_share:g})")
    if most_outcomes is not None and most_outcomes < 1:
        raise LearningRefused(f"learning needs at least one outcome to read (got most_outcomes={most_outcomes})")
    now = now or timezone.now()
    today = timezone.localdate(now)
    active = ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.ACTIVE).first()
    if active is None:
        raise LearningRefused(f"{trade} has no active scoring model version to learn beside; activate one first")
    active_specs = scoring_model_check(model=active)
    fallbacks = [factor.reason_fallback for factor in active.factors.order_by("position")]
    outcomes = lead_outcomes_known(trade_id=trade.pk, last_day=min(last_day or today, today))
    if most_outcomes is not None:
        outcomes = outcomes.tail(most_outcomes)  # ordered by day, then id: the newest
    outcomes = outcomes.reset_index(drop=True)
    count, conversions = len(outcomes), int(outcomes["converted"].sum()) if len(outcomes) else 0
    minimum = settings.LEARN_MIN_OUTCOMES
    if count < minimum:
        raise NotEnoughOutcomes(
            f"{trade} has {count:,} leads with a known outcome; learning needs at least {minimum:,} "
            "(LEARN_MIN_OUTCOMES)"
        )
    if conversions == 0 or conversions == count:
        raise NotEnoughOutcomes(
            f"{trade}'s {count:,} leads with a known outcome are all {'converted' if conversions else 'unconverted'}: "
            "nothing tells a converting home from another"
        )
    days = sorted(outcomes["generated_on"].unique())
    if len(days) < 2:
        raise LearningRefused(f"{trade}'s outcomes are all of {days[0]}: learning holds the newer days back to test")
    split_day = days[min(len(days) - 1, max(1, round(len(days) * (1 - test_share))))]

    features = outcome_features(trade_id=trade.pk, outcomes=outcomes, storm_window_days=active.storm_window_days)
    candidates = candidate_factors(
        features,
        [Candidate(spec, fallback) for spec, fallback in zip(active_specs, fallbacks, strict=True)],
        basis=basis,
    )
    X = design_matrix(features, candidates)
    y = outcomes["converted"].to_numpy(dtype=float)
    # The fit and the backtest weigh a lead by its sampling weight capped (learning_weights): at full weight
    # a single exploration lead of a pool of thousands decided the held-out AUC and lift (0.13 [0.04, 0.92]
    # on a played 200,000-home market).
    weight = learning_weights(outcomes["sampling_weight"].to_numpy(dtype=float))
    train = (outcomes["generated_on"] < split_day).to_numpy()
    test = ~train
    if not 0 < y[train].sum() < train.sum():
        raise NotEnoughOutcomes(
            f"{trade}'s leads before {split_day} are all {'converted' if y[train].all() else 'unconverted'}: "
            "nothing to train on"
        )

    trained = fit_nonnegative(X[train], y[train], weight[train])
    test_features = features[test]
    if len(trained.kept):
        kept = [candidates[i] for i in trained.kept]
        candidate_score = engine.score_frame(test_features, _specs(kept, trained.weights()))["score"].to_numpy()
        candidate_figures = _figures(candidate_score, y[test], weight[test])
    else:
        candidate_figures = {"auc": None, "auc_low": None, "auc_high": None, "lift": None}
    active_score = engine.score_frame(test_features, active_specs)["score"].to_numpy()
    backtest: dict[str, Any] = {
        "outcomes": count,
        "conversions": conversions,
        "first_day": days[0].isoformat(),
        "last_day": days[-1].isoformat(),
        "split_day": split_day.isoformat(),
        "test_share": test_share,
        "train": {"outcomes": int(train.sum()), "conversions": int(y[train].sum())},
        "test": {"outcomes": int(test.sum()), "conversions": int(y[test].sum())},
        "candidate": candidate_figures,
        "active": {"model_id": active.pk, "version": active.version, **_figures(active_score, y[test], weight[test])},
        "candidates": len(candidates),
        "learned_at": now.isoformat(),
    }

    fitted = fit_nonnegative(X, y, weight)
    backtest["kept"] = len(fitted.kept)
    if not len(fitted.kept):
        return Learned(
            trade=trade,
            model=None,
            why="no candidate factor points toward conversion in these outcomes; nothing was made",
            backtest=backtest,
        )
    kept = [candidates[i] for i in fitted.kept]
    weights = fitted.weights()
    model = _draft_create(trade=trade, active=active, candidates=kept, weights=weights, backtest=backtest)

    allowed = settings.LEARN_AUTO_ACTIVATE if activate_if_better is None else activate_if_better
    if not allowed:
        why = "learned versions activate only by staff unless LEARN_AUTO_ACTIVATE is on"
    elif not backtest_beats_active(backtest):
        why = f"its held-out AUC is not above v{active.version}'s interval"
    else:
        model = scoring_model_activate(model=model)
        why = f"its held-out AUC is above v{active.version}'s interval"
    return Learned(
        trade=trade, model=model, why=why, backtest=backtest, activated=model.status == ScoringModel.Status.ACTIVE
    )


@transaction.atomic
def _draft_create(
    *, trade: Trade, active: ScoringModel, candidates: list[Candidate], weights: np.ndarray, backtest: dict[str, Any]
) -> ScoringModel:
    """The draft version, numbered after the trade's last (the trade row locked, as activation does), its
    factors heaviest first (position breaks ties between reasons)."""
    Trade.objects.select_for_update().get(pk=trade.pk)
    version = (ScoringModel.objects.filter(trade=trade).aggregate(last=Max("version"))["last"] or 0) + 1
    notes = (
        f"Learned from {backtest['outcomes']:,} leads with a known outcome ({backtest['conversions']:,} converted), "
        f"generated {backtest['first_day']} to {backtest['last_day']}, weighted by sampling weight (at most "
        f"{WEIGHT_CAP:g}): "
        f"{len(candidates)} of {backtest['candidates']} candidate factors (v{active.version}'s and the feature "
        f"catalogue's) kept. Backtest on the leads from {backtest['split_day']}: held-out AUC "
        f"{auc_text(backtest['candidate'])} against v{active.version}'s {auc_text(backtest['active'])}."
    )
    model = ScoringModel.objects.create(
        trade=trade, version=version, notes=notes, storm_window_days=active.storm_window_days, backtest=backtest
    )
    order = np.argsort(-weights, kind="stable")
    Factor.objects.bulk_create(
        Factor(
            model=model,
            position=position,
            feature=candidates[index].spec.feature,
            transform=candidates[index].spec.transform,
            params=dict(candidates[index].spec.params),
            weight=round(max(float(weights[index]), 0.01), 2),
            reason=candidates[index].spec.reason,
            reason_fallback=candidates[index].reason_fallback,
        )
        for position, index in enumerate(order)
    )
    scoring_model_check(model=model)
    return model
