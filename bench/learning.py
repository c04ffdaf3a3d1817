"""Learning speed: the fit of a trade's scoring model on N outcomes whose features are already read.

    python bench/learning.py [--outcomes 100000] [--seed 7]

N synthetic outcomes with the feature catalogue's columns (roof and home ages, sale, hail and wind, permit,
value, occupancy, type), converted with the chance of a known logistic of a few shapes of them; then what
model_learn does after reading the features: the candidate factors (an active version of three factors
and the catalogue's basis), their design matrix, the backtest's fit on the older three quarters and its
held-out AUC (with interval) and lift, and the draft's fit on every outcome. No database. Reading the
features of the outcomes (a query per day of leads) is not in these figures. The last line printed is
one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import quality
from scoring.engine import FactorSpec
from scoring.learning import Candidate, candidate_factors, design_matrix, fit_nonnegative

ACTIVE = [
    Candidate(FactorSpec("roof_age", "ramp", 35, {"low": 10, "high": 25}, "Roof is {value:.0f} years old"), "No roof"),
    Candidate(FactorSpec("days_since_hail", "decay", 40, {"half_life_days": 30}, "Hail {value:.0f} days ago")),
    Candidate(FactorSpec("owner_occupied", "flag", 25, {}, "Owner-occupied")),
]

TYPES = ["single_family", "condo", "townhouse", "mobile_home"]


def synthetic(outcomes: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, outcomes, and the true log-odds they were drawn from."""
    rng = np.random.default_rng(seed)
    year_built = rng.integers(1940, 2024, outcomes).astype(float)
    roof_age = np.where(rng.random(outcomes) < 0.3, rng.integers(0, 30, outcomes), 2026 - year_built).astype(float)
    hail = np.where(rng.random(outcomes) < 0.25, rng.uniform(0.75, 2.75, outcomes).round(2), np.nan)
    wind = np.where(rng.random(outcomes) < 0.15, rng.uniform(50, 90, outcomes).round(), np.nan)
    features = pd.DataFrame(
        {
            "roof_age": roof_age,
            "home_age": 2026 - year_built,
            "years_since_sale": rng.uniform(0, 40, outcomes).round(1),
            "days_since_sale": rng.integers(0, 14_000, outcomes).astype(float),
            "hail_inches": hail,
            "days_since_hail": np.where(np.isnan(hail), np.nan, rng.integers(0, 90, outcomes)),
            "wind_mph": wind,
            "days_since_wind": np.where(np.isnan(wind), np.nan, rng.integers(0, 90, outcomes)),
            "years_since_trade_permit": (2026 - year_built) * rng.uniform(0.3, 1.0, outcomes).round(1),
            "market_value": rng.lognormal(12.6, 0.5, outcomes).round(-3),
            "owner_occupied": rng.random(outcomes) < 0.65,
            "property_type": rng.choice(["single_family", "condo", "townhouse", "mobile_home"], outcomes).astype(
                object
            ),
        }
    )
    logit = (
        -3.2
        + 1.6 * (features["roof_age"] >= 18)
        + 1.2 * np.nan_to_num(0.5 ** (features["days_since_hail"] / 20))
        + 0.6 * features["owner_occupied"]
        + 0.5 * np.nan_to_num(features["wind_mph"] >= 65)
        - 0.4 * (features["property_type"] == "condo")
    ).to_numpy(dtype=float)
    converted = (rng.random(outcomes) < 1 / (1 + np.exp(-logit))).astype(float)
    return features, converted, logit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outcomes", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.outcomes < 100:
        parser.error("--outcomes must be at least 100")
    features, converted, logit = synthetic(args.outcomes, args.seed)
    weight = np.ones(len(converted))
    train = np.arange(len(converted)) < int(len(converted) * 0.75)  # the older days come first
    timings = {}
    cpu = time.process_time()

    started = time.perf_counter()
    candidates = candidate_factors(features, ACTIVE)
    timings["candidates_s"] = time.perf_counter() - started
    started = time.perf_counter()
    X = design_matrix(features, candidates)
    timings["design_matrix_s"] = time.perf_counter() - started
    started = time.perf_counter()
    trained = fit_nonnegative(X[train], converted[train], weight[train])
    timings["backtest_fit_s"] = time.perf_counter() - started
    started = time.perf_counter()
    held_out = X[~train] @ trained.coefficients
    auc = quality.auc(held_out, converted[~train])
    interval = quality.auc_interval(held_out, converted[~train])
    lift = quality.top_decile_lift(held_out, converted[~train])
    timings["backtest_figures_s"] = time.perf_counter() - started
    started = time.perf_counter()
    fitted = fit_nonnegative(X, converted, weight)
    timings["fit_s"] = time.perf_counter() - started
    timings["total_s"] = sum(timings.values())
    timings["total_cpu_s"] = time.process_time() - cpu  # the wall clock less the waits for a busy machine's cores

    summary = {
        "bench": "learning",
        "outcomes": args.outcomes,
        "conversions": int(converted.sum()),
        "candidates": len(candidates),
        "kept": len(fitted.kept),
        "fit_rounds": fitted.rounds,
        "held_out_auc": round(float(auc or 0), 4),
        "held_out_auc_low": round(float(interval[0]) if interval else 0.0, 4),
        "held_out_auc_high": round(float(interval[1]) if interval else 0.0, 4),
        "truth_auc": round(float(quality.auc(logit[~train], converted[~train]) or 0), 4),
        "held_out_top_decile_lift": round(float(lift or 0), 3),
    }
    print(json.dumps(summary | {name: round(value, 3) for name, value in timings.items()}))


if __name__ == "__main__":
    main()
