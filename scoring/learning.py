"""Learning a scoring model's weights from outcomes: candidate factors, their values, a non-negative fit.
Pure numpy/pandas and scipy, no ORM (the service in leads/services/learning.py moves the data).

A model's score is 100 x sum(w x v) / sum(w) over its factors' values v (0..1). A logistic regression
of conversion on the same values, log-odds = b + sum(beta x v), ranks homes exactly as the score with
weights proportional to beta does; so the fitted betas, scaled to sum 100, are the weights. Every beta is
kept at zero or above, so that each factor's reason still says what points toward a job: a negative
weight would make a reason count against the home, which the engine and the reason texts cannot say.
A factor is kept only when the outcomes tell it from nothing (see fit_nonnegative), so a draft's factors
are few and each has evidence behind it.

The candidates are the active version's factors and a basis drawn from the feature catalogue (steps
both ways and a ramp at quantiles of each numeric feature, decays at a few half-lives, flags, a lookup
per category), so the fit can find shapes the active version lacks. Each carries a truthful reason: the
active version's text for its feature, else the catalogue's generic one (features.REASON_TEMPLATES).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from threadpoolctl import threadpool_limits

from scoring.engine import FactorSpec, transform
from scoring.features import FALLBACKS, REASON_TEMPLATES

# Numeric features the basis cuts at quantiles, with steps both ways and a ramp across them.
QUANTILE_FEATURES = (
    "roof_age",
    "home_age",
    "years_since_sale",
    "years_since_trade_permit",
    "market_value",
    "hail_inches",
    "wind_mph",
)
BASIS_QUANTILES = (0.2, 0.4, 0.6, 0.8)
# "Days since an event" features get decays at these half-lives (days): fresh, recent, this season.
DECAY_HALF_LIVES = {
    "days_since_hail": (7, 30, 90),
    "days_since_wind": (7, 30, 90),
    "days_since_sale": (90, 365, 1095),
}
FLAG_FEATURES = ("owner_occupied",)
LOOKUP_FEATURES = ("property_type",)
# The L2 penalty's C with the sample weights normalised to sum to the number of outcomes: mild, it keeps
# collinear candidates (a step up and a step down at the same cut) finite without shrinking real effects.
L2_C = 1.0
# A weight below this share of the total is noise at the sample sizes learning sees: dropped, then refit.
NEGLIGIBLE_SHARE = 0.005
# A candidate whose variance net of the factors in is under this share of its own is a copy of them.
COPY_SHARE = 1e-6
# A kept factor's weight is at least this many standard errors from 0: the outcomes tell it from nothing.
Z_MIN = 2.0
WEIGHT_TOTAL = 100.0
# The most a lead counts for in the fit (see learning_weights): an exploration lead drawn from hundreds of
# homes below the cut counts as this many leads, not hundreds.
WEIGHT_CAP = 5.0


@dataclass(frozen=True)
class Candidate:
    """A factor the fit may keep: the engine's spec and the reason shown when the value is a fallback."""

    spec: FactorSpec
    reason_fallback: str = ""

    @property
    def key(self) -> str:
        return json.dumps([self.spec.feature, self.spec.transform, dict(self.spec.params)], sort_keys=True)


@dataclass(frozen=True)
class Fit:
    """A non-negative logistic fit: a coefficient per column (0 for a dropped one) and the intercept."""

    coefficients: np.ndarray
    intercept: float
    rounds: int  # fits run: the active set shrinks between them

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.coefficients > 0)

    def weights(self, total: float = WEIGHT_TOTAL) -> np.ndarray:
        """The kept columns' coefficients scaled to sum to `total`, in column order."""
        kept = self.coefficients[self.kept]
        return kept * total / kept.sum() if len(kept) else kept


def learning_weights(sampling_weight: np.ndarray, cap: float = WEIGHT_CAP) -> np.ndarray:
    """The weight each outcome has in the fit: its sampling weight, but at most `cap`.

    Leads are chosen by their homes' features (the score, or an exploration draw below the cut), so the
    chance that a home converts given its features is the same among leads as in the market: the fit
    needs no weight to be unbiased, only rows across the range of scores, which exploration brings. The
    weight lets the fit lean toward the homes below the cut the market has most of, but a sampling weight
    is the size of the pool a lead was drawn from (hundreds to thousands on a market), and at that weight
    the few dozen exploration leads among thousands outvote them all: measured on the demo market's
    played days (bench/quality.py), fitting with the full weights ranked the held-out leads at 0.58 AUC
    where counting each lead once or capping at 5 gave 0.75-0.76, the default model 0.73."""
    weight = np.asarray(sampling_weight, dtype=float)
    if (weight < 0).any() or not np.isfinite(weight).all():
        raise ValueError("sampling weights must be finite numbers of 0 or more")
    return np.minimum(weight, cap)


def reason_texts(feature: str, active: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The reason and fallback reason a learned factor on `feature` says: the active version's for the
    feature when it has one (its fallback text, else the catalogue's, for a feature with a fallback),
    else the catalogue's generic texts."""
    generic = REASON_TEMPLATES[feature]
    reason, fallback = active.get(feature, ("", ""))
    if not reason:
        return generic
    if feature in FALLBACKS and not fallback:
        fallback = generic[1]
    return reason, fallback if feature in FALLBACKS else ""


def backtest_beats_active(backtest: Mapping[str, Any]) -> bool:
    """The rule that lets a learned version activate itself (ScoringModel.backtest's figures): its
    held-out AUC is above the active version's 95% interval, on the same held-out leads."""
    candidate, active = backtest.get("candidate") or {}, backtest.get("active") or {}
    return bool(
        candidate.get("auc") is not None
        and active.get("auc_high") is not None
        and candidate["auc"] > active["auc_high"]
    )


def _nice(value: float) -> float:
    """A cut point rounded to two significant figures, so that params read well ($250,000, 23 years)."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    digits = 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    return float(int(rounded)) if float(rounded).is_integer() else float(rounded)


def candidate_factors(features: pd.DataFrame, active: Sequence[Candidate], *, basis: bool = True) -> list[Candidate]:
    """The active version's factors, then (with `basis`) the catalogue's shapes cut at the quantiles of
    `features` (the outcomes' features: values only, no outcome, so the cuts leak nothing), each once."""
    texts: dict[str, tuple[str, str]] = {}
    for candidate in active:
        texts.setdefault(candidate.spec.feature, (candidate.spec.reason, candidate.reason_fallback))
    found: dict[str, Candidate] = {}

    def add(feature: str, kind: str, params: dict) -> None:
        reason, fallback = reason_texts(feature, texts)
        candidate = Candidate(FactorSpec(feature, kind, 1.0, params, reason), fallback)
        found.setdefault(candidate.key, candidate)

    for candidate in active:
        # Kept as the active version has it, but with the texts a learned factor must have.
        generic = REASON_TEMPLATES[candidate.spec.feature]
        reason = candidate.spec.reason or generic[0]
        fallback = (candidate.reason_fallback or generic[1]) if candidate.spec.feature in FALLBACKS else ""
        found.setdefault(candidate.key, Candidate(replace(candidate.spec, reason=reason), fallback))
    if not basis:
        return list(found.values())
    for feature in QUANTILE_FEATURES:
        values = pd.to_numeric(features[feature], errors="coerce").dropna().to_numpy(dtype=float)
        if not len(values):
            continue
        cuts = sorted({_nice(q) for q in np.quantile(values, BASIS_QUANTILES)})
        for cut in cuts:
            add(feature, "step", {"threshold": cut})
            add(feature, "step", {"threshold": cut, "above": False})
        if cuts[0] < cuts[-1]:
            add(feature, "ramp", {"low": cuts[0], "high": cuts[-1]})
    for feature, half_lives in DECAY_HALF_LIVES.items():
        if features[feature].notna().any():
            for half_life in half_lives:
                add(feature, "decay", {"half_life_days": half_life})
    for feature in FLAG_FEATURES:
        if features[feature].fillna(False).astype(bool).any():
            add(feature, "flag", {})
    for feature in LOOKUP_FEATURES:
        for category in sorted(str(value) for value in features[feature].dropna().unique()):
            add(feature, "lookup", {"values": {category: 1}, "default": 0})
    return list(found.values())


def design_matrix(features: pd.DataFrame, candidates: Sequence[Candidate]) -> np.ndarray:
    """Each candidate's value (0..1) per row of `features`, as the engine computes it: rows x candidates."""
    if not candidates:
        return np.zeros((len(features), 0))
    return np.column_stack([transform(c.spec, features[c.spec.feature]) for c in candidates]).astype(float)


def fit_nonnegative(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, *, c: float = L2_C) -> Fit:
    """Logistic regression of `y` (1 converted, 0 not) on the columns of `X`, every coefficient 0 or more,
    keeping only the columns the outcomes tell from nothing.

    The objective is scikit-learn's LogisticRegression's (weighted log-loss, L2 penalty 1 / (2C) on the
    coefficients, none on the intercept), minimised by scipy's L-BFGS-B with the coefficients bounded at
    0. Columns enter one at a time (forward selection): at each step the one whose score test against
    the current fit is strongest, if that is at least Z_MIN standard errors toward conversion, with its
    variance net of what the columns already in explain, so a near copy of a column in adds nothing; then
    all in are refitted, and one the bound pushes to 0 leaves for good. Candidates are many and
    correlated (steps at neighbouring cuts, a roof's age and the home's); dropping from a fit of all of
    them at once would split an effect between copies until none looked real. Last, weights under
    NEGLIGIBLE_SHARE of the total leave and the rest are refitted. `weight` (sampling weights) is
    normalised to sum to the number of rows, so the penalty means the same at any scale; the score test's
    variance squares the weights, so a lead weighted 20 is one lead's evidence, not twenty's."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    rows = X.shape[0]
    if len(y) != rows:
        raise ValueError("the design matrix and the outcomes must have one row per lead")
    if rows and not np.isin(y, (0, 1)).all():
        raise ValueError("outcomes must be 1 (converted) or 0")
    weight = np.ones(rows) if weight is None else np.asarray(weight, dtype=float)
    if len(weight) != rows or (weight < 0).any() or not np.isfinite(weight).all():
        raise ValueError("sampling weights must be one finite number of 0 or more per lead")
    positive, total = float((weight * y).sum()), float(weight.sum())
    if positive <= 0 or positive >= total:
        raise ValueError("learning needs both converted and other leads (with weight)")
    weight = weight * rows / total
    # One BLAS thread: the products are thin (rows x a few columns), and threads fighting for the cores
    # with a scoring run or a worker made the fit several times slower, never faster, where it was measured.
    with threadpool_limits(limits=1, user_api="blas"):
        return _forward(X, y, weight, c, positive, total)


def _forward(X: np.ndarray, y: np.ndarray, weight: np.ndarray, c: float, positive: float, total: float) -> Fit:
    columns = X.shape[1]
    intercept = float(np.log(positive / (total - positive)))
    coefficients = np.zeros(columns)
    out = np.zeros(columns, dtype=bool)  # left for good: pushed to 0 by the bound
    keep: list[int] = []
    squares = X * X
    rounds = 0
    while True:
        entering = _strongest(X, y, weight, intercept, coefficients, keep, out, squares)
        if entering is None:
            break
        keep.append(entering)
        intercept, fitted = _solve(X[:, keep], y, weight, c, intercept, coefficients[keep])
        rounds += 1
        coefficients[keep] = fitted
        out[[column for column in keep if coefficients[column] <= 0]] = True
        keep = [column for column in keep if coefficients[column] > 0]
    while keep:
        kept = coefficients[keep]
        negligible = kept < NEGLIGIBLE_SHARE * kept.sum()
        if not negligible.any():
            break
        coefficients[[column for column, small in zip(keep, negligible, strict=True) if small]] = 0
        keep = [column for column, small in zip(keep, negligible, strict=True) if not small]
        intercept, fitted = _solve(X[:, keep], y, weight, c, intercept, coefficients[keep])
        rounds += 1
        coefficients[keep] = fitted
        keep = [column for column in keep if coefficients[column] > 0]
    coefficients[~np.isin(np.arange(columns), keep)] = 0
    return Fit(coefficients=coefficients, intercept=intercept, rounds=rounds)


def _strongest(
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    intercept: float,
    coefficients: np.ndarray,
    keep: list[int],
    out: np.ndarray,
    squares: np.ndarray,
) -> int | None:
    """The column not in whose score test at the current fit points most toward conversion, if it is at
    least Z_MIN: the log-likelihood's slope along the column over its standard error, the column taken
    net of the intercept and the columns in."""
    eta = intercept + X[:, keep] @ coefficients[keep]
    p = expit(eta)
    slope = X.T @ (weight * (y - p))  # at coefficient 0, the penalty adds no slope
    curvature = weight * p * (1 - p)
    inside = np.column_stack([np.ones(len(y)), X[:, keep]])
    weighted_inside = inside * curvature[:, None]
    # Each column net of what the intercept and the columns in explain: x - inside @ projection (the
    # weighted least-squares projection, unpenalised, so that a copy of a column in is left with nothing).
    projection = np.linalg.lstsq(inside.T @ weighted_inside, weighted_inside.T @ X, rcond=None)[0]
    # The slope's variance with the weights squared (a sandwich): sampling weights are not counts of
    # independent leads, and an exploration lead weighted 20 is one lead's evidence, not twenty.
    spread = curvature * weight
    spread_inside = inside * spread[:, None]
    variance = (
        spread @ squares
        - 2 * (projection * (spread_inside.T @ X)).sum(axis=0)
        + (projection * ((inside.T @ spread_inside) @ projection)).sum(axis=0)
    )
    # A column the ones in already explain (a copy: the roof's age where no roof year is on record is the
    # home's) has no evidence of its own; its slope is only the penalty's pull on the column it copies.
    copy = variance <= COPY_SHARE * (spread @ squares)
    strength = slope / np.sqrt(np.maximum(variance, 1e-300))
    strength[copy] = -np.inf
    strength[keep] = -np.inf
    strength[out] = -np.inf
    best = int(np.argmax(strength)) if len(strength) else -1
    return best if best >= 0 and strength[best] >= Z_MIN else None


def _solve(
    X: np.ndarray, y: np.ndarray, weight: np.ndarray, c: float, intercept: float, start: np.ndarray
) -> tuple[float, np.ndarray]:
    """The intercept and non-negative coefficients minimising the weighted log-loss plus |beta|^2 / (2C)
    (averaged over the rows, which only scales it), from `start`."""
    rows = len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = theta[0] + X @ theta[1:]
        p = expit(eta)
        value = (weight * (np.logaddexp(0.0, eta) - y * eta)).sum() + theta[1:] @ theta[1:] / (2 * c)
        residual = weight * (p - y)
        gradient = np.r_[residual.sum(), X.T @ residual + theta[1:] / c]
        return float(value / rows), gradient / rows

    bounds = [(None, None)] + [(0.0, None)] * X.shape[1]
    solved = minimize(
        loss,
        np.r_[intercept, np.maximum(start, 0.0)],
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-7},
    )
    return float(solved.x[0]), np.asarray(solved.x[1:], dtype=float)
