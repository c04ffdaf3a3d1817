"""Faults, measured: every scenario of tests/faults/scenarios.py (a PostgreSQL restart during scoring, distributed
scoring, an import and the daily pipeline; a worker killed during distributed scoring; Redis killed and
PostgreSQL stopped under the API) run N times on a throw-away PostgreSQL and Redis of their own. Prints a line
per scenario run, then one JSON line of figures last:

    {"bench": "faults", "injected": ..., "completed_unattended": ..., "hangs": 0, "lost": 0, "duplicated": 0,
     "max_recovery_s": ...}

Usage: python bench/faults.py [--runs N] [--scenario NAME]... [--properties N]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.scenarios import SCENARIOS, scenario_run  # noqa: E402
from tests.faults.servers import Postgres, Redis, template_build  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="Runs of each scenario (3).")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="Only these (repeatable).")
    parser.add_argument("--properties", type=int, default=20_000, help="Properties of the market (20,000).")
    args = parser.parse_args(argv)
    # Stopped (SIGTERM), it still stops its servers and the processes it started (the finally blocks below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = args.scenario or list(SCENARIOS)

    directory = Path(tempfile.mkdtemp(prefix="leadengine-bench-faults-"))
    pg = Postgres()
    try:
        seed_redis = Redis()
        try:
            template_build(pg, seed_redis, properties=args.properties, log=directory / "template.log")
        finally:
            seed_redis.destroy()
        outcomes = []
        for name in names:
            for number in range(1, args.runs + 1):
                redis = Redis()
                try:
                    outcome = scenario_run(name, pg, redis, directory)
                finally:
                    redis.destroy()
                outcomes.append(outcome)
                print(
                    f"{name} #{number}: {'ok' if outcome.ok else 'FAILED'}, recovery {outcome.recovery_s} s, "
                    f"lost {outcome.lost}, duplicated {outcome.duplicated}; {'; '.join(outcome.notes)[-400:]}",
                    flush=True,
                )
    finally:
        pg.destroy()

    recoveries = [o.recovery_s for o in outcomes if o.recovery_s is not None]
    figures = {
        "bench": "faults",
        "runs_per_scenario": args.runs,
        "scenarios": len(names),
        "injected": len(outcomes),
        "completed_unattended": sum(o.completed_unattended and not o.hang for o in outcomes),
        "hangs": sum(o.hang for o in outcomes),
        "lost": sum(o.lost for o in outcomes),
        "duplicated": sum(o.duplicated for o in outcomes),
        "max_recovery_s": max(recoveries, default=None),
        "median_recovery_s": statistics.median(recoveries) if recoveries else None,
        "by_scenario": {
            name: {
                "completed": sum(o.ok for o in outcomes if o.key == name),
                "max_recovery_s": max((o.recovery_s or 0 for o in outcomes if o.key == name), default=None),
            }
            for name in names
        },
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
