"""Lead quality on a demo market with a hidden truth: how much of what can be known a learned model finds.

    python bench/quality.py --properties 200000 --days 60 --seed S [--trade roofing] [--test-days 10]
                            [--outcomes 5000] [--timing-outcomes 100000] [--reuse]

Builds a fresh demo market of N properties for the seed in a database of its own (LEADENGINE_BENCH_DATABASE
with "_quality"), its contractors and territories, turns exploration on for the trade (the demo's 5%),
and plays --days days of the market (simulate_days: scoring, leads, the contractors' outcomes drawn from
the hidden truth). With --reuse, the market a run with the same arguments left in that database is learned
from and evaluated again, without building or playing it (simulate_seconds is then null). Then, for the
trade, the test days being the last --test-days days played (up to the newest lead's day):

- learns a model (leads.services.learning) from at most --outcomes known outcomes of the leads made
  before the last --test-days days, the newest first;
- evaluates on the known outcomes of the leads of the last --test-days days, all weighted by their
  sampling weight: the hidden probability itself (truth_auc), its part the models can see (oracle_auc:
  the truth with its unseen part taken out), the default model's scores (the leads' own scores:
  default_auc, default_top_decile_lift) and the learned model's scores of the same leads, computed from
  their features as of each lead's day (learned_auc, learned_top_decile_lift);
- learned_share_of_oracle = (learned_auc - 0.5) / (oracle_auc - 0.5) (and the same over the sold leads,
  learned_share_of_oracle_unweighted);
- the same four AUCs and the two lifts over the sold leads as they are, each weighing 1 (*_unweighted):
  how the scores rank the leads contractors got, where the weighted figures stand for every home of the market (an
  exploration lead weighs for the hundreds of homes below the cut it was drawn from);
- truth_unseen_share and truth_interaction_share: the shares of the variance of the truth's log-odds
  carried by what the models cannot see and by interactions;
- times learning and evaluation on --timing-outcomes synthetic outcomes (learn_seconds: the fit on a
  ready design matrix; evaluate_seconds: AUC with its interval, deciles and lift).

The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import bench_database, database_url, server_url

DEFAULT_TRADE = "roofing"


def fresh_database(name: str, *, reuse: bool = False) -> None:
    """An empty database `name` (dropped first when it exists): every seed plays its own market. With
    `reuse`, the database as a previous run left it (refused when there is none)."""
    import os

    import psycopg

    base = server_url()
    with psycopg.connect(database_url(base, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if reuse and not exists:
            raise SystemExit(f"--reuse: there is no database {name} of an earlier run to reuse")
        if not reuse:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadengine.settings")
    os.environ.setdefault("DEBUG", "true")
    os.environ["DATABASE_URL"] = database_url(base, name)


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def market_play(args) -> float:
    """A fresh demo market for the seed, its contractors (the demo trades explore), and --days days played;
    returns the seconds the days took."""
    from django.core.management import call_command

    from demo.simulation import days_simulate
    from scoring.services.zip_codes import zip_codes_load

    call_command("migrate", verbosity=0)
    zip_codes_load()
    # The CSV files in a directory of this run's own: runs of other seeds may be seeding beside it.
    with tempfile.TemporaryDirectory(prefix="quality-bench-") as out:
        call_command("seed_demo", properties=args.properties, seed=args.seed, out=out, verbosity=0)
    call_command("seed_demo_territories", verbosity=0)
    started = time.monotonic()
    days_simulate(
        days=args.days,
        seed=args.seed,
        trades=[args.trade],
        on_day=lambda day: print(day, file=sys.stderr),
    )
    return time.monotonic() - started


def lead_truth(trade, leads):
    """The hidden truth of each lead on its day (probability, seen_logit), in the leads' order: the draw the
    simulation recorded for the leads it drew an outcome for, else the truth of the lead's home on its day
    (a lead rejected or left to expire had no draw, but its home had a truth)."""
    import pandas as pd

    from demo.truth import truth_for_leads, truth_on_day

    truth = truth_for_leads(leads["id"].tolist()).set_index("lead_id").reindex(leads["id"].to_numpy()).astype(float)
    truth.index = leads.index
    missing = truth["probability"].isna().to_numpy()
    for day, group in leads[missing].groupby("generated_on"):
        on_day = truth_on_day(trade=trade, property_ids=group["property_id"].tolist(), as_of=day)
        found = on_day.reindex(group["property_id"].to_numpy())[["probability", "seen_logit"]]
        truth.loc[group.index, ["probability", "seen_logit"]] = found.to_numpy()
    if truth["probability"].isna().any():
        raise SystemExit("some test leads' homes have no hidden truth: was the market seeded by seed_demo?")
    return pd.DataFrame(truth)


def oracle_share(learned: float | None, oracle: float | None) -> float | None:
    """(learned - 0.5) / (oracle - 0.5): the share of the oracle's discrimination the learned model has;
    None without both, or with an oracle no better than chance."""
    if learned is None or oracle is None or not oracle > 0.5:
        return None
    return (learned - 0.5) / (oracle - 0.5)


def weighted_figures(score, label, weight) -> tuple[float | None, float | None]:
    from scoring import quality

    return quality.auc(score, label, weight), quality.top_decile_lift(score, label, weight)


def timings(count: int, seed: int) -> dict[str, float]:
    """Learning's fit on a ready design matrix of `count` synthetic outcomes (40 candidate factors, a known
    logistic truth), and the evaluation's figures of as many outcomes."""
    import numpy as np
    import pandas as pd

    from leads.services.quality import evaluation_figures
    from scoring.learning import fit_nonnegative

    rng = np.random.default_rng(seed)
    X = rng.random((count, 40))
    truth = -3 + X[:, :8] @ rng.uniform(0.5, 2.0, 8)
    y = (rng.random(count) < 1 / (1 + np.exp(-truth))).astype(float)
    weight = np.where(rng.random(count) < 0.05, 20.0, 1.0)
    started = time.perf_counter()
    fit_nonnegative(X, y, weight)
    learn_seconds = time.perf_counter() - started
    outcomes = pd.DataFrame(
        {
            "score": np.round(100 * X[:, :8].mean(axis=1), 2),
            "converted": y.astype(int),
            "returned": (rng.random(count) < 0.3).astype(int),
            "sampling_weight": weight,
            "exploration": weight > 1,
            "reason_features": [["roof_age", "hail_inches"]] * count,
        }
    )
    started = time.perf_counter()
    evaluation_figures(outcomes=outcomes)
    return {"learn_seconds": learn_seconds, "evaluate_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trade", default=DEFAULT_TRADE)
    parser.add_argument("--test-days", type=int, default=10)
    parser.add_argument("--outcomes", type=int, default=5_000)
    parser.add_argument("--timing-outcomes", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="learn and evaluate again on the market played before")
    args = parser.parse_args()
    if not 0 < args.test_days < args.days:
        parser.error("--test-days must be at least 1 and fewer than --days: learning needs the days before them")

    fresh_database(bench_database("quality"), reuse=args.reuse)
    import django

    django.setup()
    import datetime as dt

    import numpy as np

    from demo.truth import truth_variance_shares
    from leads.models import Lead
    from leads.selectors import lead_outcomes_known
    from leads.services.learning import model_learn, outcome_features
    from scoring import engine
    from scoring.models import Trade
    from scoring.services.scoring_models import scoring_model_check

    simulate_seconds = None if args.reuse else market_play(args)
    trade = Trade.objects.get(slug=args.trade)
    # The last day played (the clock may have passed midnight since, or a reused market be days old).
    today = Lead.objects.filter(trade=trade).order_by("-generated_on").values_list("generated_on", flat=True).first()
    if today is None:
        raise SystemExit(f"the market has no {args.trade} leads: nothing to learn from or evaluate")
    first_test_day = today - dt.timedelta(days=args.test_days - 1)
    # Learning sees only the leads made before the test days, the newest --outcomes of them.
    learned = model_learn(
        trade=trade,
        last_day=first_test_day - dt.timedelta(days=1),
        most_outcomes=args.outcomes,
        activate_if_better=False,
    )
    print(learned, file=sys.stderr)
    test = lead_outcomes_known(trade_id=trade.pk, first_day=first_test_day).reset_index(drop=True)
    if test.empty or not 0 < test["converted"].sum() < len(test):
        # Figures that need both outcomes are printed as null (a tiny market, too few days).
        print(f"the test days' leads have {len(test)} known outcomes: AUCs are null", file=sys.stderr)
    label = test["converted"].to_numpy(dtype=float)
    weight = test["sampling_weight"].to_numpy(dtype=float)
    truth = lead_truth(trade, test)

    ones = np.ones(len(test))
    default_auc, default_lift = weighted_figures(test["score"].to_numpy(dtype=float), label, weight)
    sold = {}
    sold["default"], sold["default_lift"] = weighted_figures(test["score"].to_numpy(dtype=float), label, ones)
    learned_auc = learned_lift = None
    if learned.model is not None and len(test):
        specs = scoring_model_check(model=learned.model)
        features = outcome_features(trade_id=trade.pk, outcomes=test, storm_window_days=learned.model.storm_window_days)
        learned_score = engine.score_frame(features, specs)["score"].to_numpy(dtype=float)
        learned_auc, learned_lift = weighted_figures(learned_score, label, weight)
        sold["learned"], sold["learned_lift"] = weighted_figures(learned_score, label, ones)
    truth_auc, _ = weighted_figures(truth["probability"].to_numpy(dtype=float), label, weight)
    oracle_auc, _ = weighted_figures(truth["seen_logit"].to_numpy(dtype=float), label, weight)
    sold["truth"] = weighted_figures(truth["probability"].to_numpy(dtype=float), label, ones)[0]
    sold["oracle"] = weighted_figures(truth["seen_logit"].to_numpy(dtype=float), label, ones)[0]
    shares = truth_variance_shares(trades=[args.trade])
    share_of_oracle = oracle_share(learned_auc, oracle_auc)
    share_unweighted = oracle_share(sold.get("learned"), sold.get("oracle"))
    figures = {
        "bench": "quality",
        "properties": args.properties,
        "days": args.days,
        "seed": args.seed,
        "trade": args.trade,
        "outcomes": learned.backtest.get("outcomes", 0),
        "test_outcomes": len(test),
        "test_conversions": int(label.sum()),
        "test_exploration_outcomes": int(test["exploration"].sum()),
        "learned_factors": learned.backtest.get("kept", 0),
        "truth_auc": rounded(truth_auc),
        "oracle_auc": rounded(oracle_auc),
        "default_auc": rounded(default_auc),
        "learned_auc": rounded(learned_auc),
        "default_top_decile_lift": rounded(default_lift, 2),
        "learned_top_decile_lift": rounded(learned_lift, 2),
        "learned_share_of_oracle": rounded(share_of_oracle, 3),
        "truth_unseen_share": rounded(shares.unseen_share, 3),
        "truth_interaction_share": rounded(shares.interaction_share, 3),
        **{f"{name}_auc_unweighted": rounded(sold.get(name)) for name in ("truth", "oracle", "default", "learned")},
        "learned_share_of_oracle_unweighted": rounded(share_unweighted, 3),
        "default_top_decile_lift_unweighted": rounded(sold.get("default_lift"), 2),
        "learned_top_decile_lift_unweighted": rounded(sold.get("learned_lift"), 2),
        "simulate_seconds": None if simulate_seconds is None else round(simulate_seconds, 1),
    }
    figures |= {name: round(value, 2) for name, value in timings(args.timing_outcomes, args.seed).items()}
    figures["timing_outcomes"] = args.timing_outcomes
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
