"""The admin dashboard's aggregates and page over a market of N properties and M leads.

    python bench/dashboard.py --properties 1000000 --leads 100000 [--runs 5]

The bench database (its own, leadengine_bench_dash by default, so that it never collides with the other benchmarks')
gets the demo market of N properties (seed 7; reused when it is there), its roofing scores, every ZIP
owned with caps lifted, and at least M roofing leads routed to their owners, as bench/api.py builds them.
Their history is then spread over the last 90 days, as the days of a running business would have left
it: each lead's events are moved back by (lead id mod 90) days, and its life played on in SQL (of ten
leads: six delivered, three of those accepted, one converted, one returned, and one of the undelivered
ones expired), the event table rewritten in time order as it is written in production (the BRIN index
on its time depends on that). Two succeeded scoring runs of roofing and 200 job runs (one in ten failed)
are added once.

Each aggregate is then timed uncached (its selector called directly), and the admin index page through
Django's test client as a staff user: uncached (Redis emptied before each load) and cached. Medians of
--runs runs, in milliseconds. The last line printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench.common as common
from bench.common import market_ensure, median, prepare_schema

DATABASE_SUFFIX = "dash"  # its own database: leadengine_bench_dash by default
HISTORY_DAYS = 90


def history_ensure() -> None:
    """The leads' events spread over HISTORY_DAYS days and their lives played on (once)."""
    from django.db import connection

    from leads.models import LeadEvent

    if LeadEvent.objects.filter(to_state="converted").exists():
        return
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE leads_leadevent e SET at = e.at - (e.lead_id % {HISTORY_DAYS}) * interval '1 day'
            """
        )
        cursor.execute(
            f"""
            UPDATE leads_lead SET created_at = created_at - (id % {HISTORY_DAYS}) * interval '1 day',
                                  assigned_at = assigned_at - (id % {HISTORY_DAYS}) * interval '1 day'
            """
        )
        # Of ten assigned leads: 0-5 delivered, 0-2 accepted, 0 converted, 3 returned, 6 expired.
        steps = [
            ("delivered", "assigned", "delivered", "(0,1,2,3,4,5)", "1 hour"),
            ("accepted", "delivered", "accepted", "(0,1,2)", "1 day"),
            ("converted", "accepted", "converted", "(0)", "5 days"),
            ("returned", "delivered", "returned", "(3)", "2 days"),
            ("expired", "assigned", "expired", "(6)", "3 days"),
        ]
        for action, source, target, remainders, after in steps:
            cursor.execute(
                f"""
                INSERT INTO leads_leadevent (lead_id, action, from_state, to_state, actor, contractor_id, reason,
                                             override, at)
                SELECT l.id, '{action}', '{source}', '{target}', 'contractor', l.contractor_id, '', false,
                       l.assigned_at + interval '{after}'
                FROM leads_lead l
                WHERE l.state IN ('assigned', 'delivered') AND l.id % 10 IN {remainders}
                  AND l.assigned_at + interval '{after}' < now()
                """
            )
        cursor.execute(
            """
            UPDATE leads_lead l SET state = CASE l.id % 10 WHEN 0 THEN 'converted' WHEN 3 THEN 'returned'
                                                           ELSE 'expired' END,
                   closed_at = now(), expires_at = NULL
            WHERE l.state IN ('assigned', 'delivered') AND l.id % 10 IN (0, 3, 6)
              AND EXISTS (SELECT 1 FROM leads_leadevent e WHERE e.lead_id = l.id
                          AND e.to_state IN ('converted', 'returned', 'expired'))
            """
        )
        cursor.execute("CREATE TEMP TABLE events_by_time AS SELECT * FROM leads_leadevent ORDER BY at, id")
        cursor.execute("TRUNCATE leads_leadevent")
        cursor.execute("INSERT INTO leads_leadevent SELECT * FROM events_by_time ORDER BY at, id")
        cursor.execute("DROP TABLE events_by_time")
        cursor.execute("VACUUM ANALYZE leads_leadevent")
        cursor.execute("VACUUM ANALYZE leads_lead")
    print(f"lead history spread over {HISTORY_DAYS} days in {time.monotonic() - started:.1f} s", file=sys.stderr)


def runs_ensure(trade) -> None:
    """Two succeeded scoring runs of the trade (their distributions) and 200 job runs, once."""
    import datetime as dt

    from django.utils import timezone

    from leadengine.models import JobRun
    from scoring.models import ScoringModel, ScoringRun

    if not ScoringRun.objects.filter(trade=trade, status=ScoringRun.Status.SUCCEEDED).count() >= 2:
        model = ScoringModel.objects.get(trade=trade, status=ScoringModel.Status.ACTIVE)
        for day, shift in ((1, 0), (0, 1)):
            histogram = {f"{t}-{t + 10}": 1000 * (10 - abs(5 + shift - t // 10)) for t in range(0, 100, 10)}
            ScoringRun.objects.create(
                trade=trade, model=model, status=ScoringRun.Status.SUCCEEDED,
                as_of=timezone.localdate() - dt.timedelta(days=day), properties_scored=sum(histogram.values()),
                finished_at=timezone.now(),
                distribution={"count": sum(histogram.values()), "mean_score": 50.0 + shift, "p50": 50.0,
                              "histogram": histogram},
            )  # fmt: skip
    if JobRun.objects.count() < 200:
        now = timezone.now()
        JobRun.objects.bulk_create(
            JobRun(
                job=JobRun.Job.LEAD_EXPIRY, status=JobRun.Status.FAILED if n % 10 == 0 else JobRun.Status.SUCCEEDED,
                queued_at=now - dt.timedelta(hours=n), started_at=now - dt.timedelta(hours=n),
                finished_at=now - dt.timedelta(hours=n) + dt.timedelta(seconds=3), error="boom" if n % 10 == 0 else "",
            )
            for n in range(200)
        )  # fmt: skip


def timed_ms(call, runs: int, before=None) -> float:
    times = []
    for _ in range(runs):
        if before:
            before()
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(median(times), 1)


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
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from bench.api import leads_ensure
    from bench.leads import TRADE, owners_ensure, scores_ensure
    from leadengine.dashboard import DEFAULT_DEMAND_MIN_SCORE, HIGH_DEMAND, period_of
    from leadengine.selectors import jobs_overdue
    from leads.models import Lead, LeadEvent
    from leads.selectors import lead_outcomes, leads_funnel, leads_per_day
    from scoring.models import Trade
    from scoring.selectors import scoring_runs_latest
    from territories.selectors import territory_coverage_summary

    market_ensure(args.properties)
    scores_ensure(args.properties)
    owners_ensure()
    trade = Trade.objects.get(slug=TRADE)
    if Lead.objects.count() < args.leads:  # the played history closed some: count every lead, not the open ones
        leads_ensure(trade, args.leads)
    history_ensure()
    runs_ensure(trade)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have by now: the claims above changed the territories

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # A superuser: the dashboard is shown only to staff who may view leads.
    user, _ = get_user_model().objects.update_or_create(
        username="bench-dashboard", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)

    def page(days: int):
        def load():
            response = client.get(f"/admin/?days={days}")
            assert response.status_code == 200, response.status_code
            assert b'<div id="dashboard">' in response.content

        return load

    runs = args.runs
    month, quarter = period_of(days=30), period_of(days=90)
    figures = {
        "funnel_30d_ms": timed_ms(lambda: leads_funnel(start=month.start, end=month.end), runs),
        "funnel_90d_ms": timed_ms(lambda: leads_funnel(start=quarter.start, end=quarter.end), runs),
        "per_day_30d_ms": timed_ms(
            lambda: leads_per_day(start=month.start, end=month.end, zone=settings.TIME_ZONE), runs
        ),
        "per_day_90d_ms": timed_ms(
            lambda: leads_per_day(start=quarter.start, end=quarter.end, zone=settings.TIME_ZONE), runs
        ),
        "outcomes_30d_ms": timed_ms(lambda: lead_outcomes(start=month.start, end=month.end), runs),
        "outcomes_90d_ms": timed_ms(lambda: lead_outcomes(start=quarter.start, end=quarter.end), runs),
        "coverage_ms": timed_ms(
            lambda: territory_coverage_summary(min_score=DEFAULT_DEMAND_MIN_SCORE, high_demand=HIGH_DEMAND), runs
        ),
        "scoring_runs_ms": timed_ms(lambda: scoring_runs_latest(per_trade=2), runs),
        "jobs_overdue_ms": timed_ms(lambda: jobs_overdue(), runs),
        "page_30d_uncached_ms": timed_ms(page(30), runs, before=cache.clear),
        "page_90d_uncached_ms": timed_ms(page(90), runs, before=cache.clear),
    }
    page(30)()  # warm
    figures["page_30d_cached_ms"] = timed_ms(page(30), runs)
    cache.clear()
    summary = {
        "bench": "dashboard",
        "properties": args.properties,
        "leads": Lead.objects.count(),
        "lead_events": LeadEvent.objects.count(),
        "runs": runs,
    }
    print(json.dumps(summary | figures))


if __name__ == "__main__":
    main()
