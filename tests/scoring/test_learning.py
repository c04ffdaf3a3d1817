"""scoring.learning, pure: the non-negative logistic fit recovers known weights, honours sampling weights,
keeps nothing negative; the candidate factors are valid engine factors with truthful reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from scoring.engine import FactorSpec, check_factors
from scoring.features import DETAILS, FALLBACKS, FEATURES, REASON_TEMPLATES
from scoring.learning import (
    NEGLIGIBLE_SHARE,
    WEIGHT_CAP,
    Candidate,
    backtest_beats_active,
    candidate_factors,
    design_matrix,
    fit_nonnegative,
    learning_weights,
)


def simulated(rows: int, betas: list[float], intercept: float, *, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Factor values (half binary, half continuous in 0..1) and outcomes drawn from the logistic of `betas`."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [(rng.random(rows) < 0.4).astype(float) if i % 2 == 0 else rng.random(rows) for i in range(len(betas))]
    )
    y = (rng.random(rows) < 1 / (1 + np.exp(-(intercept + X @ np.array(betas))))).astype(float)
    return X, y


def test_fit_recovers_known_weight_ratios_and_drops_the_zero_and_the_negative_factor():
    X, y = simulated(40_000, [2.0, 1.0, 0.0, -1.0, 0.5], -2.5)
    fit = fit_nonnegative(X, y)
    weights = fit.coefficients
    # Within 10% of the true ratios (2 : 1 : 0.5), the factor of no effect and the one against are dropped.
    assert weights[0] / weights[1] == pytest.approx(2.0, rel=0.10)
    assert weights[4] / weights[1] == pytest.approx(0.5, rel=0.10)
    assert weights[2] == 0
    assert weights[3] == 0
    assert list(fit.kept) == [0, 1, 4]
    # The dropped factor against conversion (uniform 0..1, -1) moves into the intercept: -2.5 - 0.5.
    assert fit.intercept == pytest.approx(-3.0, abs=0.15)
    assert fit.weights().sum() == pytest.approx(100)
    assert (fit.weights() > NEGLIGIBLE_SHARE * 100).all()


def test_fit_is_scikit_learns_logistic_regression_when_no_weight_needs_the_bound():
    X, y = simulated(5_000, [1.5, 1.0, 0.8], -1.0, seed=5)
    weight = np.random.default_rng(1).uniform(0.5, 3.0, len(y))
    fit = fit_nonnegative(X, y, weight)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(
        X, y, sample_weight=weight * len(y) / weight.sum()
    )
    assert fit.coefficients == pytest.approx(reference.coef_[0], abs=1e-3)
    assert fit.intercept == pytest.approx(reference.intercept_[0], abs=1e-3)


def test_every_weight_is_non_negative_even_when_every_factor_points_away():
    X, y = simulated(5_000, [-1.0, -2.0, -0.5], 0.0, seed=7)
    fit = fit_nonnegative(X, y)
    assert (fit.coefficients >= 0).all()
    assert len(fit.kept) == 0
    assert len(fit.weights()) == 0


def test_learning_weights_are_the_sampling_weights_capped():
    weights = learning_weights(np.array([1.0, 0.0, 2.5, WEIGHT_CAP, 40.0, 1_500.0]))

    assert weights.tolist() == [1.0, 0.0, 2.5, WEIGHT_CAP, WEIGHT_CAP, WEIGHT_CAP]
    for bad in ([1.0, -2.0], [1.0, np.nan], [np.inf]):
        with pytest.raises(ValueError, match="finite numbers of 0 or more"):
            learning_weights(np.array(bad))


def test_a_sampling_weight_counts_as_that_many_copies_of_the_lead():
    X, y = simulated(3_000, [1.0, 0.7], -1.0, seed=11)
    weight = np.where(np.arange(len(y)) % 3 == 0, 3.0, 1.0)
    copies = np.repeat(np.arange(len(y)), weight.astype(int))
    # Without a penalty to speak of: the weights are normalised to the number of rows, which the copies change.
    weighted = fit_nonnegative(X, y, weight, c=1e6)
    copied = fit_nonnegative(X[copies], y[copies], c=1e6)
    assert weighted.coefficients == pytest.approx(copied.coefficients, abs=1e-3)


def test_exploration_weights_move_the_fit_toward_the_homes_the_exploration_leads_stand_for():
    """Leads picked best first all have factor 0 at 1, and among them factor 1 says nothing; exploration
    leads, drawn from the rest and weighted 20, show factor 1 matters there. Weighted, factor 1 counts more."""
    rng = np.random.default_rng(13)
    best = np.column_stack([np.ones(4_000), rng.random(4_000)])
    explored = np.column_stack([np.zeros(1_000), rng.random(1_000)])
    X = np.vstack([best, explored])
    logit = np.r_[np.full(4_000, -0.5), -3.0 + 3.0 * explored[:, 1]]
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(float)
    weight = np.r_[np.ones(4_000), np.full(1_000, 20.0)]
    plain = fit_nonnegative(X, y).weights()
    weighted = fit_nonnegative(X, y, weight).weights()
    assert weighted[1] > plain[1] + 10  # points of 100


def test_the_fit_refuses_outcomes_it_cannot_learn_from():
    X = np.zeros((4, 1))
    with pytest.raises(ValueError, match="both converted and other"):
        fit_nonnegative(X, np.zeros(4))
    with pytest.raises(ValueError, match="1 \\(converted\\) or 0"):
        fit_nonnegative(X, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="one row per lead"):
        fit_nonnegative(X, np.array([0, 1]))
    with pytest.raises(ValueError, match="sampling weights"):
        fit_nonnegative(X, np.array([0, 1, 0, 1]), np.array([1, -1, 1, 1]))


def outcome_features(rows: int = 400, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    year_built = rng.integers(1950, 2020, rows).astype(float)
    hail = np.where(rng.random(rows) < 0.3, rng.uniform(0.75, 2.5, rows), np.nan)
    return pd.DataFrame(
        {
            "roof_age": rng.integers(0, 40, rows).astype(float),
            "home_age": 2026 - year_built,
            "years_since_sale": rng.uniform(0, 30, rows).round(1),
            "days_since_sale": rng.integers(0, 10_000, rows).astype(float),
            "hail_inches": hail,
            "days_since_hail": np.where(np.isnan(hail), np.nan, rng.integers(0, 90, rows)),
            "wind_mph": np.full(rows, np.nan),
            "days_since_wind": np.full(rows, np.nan),
            "years_since_trade_permit": rng.uniform(0, 60, rows).round(1),
            "market_value": rng.integers(80_000, 900_000, rows).astype(float),
            "owner_occupied": rng.random(rows) < 0.7,
            "property_type": rng.choice(["single_family", "condo", "townhouse"], rows).astype(object),
            "year_built": year_built,
            "roof_year": np.full(rows, np.nan),
            "hail_date": None,
            "hail_where": None,
            "wind_date": None,
            "wind_where": None,
            "last_sale_date": None,
            "trade_permit_date": None,
        }
    )


ACTIVE = [
    Candidate(
        FactorSpec("roof_age", "ramp", 30, {"low": 10, "high": 25}, "Roof is {value:.0f} years old"),
        "No roof replacement on record; home built in {year_built:.0f}",
    ),
    Candidate(FactorSpec("days_since_hail", "decay", 40, {"half_life_days": 30}, "Hail {value:.0f} days ago")),
    Candidate(FactorSpec("years_since_trade_permit", "ramp", 10, {"low": 15, "high": 30}, "Permit {value:.0f}")),
]


def test_candidates_are_valid_engine_factors_with_truthful_reasons():
    features = outcome_features()
    candidates = candidate_factors(features, ACTIVE)
    specs = [candidate.spec for candidate in candidates]
    check_factors(specs, FEATURES, DETAILS)  # raises on any invalid factor or reason template
    # The active version's factors come first, as they are, but a feature with a fallback gets a fallback text.
    assert candidates[:2] == ACTIVE[:2]
    assert candidates[2].spec == ACTIVE[2].spec
    assert candidates[2].reason_fallback == REASON_TEMPLATES["years_since_trade_permit"][1]
    by_feature: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_feature.setdefault(candidate.spec.feature, []).append(candidate)
    # The active version's texts for its features; the catalogue's for the others.
    assert {c.spec.reason for c in by_feature["roof_age"]} == {"Roof is {value:.0f} years old"}
    assert {c.spec.reason for c in by_feature["market_value"]} == {REASON_TEMPLATES["market_value"][0]}
    # A feature with a fallback always has a fallback text: the active version gave none for the permit.
    for feature in FALLBACKS:
        assert all(c.reason_fallback for c in by_feature[feature])
    assert {c.reason_fallback for c in by_feature["years_since_trade_permit"]} == {
        REASON_TEMPLATES["years_since_trade_permit"][1]
    }
    assert all(not c.reason_fallback for c in candidates if c.spec.feature not in FALLBACKS)
    # Steps both ways, a ramp across the cuts, decays, the flag and a lookup per category seen.
    transforms = {(c.spec.transform, c.spec.params.get("above", True)) for c in by_feature["market_value"]}
    assert transforms == {("step", True), ("step", False), ("ramp", True)}
    assert {c.spec.params["half_life_days"] for c in by_feature["days_since_hail"]} == {7, 30, 90}
    assert [c.spec.transform for c in by_feature["owner_occupied"]] == ["flag"]
    assert sorted(next(iter(c.spec.params["values"])) for c in by_feature["property_type"]) == [
        "condo",
        "single_family",
        "townhouse",
    ]
    # No storm of wind reached these homes: nothing to cut at.
    assert "wind_mph" not in by_feature
    assert "days_since_wind" not in by_feature
    assert len({c.key for c in candidates}) == len(candidates)


def test_cuts_are_rounded_quantiles_and_the_matrix_is_the_engines_values():
    features = outcome_features()
    candidates = candidate_factors(features, [])
    cuts = sorted(
        {
            c.spec.params["threshold"]
            for c in candidates
            if c.spec.feature == "market_value" and c.spec.transform == "step"
        }
    )
    assert all(cut == float(f"{cut:.2g}") for cut in cuts)
    X = design_matrix(features, candidates)
    assert X.shape == (len(features), len(candidates))
    assert ((X >= 0) & (X <= 1)).all()
    index = next(i for i, c in enumerate(candidates) if c.spec.feature == "roof_age" and c.spec.transform == "ramp")
    low, high = candidates[index].spec.params["low"], candidates[index].spec.params["high"]
    expected = np.clip((features["roof_age"] - low) / (high - low), 0, 1)
    assert X[:, index] == pytest.approx(expected.to_numpy())


def test_candidates_without_the_basis_are_the_active_versions_factors():
    candidates = candidate_factors(outcome_features(), ACTIVE, basis=False)
    assert [candidate.spec for candidate in candidates] == [candidate.spec for candidate in ACTIVE]


@pytest.mark.parametrize(
    ("candidate_auc", "active_high", "beats"),
    [(0.70, 0.68, True), (0.68, 0.68, False), (0.65, 0.68, False), (None, 0.68, False), (0.7, None, False)],
)
def test_a_candidate_beats_the_active_version_only_above_its_interval(candidate_auc, active_high, beats):
    backtest = {"candidate": {"auc": candidate_auc}, "active": {"auc": 0.64, "auc_high": active_high}}
    assert backtest_beats_active(backtest) is beats
