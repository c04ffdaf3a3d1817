"""Lead generation and routing speed over a scored market of N properties.

    python bench/leads.py --properties 1000000 [--runs 3]

The bench database gets the demo market of N properties (seed 7; reused when it is there), its roofing
scores (`manage.py score --trade roofing` when they are missing), and the demo contractors with their
territories. So that every lead has an owner to go to, a "Bench Roofing" contractor claims the demo
market's ZIPs nobody owns, and the roofing owners' caps and prepaid limits are lifted (bench database only).

Each run starts from an empty lead table and times, in this process, each service call including its
commit:
- leads_1000: leads_generate(limit=1000) with the default filters (score 80 and up, at most 25 new leads
  per ZIP a day, 90-day cooldown): the daily case, ranking every candidate of the market;
- leads_100000: leads_generate(limit=100000) with the score floor lowered to 50 and no ZIP limit, so that
  the market has more than 100,000 candidates;
- leads_volume: leads_generate() with a volume target (capacity factor 1.5: the owners have no caps, so
  2 leads per owned ZIP x 1.5, and 50 for the pool), best first per owner, at score 50 and up with at most
  25 new leads per ZIP a day;
- leads_volume_exploration: the same with an exploration share of 0.1 (the draw reads every score of
  the trade that passes the filters below the cut);
- leads_100000_zip_limit: the same with a ZIP limit of 10,000 (every candidate ranked within its ZIP);
- route_100000: leads_route() of those 100,000 pool leads to the owners of their ZIPs;
- expire_100000: leads_expire() of them 73 hours later, past the acceptance SLA;
- route_100000_priced: 100,000 new pool leads routed again with a price list in force (three score bands
  and an urgent band): each lead stamped with its price and charged in the ledger in the same statement.
Medians of --runs runs. The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, market_ensure, median, prepare_schema, use_bench_database

TRADE = "roofing"


def scores_ensure(properties: int) -> None:
    from scoring.models import Score

    if Score.objects.filter(trade__slug=TRADE).count() != properties:
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "score", "--trade", TRADE],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip


def owners_ensure() -> int:
    """Every demo ZIP of the trade owned, and its owners without caps or prepaid limits; returns the owned ZIP
    count."""
    from django.core.management import call_command
    from django.db import connection

    from contractors.models import Contractor
    from contractors.services.contractors import contractor_create
    from scoring.models import Property, Trade
    from territories.models import Territory
    from territories.services.claims import territory_claim_many

    trade = Trade.objects.get(slug=TRADE)
    if not Territory.objects.exists():
        call_command("seed_demo_territories", verbosity=0)
    owned = set(Territory.objects.active().filter(trade=trade).values_list("zip_code_id", flat=True))
    free = sorted(set(Property.objects.values_list("zip_code_id", flat=True).distinct()) - owned)
    if free:
        bench = Contractor.objects.filter(slug="bench-roofing").first() or contractor_create(
            name="Bench Roofing", slug="bench-roofing", trades=[trade]
        )
        territory_claim_many(contractor=bench, trade=trade, zip_codes=free)
    Contractor.objects.filter(territories__trade=trade).update(
        daily_cap=None, weekly_cap=None, monthly_cap=None, billing=Contractor.Billing.ARREARS
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE scoring_score")
        cursor.execute("VACUUM ANALYZE scoring_property")
    return Territory.objects.active().filter(trade=trade).count()


def leads_empty() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE leads_lead, leads_leadevent CASCADE")  # and what refers to a lead (webhook attempts)
        cursor.execute("ANALYZE leads_lead")


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def one_run(trade, now: dt.datetime) -> dict:
    from leads.models import LeadFilter, LedgerEntry, PriceList
    from leads.services.billing import Band, price_list_create
    from leads.services.generation import leads_generate
    from leads.services.lifecycle import leads_expire
    from leads.services.routing import leads_route

    figures = {}
    defaults = {"min_score": 80, "min_urgency": None, "max_per_zip_per_day": 25, "cooldown_days": 90}
    defaults |= {"capacity_factor": 1.5, "pool_leads_per_day": 50, "uncapped_leads_per_zip": 2}
    LeadFilter.objects.update_or_create(trade=trade, defaults=defaults | {"enabled": True, "exploration_share": 0})
    leads_empty()
    figures["leads_1000_seconds"], summary = timed(lambda: leads_generate(trade=trade, limit=1000, now=now))
    figures["leads_1000_created"] = summary.created

    LeadFilter.objects.filter(trade=trade).update(min_score=50)
    leads_empty()
    figures["leads_volume_seconds"], summary = timed(lambda: leads_generate(trade=trade, now=now))
    figures["leads_volume_created"] = summary.created
    figures["leads_volume_target"] = (summary.owned_target or 0) + (summary.pool_target or 0)

    LeadFilter.objects.filter(trade=trade).update(exploration_share=0.1)
    leads_empty()
    figures["leads_volume_exploration_seconds"], summary = timed(lambda: leads_generate(trade=trade, now=now))
    figures["leads_volume_exploration_created"] = summary.created
    figures["leads_volume_exploration_drawn"] = summary.exploration
    LeadFilter.objects.filter(trade=trade).update(exploration_share=0)

    LeadFilter.objects.filter(trade=trade).update(min_score=50, max_per_zip_per_day=10_000)
    leads_empty()
    figures["leads_100000_zip_limit_seconds"], _ = timed(lambda: leads_generate(trade=trade, limit=100_000, now=now))

    LeadFilter.objects.filter(trade=trade).update(max_per_zip_per_day=None)
    leads_empty()
    figures["leads_100000_seconds"], summary = timed(lambda: leads_generate(trade=trade, limit=100_000, now=now))
    figures["leads_100000_created"] = summary.created
    figures["route_100000_seconds"], routed = timed(lambda: leads_route(now=now))
    figures["route_100000_assigned"] = routed.assigned
    later = now + dt.timedelta(hours=73)
    figures["expire_100000_seconds"], expired = timed(lambda: leads_expire(now=later))
    figures["expire_100000_expired"] = expired.unaccepted

    # The same routing with a price list in force: each lead priced by its band and charged in the ledger.
    leads_empty()
    leads_generate(trade=trade, limit=100_000, now=now)
    PriceList.objects.filter(trade=trade).delete()
    bands = [Band(0, Decimal("20.00")), Band(60, Decimal("30.00")), Band(80, Decimal("45.00"))]
    bands.append(Band(0, Decimal("60.00"), urgent=True))
    start = now - dt.timedelta(days=1)
    price_list_create(trade=trade, bands=bands, effective_from=start, now=start)
    figures["route_100000_priced_seconds"], routed = timed(lambda: leads_route(now=now))
    figures["route_100000_priced_charged"] = LedgerEntry.objects.filter(kind="lead_charge").count()
    PriceList.objects.filter(trade=trade).delete()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    use_bench_database()
    prepare_schema()
    from django.utils import timezone

    from scoring.models import Trade

    market_ensure(args.properties)
    scores_ensure(args.properties)
    owned = owners_ensure()
    trade = Trade.objects.get(slug=TRADE)
    runs = []
    for number in range(args.runs):
        runs.append(one_run(trade, timezone.now()))
        print(f"run {number + 1}: {json.dumps({k: round(v, 3) for k, v in runs[-1].items()})}", file=sys.stderr)
    leads_empty()
    figures = {key: round(median([run[key] for run in runs]), 3) for key in runs[0]}  # counts stay integers
    print(
        json.dumps({"bench": "leads", "properties": args.properties, "owned_zips": owned, "runs": args.runs} | figures)
    )


if __name__ == "__main__":
    main()
