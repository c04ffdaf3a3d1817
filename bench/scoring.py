"""Scoring speed and memory: a full scoring of one trade over a market of N properties.

    python bench/scoring.py --properties 1000000 [--storms 100000] [--runs 3] [--orm-properties 20000]
                            [--challenger SHARE]

The bench database gets the demo market of N properties (seed 7; reused when it is already there)
and, on top of the market's own storm reports, a national feed of hail and wind reports over the
last two years at every US ZIP, up to --storms reports in all: a storm table the size of a national
feed, of which the model's window (90 days for roofing) and the market's metros hold a part.

Each run is `manage.py score --trade roofing` in a fresh process, timed from its ScoringRun, with the
process's peak memory from the kernel:
- full: the trade's scores emptied first, so every score is computed and written (a new market, or a
  new model version, which changes every row);
- next day: the same run scored as of the next day over the scores of the day before, the daily
  schedule's case (every score computed, only those that changed written).
Peak memory is also measured for partitions a tenth the size, to show it follows the partition size.
With --challenger SHARE, roofing runs a challenger on that share of the properties (the active version
with its first factor's weight doubled): every property is then scored by both versions; without it,
a challenger left by an earlier bench is ended first.
Then a plain per-row Django ORM loop (ORM reads of a property and its last permit, its features and
score in plain Python, update_or_create of its score) runs over --orm-properties properties in the
same process, for the ratio. The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, SEED, market_ensure, median, prepare_schema, use_bench_database

TRADE = "roofing"
FEED_DAYS = 730


def storm_feed_ensure(total: int, window_days: int, as_of: dt.date) -> tuple[int, int]:
    """Top the storm reports up to `total` with reports over every US ZIP in the last two years. Returns
    how many reports there are, and how many of them are in the scoring window."""
    import pandas as pd
    from django.db import connection

    from scoring import selectors
    from scoring.bulk import copy_rows
    from scoring.models import StormEvent

    window = StormEvent.objects.filter(event_date__gt=as_of - dt.timedelta(days=window_days), event_date__lte=as_of)
    missing = total - StormEvent.objects.count()
    if missing <= 0:
        return StormEvent.objects.count(), window.count()
    rng = np.random.default_rng(SEED)
    zips = selectors.residential_zip_frame()
    at = rng.integers(0, len(zips), missing)
    hail = rng.random(missing) < 0.5
    start = StormEvent.objects.filter(event_id__startswith="FEED-").count()
    feed = pd.DataFrame(
        {
            "event_id": [f"FEED-{start + i:07d}" for i in range(missing)],
            "event_date": np.datetime64(as_of, "D") - rng.integers(0, FEED_DAYS, missing).astype("timedelta64[D]"),
            "kind": np.where(hail, "hail", "wind"),
            "magnitude": np.where(
                hail, rng.choice([0.75, 1.0, 1.25, 1.75, 2.0], missing), rng.integers(58, 90, missing)
            ),
            "latitude": np.round(zips["latitude"].to_numpy()[at] + rng.normal(0, 0.05, missing), 6),
            "longitude": np.round(zips["longitude"].to_numpy()[at] + rng.normal(0, 0.05, missing), 6),
            "radius_miles": np.where(hail, 2.0, 5.0),
        }
    )
    with connection.cursor() as cursor:
        copy_rows(cursor, StormEvent._meta.db_table, feed)
    return StormEvent.objects.count(), window.count()


def challenger_ensure(share: float | None) -> None:
    """Make roofing run a challenger on `share` of the properties, or none (None)."""
    from scoring.models import Factor, ScoringModel
    from scoring.services.scoring_models import scoring_model_challenge, scoring_model_challenge_end

    active = ScoringModel.objects.get(trade__slug=TRADE, status=ScoringModel.Status.ACTIVE)
    running = ScoringModel.objects.filter(trade=active.trade, status=ScoringModel.Status.CHALLENGER).first()
    if running is not None and (share is None or running.challenger_share != share):
        scoring_model_challenge_end(model=running)
        running = None
    if share is None or running is not None:
        return
    number = max(ScoringModel.objects.filter(trade=active.trade).values_list("version", flat=True)) + 1
    draft = ScoringModel.objects.create(
        trade=active.trade, version=number, storm_window_days=active.storm_window_days, notes="Bench challenger"
    )
    for factor in active.factors.order_by("position"):
        Factor.objects.create(
            model=draft, position=factor.position, feature=factor.feature, transform=factor.transform,
            params=factor.params, weight=factor.weight * (2 if factor.position == 0 else 1), reason=factor.reason,
            reason_fallback=factor.reason_fallback,
        )  # fmt: skip
    scoring_model_challenge(model=draft, share=share)


def scores_empty() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE scoring_score")
        cursor.execute("VACUUM ANALYZE scoring_property")


def score_run(as_of: dt.date, partition_rows: int | None = None) -> dict:
    """`manage.py score --trade roofing` in a child process: run seconds, counts, peak RSS."""
    from scoring.models import ScoringRun

    command = [sys.executable, str(ROOT / "manage.py"), "score", "--trade", TRADE, "--as-of", as_of.isoformat()]
    if partition_rows:
        command += ["--partition-rows", str(partition_rows)]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"scoring failed:\n{output}")
    run = ScoringRun.objects.order_by("-id").first()
    return {
        "seconds": run.duration_seconds,
        "properties": run.properties_scored,
        "changed": run.scores_changed,
        "partitions": run.partitions,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def orm_loop(count: int, as_of: dt.date) -> float:
    """Properties per second of a plain per-row loop, the way one would write it without the engine's
    partitions: for each property, ORM reads (the property, its last permit of the trade, its stored
    score), its features and score in plain Python (the storms of the window read once), and
    update_or_create of its score. The transforms and reason texts are the engine's own."""
    import pandas as pd
    from django.db.models import Max

    from scoring import engine, geo
    from scoring.models import Permit, Property, Score, ScoringModel, StormEvent
    from scoring.services.scoring_models import scoring_model_check

    model = ScoringModel.objects.select_related("trade").get(trade__slug=TRADE, status=ScoringModel.Status.ACTIVE)
    factors = scoring_model_check(model=model)
    since = as_of - dt.timedelta(days=model.storm_window_days)
    storms = list(StormEvent.objects.filter(event_date__gt=since, event_date__lte=as_of))
    started = time.monotonic()
    for home in Property.objects.select_related("zip_code").order_by("id")[:count]:
        latitude = home.latitude if home.latitude is not None else home.zip_code.latitude
        longitude = home.longitude if home.longitude is not None else home.zip_code.longitude
        permit = Permit.objects.filter(property=home, trade=model.trade, issued_date__lte=as_of).aggregate(
            issued=Max("issued_date")
        )["issued"]
        values = {
            "roof_age": max(as_of.year - (home.roof_year or home.year_built or as_of.year), 0),
            "home_age": max(as_of.year - (home.year_built or as_of.year), 0),
            "market_value": home.market_value,
            "owner_occupied": home.owner_occupied,
            "property_type": home.property_type,
            # The records a reason quotes, or whose absence picks its fallback text.
            "roof_year": home.roof_year,
            "year_built": home.year_built,
            "trade_permit_date": permit,
            "last_sale_date": home.last_sale_date,
        }
        if home.last_sale_date:
            values["days_since_sale"] = (as_of - home.last_sale_date).days
            values["years_since_sale"] = round(values["days_since_sale"] / 365.25, 1)
        values["years_since_trade_permit"] = round((as_of - permit).days / 365.25, 1) if permit else values["home_age"]
        for group, kinds, name in (("hail", {"hail"}, "hail_inches"), ("wind", {"wind", "tornado", "hurricane"},
                                                                         "wind_mph")):  # fmt: skip
            best = None
            for storm in storms:
                if storm.kind not in kinds:
                    continue
                if storm.latitude is None:
                    miles = None if storm.zip_code_id == home.zip_code_id else -1
                elif abs(storm.latitude - latitude) * 69 > storm.radius_miles:
                    continue  # out of reach to the north or south: no need for the distance
                else:
                    miles = float(geo.haversine_miles(latitude, longitude, storm.latitude, storm.longitude))
                    miles = miles if miles <= storm.radius_miles else -1
                if miles == -1:
                    continue
                key = (storm.magnitude, storm.event_date, -(miles if miles is not None else 1e9))
                if best is None or key > best[0]:
                    best = (key, storm, miles)
            if best:
                _, storm, miles = best
                values[name] = storm.magnitude
                values[f"days_since_{group}"] = (as_of - storm.event_date).days
                values[f"{group}_date"] = storm.event_date.isoformat()
                values[f"{group}_where"] = "in its ZIP" if miles is None else f"{miles:.1f} mi away"
        points = []
        for position, factor in enumerate(factors):
            value = values.get(factor.feature)
            share = float(engine.transform(factor, pd.Series([value], dtype=object))[0])
            points.append((-factor.weight * share, position, factor, value))
        total = sum(factor.weight for factor in factors)
        score = round(100 * -sum(p[0] for p in points) / total, 2)
        decaying = [p for p in points if p[2].transform == "decay"]
        urgency = round(100 * -sum(p[0] for p in decaying) / sum(p[2].weight for p in decaying), 2) if decaying else 0
        reasons = [
            {"feature": factor.feature, "value": value, "points": round(-100 * weighted / total, 2),
             "text": engine.reason_text(factor, value, values)}
            for weighted, _, factor, value in sorted(points)[:3] if weighted < 0
        ]  # fmt: skip
        Score.objects.update_or_create(
            property=home, trade=model.trade,
            defaults={"model": model, "score": score, "urgency": urgency, "reasons": reasons, "digest": 0,
                      "scored_at": dt.datetime.now(dt.UTC)},
        )  # fmt: skip
    return count / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=1_000_000)
    parser.add_argument("--storms", type=int, default=100_000, help="Storm reports in the table, at least.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orm-properties", type=int, default=20_000)
    parser.add_argument("--challenger", type=float, default=None, metavar="SHARE", help="Run a challenger on SHARE.")
    args = parser.parse_args()

    use_bench_database()
    prepare_schema()
    from django.utils import timezone

    from scoring.models import ScoringModel

    market_ensure(args.properties)
    as_of = timezone.localdate()
    window = ScoringModel.objects.get(trade__slug=TRADE, status=ScoringModel.Status.ACTIVE).storm_window_days
    storms, storms_in_window = storm_feed_ensure(args.storms, window, as_of)
    challenger_ensure(args.challenger)

    full, next_day = [], []
    for number in range(args.runs):
        scores_empty()
        full.append(score_run(as_of))
        next_day.append(score_run(as_of + dt.timedelta(days=1)))
        print(f"run {number + 1}: full {json.dumps(full[-1])}; next day {json.dumps(next_day[-1])}", file=sys.stderr)
    tenth = score_run(as_of, partition_rows=max(1, full[0]["properties"] // full[0]["partitions"] // 10))
    print(f"tenth-size partitions: {json.dumps(tenth)}", file=sys.stderr)

    scores_empty()
    orm_per_s = orm_loop(args.orm_properties, as_of)
    seconds = median([run["seconds"] for run in full])
    next_day_seconds = median([run["seconds"] for run in next_day])
    print(
        json.dumps(
            {
                "bench": "scoring",
                "properties": args.properties,
                "storms": storms,
                "storms_in_window": storms_in_window,
                "runs": args.runs,
                "challenger_share": args.challenger,
                "seconds": round(seconds, 2),
                "properties_per_s": round(args.properties / seconds),
                "next_day_seconds": round(next_day_seconds, 2),
                "next_day_properties_per_s": round(args.properties / next_day_seconds),
                "next_day_scores_changed": round(median([run["changed"] for run in next_day])),
                "peak_rss_mb": round(max(run["peak_rss_mb"] for run in full + next_day)),
                "peak_rss_mb_tenth_partitions": round(tenth["peak_rss_mb"]),
                "orm_properties": args.orm_properties,
                "orm_properties_per_s": round(orm_per_s),
                "speedup": round(args.properties / seconds / orm_per_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
