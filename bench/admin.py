"""The admin's change lists of the big tables over a market of N properties and M leads.

    python bench/admin.py --properties 1000000 --leads 100000 [--runs 5]

The bench database (its own, leadengine_bench_admin by default) gets what bench/dashboard.py builds, with the same
helpers: the demo market of N properties (seed 7; reused when it is there), its roofing scores, every ZIP
owned, at least M roofing leads routed to their owners, and 200 job runs; then ANALYZE, as autovacuum
would have run by then.

Each change list (properties, scores, leads, territories, job runs) is loaded through Django's test
client as a superuser: unfiltered, filtered by one of its list filters, and searched. Medians of --runs
loads, in milliseconds, with the queries each load ran and whether its count was an estimate ("about").
For comparison, the exact COUNT(*) of each table that the change list no longer runs. The last line
printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench.common as common
from bench.common import market_ensure, median, prepare_schema

DATABASE_SUFFIX = "admin"  # its own database: leadengine_bench_admin by default


def pages(trade) -> dict[str, str]:
    """name -> URL: each change list unfiltered, by a list filter and by a search that finds rows."""
    from leads.models import Lead
    from scoring.models import Property
    from territories.models import Territory

    parcel = Property.objects.order_by("pk").values_list("parcel_id", flat=True)[500]
    lead = Lead.objects.order_by("-pk").values("zip_code", "property__parcel_id")[:1].get()
    zip_owned = Territory.objects.active().order_by("pk").values_list("zip_code_id", flat=True)[:1].get()
    return {
        "properties": "/admin/scoring/property/",
        "properties_filtered": "/admin/scoring/property/?property_type__exact=townhouse",
        "properties_search_parcel": f"/admin/scoring/property/?q={parcel}",
        "properties_search_zip": f"/admin/scoring/property/?q={zip_owned}",
        "scores": "/admin/scoring/score/",
        "scores_filtered": f"/admin/scoring/score/?trade__id__exact={trade.pk}",
        "scores_search": f"/admin/scoring/score/?q={parcel}",
        "leads": "/admin/leads/lead/",
        "leads_filtered": "/admin/leads/lead/?state__exact=assigned",
        "leads_search_zip": f"/admin/leads/lead/?q={lead['zip_code']}",
        "leads_search_parcel": f"/admin/leads/lead/?q={lead['property__parcel_id']}",
        "territories": "/admin/territories/territory/",
        "territories_filtered": "/admin/territories/territory/?ownership=active",
        "territories_search": f"/admin/territories/territory/?q={zip_owned}",
        "job_runs": "/admin/leadengine/jobrun/",
        "job_runs_filtered": "/admin/leadengine/jobrun/?status__exact=failed",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    common.use_bench_database(common.bench_database(DATABASE_SUFFIX))
    prepare_schema()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.api import leads_ensure
    from bench.dashboard import runs_ensure
    from bench.leads import TRADE, owners_ensure, scores_ensure
    from leads.models import Lead
    from scoring.models import Trade

    market_ensure(args.properties)
    scores_ensure(args.properties)
    owners_ensure()
    trade = Trade.objects.get(slug=TRADE)
    if Lead.objects.count() < args.leads:
        leads_ensure(trade, args.leads)
    runs_ensure(trade)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have by now

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)

    figures: dict[str, object] = {}
    for name, url in pages(trade).items():
        client.get(url)  # warm: templates compiled, the session read once
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url).content.decode()
        figures[f"{name}_ms"] = round(median(times), 1)
        figures[f"{name}_queries"] = len(queries)
        figures[f"{name}_estimated"] = bool(re.search(r'class="estimated-count"|about [0-9,]+ results', page))
        print(f"{name}: {figures[f'{name}_ms']} ms, {len(queries)} queries  {url}", file=sys.stderr)

    with connection.cursor() as cursor:
        for table in ("scoring_property", "scoring_score", "leads_lead", "territories_territory"):
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                cursor.execute(f"SELECT COUNT(*) FROM {table}")  # what Django's paginator would run
                times.append((time.perf_counter() - started) * 1000)
            figures[f"exact_count_{table}_ms"] = round(median(times), 1)

    from scoring.models import Property, Score
    from territories.models import Territory

    summary = {
        "bench": "admin",
        "properties": Property.objects.count(),
        "scores": Score.objects.count(),
        "leads": Lead.objects.count(),
        "territories": Territory.objects.count(),
        "runs": args.runs,
    }
    print(json.dumps(summary | figures))


if __name__ == "__main__":
    main()
