"""From storm to doorstep: how soon a storm file's leads reach the contractors' webhooks.

    python bench/storm.py --properties 1000000 [--storms 50] [--reach 20000] [--runs 3]

The bench database gets the demo market of N properties (seed 7; reused when it is there), every trade with
an active model scored (`manage.py score` when scores are missing), and every ZIP of the market owned for
each trade whose model reads storms (the demo contractors, and a "Bench <trade>" contractor for the ZIPs
nobody owns; caps and prepaid limits lifted, bench database only), every owner's webhook pointed at a
receiver in this process (http://127.0.0.1, answering 200 at once). A real Celery worker (two pool
processes, as `make worker` runs) takes the fast path's tasks on a queue of its own.

Each run empties the lead table, then imports a storm file of --storms hail reports scattered over the
market's densest metro (around its most populous ZIP), their radius chosen so that together they reach
about --reach properties; each run's reports are new ones (their own ids and a larger hail), so every run
changes scores (the reports of earlier bench runs are deleted first). Timed from the start of the import
(data_file_import, in this process): the first and the last webhook received, once every lead the fast path
assigned was delivered. Then, once, the full nightly
run (flows.daily_run: every trade scored, every trade's leads made and routed, in this process): the work
that storm would otherwise wait for. Medians of --runs runs. The last line printed is one JSON object:

{"bench": "storm", "properties": N, "properties_hit": ..., "rescored": ..., "leads": ..., "first_webhook_s":
 ..., "last_webhook_s": ..., "rescoring_s": ..., "full_nightly_s": ..., "speedup": full / last webhook,
 "incremental_scoring_s": the storm's incremental runs, "full_scoring_s": the nightly's scoring runs,
 "scoring_speedup": the one over the other}
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, market_ensure, median, prepare_schema, use_bench_database

# The worker reaches the receiver on 127.0.0.1 over http: allowed for this bench's worker only.
RECEIVER_ENV = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_ALLOW_HTTP": "true"}
WAIT_SECONDS = 300  # a run whose leads are not all delivered by then failed


class Receiver:
    """A webhook receiver in a thread: the time (perf_counter) of every POST and the lead it carried."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts.append((at, json.loads(body).get("id", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a delivery run posts WEBHOOK_CONCURRENCY at a time

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/leads"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.posts.clear()

    def seen(self) -> tuple[int, float | None, float | None]:
        """Distinct leads posted, and the first and last post's time."""
        with self.lock:
            if not self.posts:
                return 0, None, None
            return len({lead for _, lead in self.posts}), self.posts[0][0], max(at for at, _ in self.posts)


class Worker:
    """A real Celery worker process on a queue of its own (this process's tasks are sent there)."""

    def __init__(self, log: Path) -> None:
        from leadengine.celery import app

        self.queue = f"bench-storm-{uuid.uuid4().hex[:8]}"
        app.conf.task_default_queue = self.queue
        argv = ["worker", "-Q", self.queue, "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-l", "warning"]  # fmt: skip
        boot = (
            "from leadengine.celery import app; "
            f"app.conf.task_default_queue = {self.queue!r}; app.worker_main({argv!r})"
        )
        env = {**os.environ, **RECEIVER_ENV, "DJANGO_SETTINGS_MODULE": "leadengine.settings"}
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", boot], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def ready(self, timeout: float = 60) -> None:
        from leadengine.celery import app

        deadline = time.monotonic() + timeout
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"the worker did not start; its log: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def scores_ensure(properties: int) -> None:
    from scoring.models import Score
    from scoring.selectors import trades_with_active_model

    trades = list(trades_with_active_model())
    if Score.objects.filter(trade__in=trades).count() != properties * len(trades):
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "score"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
        )


def owners_ensure(url: str) -> list[str]:
    """Every ZIP of the market owned for each trade whose model reads storms, owners uncapped (caps and prepaid
    limits), every webhook at
    `url`; returns those trades' slugs."""
    from django.core.management import call_command
    from django.db import connection

    from contractors.models import Contractor
    from contractors.services.contractors import contractor_create
    from scoring.models import Property
    from scoring.selectors import trades_reading_storms
    from territories.models import Territory
    from territories.services.claims import territory_claim_many

    if not Territory.objects.exists():
        call_command("seed_demo_territories", verbosity=0)
    zips = set(Property.objects.values_list("zip_code_id", flat=True).distinct())
    trades = list(trades_reading_storms())
    for trade in trades:
        owned = set(Territory.objects.active().filter(trade=trade).values_list("zip_code_id", flat=True))
        free = sorted(zips - owned)
        if free:
            slug = f"bench-{trade.slug}"
            bench = Contractor.objects.filter(slug=slug).first() or contractor_create(
                name=f"Bench {trade.name}", slug=slug, trades=[trade]
            )
            territory_claim_many(contractor=bench, trade=trade, zip_codes=free)
    owners = Contractor.objects.filter(territories__ended_at__isnull=True).distinct()
    Contractor.objects.filter(pk__in=owners).update(
        daily_cap=None,
        weekly_cap=None,
        monthly_cap=None,
        webhook_url=url,
        status=Contractor.Status.ACTIVE,
        billing=Contractor.Billing.ARREARS,  # no prepaid limit holds a lead back
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE scoring_score")
        cursor.execute("VACUUM ANALYZE scoring_property")
    return [trade.slug for trade in trades]


def storm_plan(*, storms: int, reach: int, seed: int = 1) -> list[tuple[float, float, float]]:
    """`storms` hail points scattered within 10 miles of the most populous ZIP's centre of homes, and one
    radius for all, chosen (by bisection on the homes' own coordinates) so that together they reach about
    `reach` properties."""
    import numpy as np
    from django.db import connection

    from scoring import geo

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT coalesce(p.latitude, z.latitude), coalesce(p.longitude, z.longitude), p.zip_code
            FROM scoring_property p JOIN scoring_zipcode z ON z.code = p.zip_code"""
        )
        rows = cursor.fetchall()
    lat = np.array([row[0] for row in rows], dtype=float)
    lon = np.array([row[1] for row in rows], dtype=float)
    codes = np.array([row[2] for row in rows])
    values, counts = np.unique(codes, return_counts=True)
    busiest = codes == values[counts.argmax()]
    centre = float(lat[busiest].mean()), float(lon[busiest].mean())
    rng = np.random.default_rng(seed)
    spread = 10 / geo.MILES_PER_DEGREE
    points_lat = centre[0] + rng.uniform(-spread, spread, storms)
    points_lon = centre[1] + rng.uniform(-spread, spread, storms) / np.cos(np.radians(centre[0]))

    def reached(radius: float) -> int:
        hit = np.zeros(len(lat), dtype=bool)
        for point, _, _ in geo.within_radius(lat, lon, points_lat, points_lon, np.full(storms, radius)):
            hit[point] = True
        return int(hit.sum())

    low, high = 0.05, 50.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if reached(middle) < reach else (low, middle)
    return [(float(a), float(b), round(high, 3)) for a, b in zip(points_lat, points_lon, strict=True)]


def storm_file(path: Path, plan: list[tuple[float, float, float]], *, run: int) -> Path:
    from django.utils import timezone

    stamp = uuid.uuid4().hex[:6]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id", "event_date", "kind", "magnitude", "latitude", "longitude", "radius_miles"])
        for number, (lat, lon, radius) in enumerate(plan):
            day = timezone.localdate().isoformat()
            writer.writerow([f"BENCH-{stamp}-{number}", day, "hail", 1.0 + 0.25 * run, lat, lon, radius])
    return path


def storms_forget() -> None:
    """The storm reports of earlier bench runs deleted, so that this one's (1 inch of hail, then 1.25, 1.5...)
    are the largest there and change the scores of the homes they reach, as a new storm does."""
    from scoring.models import StormEvent

    StormEvent.objects.filter(event_id__startswith="BENCH-").delete()


def leads_empty() -> None:
    """No lead, and no job run waiting or running (a run left queued by an earlier bench's stopped worker would
    hold the next delivery back)."""
    from django.db import connection

    from leadengine.models import JobRun

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE leads_lead, leads_leadevent CASCADE")
        cursor.execute("ANALYZE leads_lead")
    JobRun.objects.filter(status__in=JobRun.ACTIVE).delete()


def one_run(plan, receiver: Receiver, directory: Path, run: int) -> dict:
    from leads.models import Lead
    from scoring.models import ImportRun, ScoringRun
    from scoring.services.imports import data_file_import

    leads_empty()
    receiver.reset()
    path = storm_file(directory / f"storms-{run}.csv", plan, run=run)
    started = time.perf_counter()
    result = data_file_import(kind="storms", path=path)
    imported = time.perf_counter() - started
    if result.run.rescoring != "pending":
        raise SystemExit(f"the storm file changed nothing to rescore: {result.summary()} ({result.run.rescoring})")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        run_row = ImportRun.objects.get(pk=result.run.pk)
        if run_row.rescoring == "done":
            rescored_at = time.perf_counter()
            break
        if run_row.rescoring != "pending" or time.monotonic() > deadline:
            raise SystemExit(f"the rescoring did not end: {run_row.rescoring} {run_row.rescoring_note}")
        time.sleep(0.02)
    assigned = Lead.objects.exclude(contractor=None).count()
    while True:
        seen, first, last = receiver.seen()
        if seen >= assigned and not Lead.objects.filter(state="assigned").exists():
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{seen} of {assigned} leads posted after {WAIT_SECONDS} s")
        time.sleep(0.02)
    runs = ScoringRun.objects.filter(kind="incremental", started_at__gte=result.run.started_at)
    return {
        "import_s": imported,
        "rescoring_s": rescored_at - started,
        "first_webhook_s": (first - started) if first is not None else None,
        "last_webhook_s": (last - started) if last is not None else None,
        "properties_hit": max((r.properties_scored for r in runs), default=0),
        "incremental_scoring_s": sum(r.duration_seconds or 0 for r in runs),
        "rescored": sum(r.scores_changed for r in runs),
        "leads": Lead.objects.count(),
        "leads_posted": seen,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=1_000_000)
    parser.add_argument("--storms", type=int, default=50)
    parser.add_argument("--reach", type=int, default=20_000, help="Properties the storms reach together.")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    use_bench_database()
    prepare_schema()
    market_ensure(args.properties)
    scores_ensure(args.properties)
    receiver = Receiver()
    trades = owners_ensure(receiver.url)
    plan = storm_plan(storms=args.storms, reach=min(args.reach, args.properties))
    storms_forget()
    figures: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as directory:
        worker = Worker(Path(directory) / "worker.log")
        try:
            worker.ready()
            for run in range(args.runs):
                figures.append(one_run(plan, receiver, Path(directory), run))
                print(json.dumps({"run": run + 1, **figures[-1]}), file=sys.stderr)
        finally:
            worker.stop()
    from leadengine.flows import daily_run

    leads_empty()
    started = time.perf_counter()
    nightly = daily_run()
    full = time.perf_counter() - started
    if not nightly.ok:
        raise SystemExit(f"the full nightly run failed: {nightly.lines()}")
    result = {
        "bench": "storm",
        "properties": args.properties,
        "storms": args.storms,
        "trades_rescored": trades,
        "runs": args.runs,
        **{key: median([f[key] for f in figures]) for key in ("properties_hit", "rescored", "leads", "leads_posted")},
        **{
            key: round(median([f[key] for f in figures if f[key] is not None] or [0.0]), 3)
            for key in ("import_s", "incremental_scoring_s", "rescoring_s", "first_webhook_s", "last_webhook_s")
        },
        "full_nightly_s": round(full, 1),
        "full_scoring_s": round(sum(run.duration_seconds or 0 for run in nightly.scoring), 1),
    }
    result["speedup"] = round(full / result["last_webhook_s"], 1) if result["last_webhook_s"] else None
    incremental = result["incremental_scoring_s"]
    result["scoring_speedup"] = round(result["full_scoring_s"] / incremental, 1) if incremental else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
