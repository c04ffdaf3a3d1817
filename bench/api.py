"""REST API latency and throughput under concurrent contractors, served by gunicorn.

    python bench/api.py --properties 1000000 --leads 100000 [--clients 32] [--seconds 30]
                        [--workers 3] [--threads 1]

The bench database gets the demo market of N properties (seed 7; reused when it is there), its roofing
scores, every ZIP owned with caps lifted (as bench/leads.py does), and at least --leads roofing leads
assigned or delivered to their contractors: topped up with leads_generate (score floor lowered to 50,
then 0, no ZIP limit, a one-day cooldown) and leads_route only when fewer are there, so runs reuse them. Each
contractor holding leads gets a new API key (the previous run's bench keys are deleted).

gunicorn serves leadengine.wsgi:application on 127.0.0.1 (a free port) with DEBUG off and no HTTPS
redirect, against the bench database, with the rate limit raised out of the way. --clients threads
(stdlib http.client, keep-alive where the worker class allows it) each act as one contractor for
--seconds, in a closed loop without think time, mixing:
- list (40%): GET /api/v1/leads/?min_score=<50|60|70>&ordering=-score&page_size=50, and one time in
  four the next page through its cursor; reading assigned leads delivers them;
- detail (40%): GET /api/v1/leads/<id>/ of one of its leads;
- accept (20%): POST /api/v1/leads/<id>/accept/ of a lead it saw delivered (200), or of one of its
  leads at random; 409 (already accepted, not delivered yet) is an expected answer.
With --floor the same clients then call /healthz (no key, no query) for as long: the rate and latency
of the server stack alone on this machine, the floor under the API's figures.
Errors are 5xx, connection failures and any other status. The last line printed is one JSON object:
requests, rps, latency percentiles overall and per endpoint, errors, the gunicorn configuration.

gunicorn configuration (2-core machine, client threads on the same cores), 32 clients, 12 s each:
sync 2/3/4 workers 44/46/46 requests/s; gthread 2x2 44, 2x4 45-74, 2x8 48, 3x2 50, 3x4 63. The default,
gthread with 2 workers of 4 threads, keeps connections alive (sync workers close each one) and was
the best seen; every configuration is CPU-bound at about 50-75 requests/s, so with 32 clients in a
closed loop latency is queueing (Little's law: 32 / 73 per second = 440 ms on average).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, market_ensure, prepare_schema, use_bench_database
from bench.leads import TRADE, owners_ensure, scores_ensure

DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4
KEY_NAME = "bench api"
LEAD_IDS_PER_CLIENT = 2_000  # of its contractor's leads a client picks details and accepts from
EXPECTED = {"list": {200}, "next": {200}, "detail": {200}, "accept": {200, 409}, "healthz": {200}}


def leads_ensure(trade, count: int) -> int:
    """At least `count` leads of the trade assigned or delivered to contractors; returns how many there are."""
    from django.db import connection

    from leads.models import Lead, LeadFilter
    from leads.services.generation import leads_generate
    from leads.services.routing import leads_route

    held = Lead.objects.filter(trade=trade, state__in=[Lead.State.ASSIGNED, Lead.State.DELIVERED])
    have = held.count()
    if have >= count:
        return have
    started = time.monotonic()
    for min_score in (50, 0):  # 50: more than 200,000 candidates in a 1,000,000 market; 0 for top-ups
        defaults = {"min_score": min_score, "min_urgency": None, "max_per_zip_per_day": None, "cooldown_days": 1}
        LeadFilter.objects.update_or_create(trade=trade, defaults=defaults | {"enabled": True})
        leads_generate(trade=trade, limit=count - have)
        leads_route(trade_ids=[trade.pk])
        have = held.count()
        if have >= count:
            break
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_lead")
        cursor.execute("ANALYZE leads_leadevent")
    print(f"{have:,} leads assigned or delivered after {time.monotonic() - started:.1f} s", file=sys.stderr)
    return have


def clients_prepare(trade) -> list[dict]:
    """One API key per contractor holding leads of the trade, with a sample of its lead ids."""
    from contractors.models import ApiKey, Contractor
    from contractors.services.api_keys import api_key_create
    from leads.models import Lead

    ApiKey.objects.filter(name=KEY_NAME).delete()
    contractors = Contractor.objects.filter(
        pk__in=Lead.objects.filter(trade=trade, state__in=Lead.OPEN, contractor__isnull=False).values("contractor")
    ).order_by("pk")
    clients = []
    for contractor in contractors:
        _, raw_key = api_key_create(contractor=contractor, name=KEY_NAME)
        ids = list(
            Lead.objects.filter(contractor=contractor, trade=trade, state__in=Lead.OPEN)
            .order_by("?")
            .values_list("pk", flat=True)[:LEAD_IDS_PER_CLIENT]
        )
        clients.append({"contractor": contractor.slug, "key": raw_key, "lead_ids": ids})
    return clients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_start(database_url: str, port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    from django.conf import settings

    env = os.environ | {
        "DATABASE_URL": database_url,
        # the Redis this process uses, embedded ones included: with DEBUG off an unset URL is refused
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",  # plain http on the loopback
        "SECURE_HSTS_SECONDS": "0",
        "API_RATE_PER_MINUTE": "100000000",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "gunicorn", "leadengine.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "gthread" if threads > 1 else "sync",
        "--threads", str(threads), "--timeout", "60", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def gunicorn_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the arbiter stops its workers gracefully
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ready_wait(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            body = response.read()
            connection.close()
            if response.status == 200:
                return
            print(f"/readyz: {response.status} {body[:200]!r}", file=sys.stderr)
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


class Client(threading.Thread):
    """One contractor's system calling the API in a closed loop until `stop_at`."""

    def __init__(self, number: int, profile: dict, port: int, stop_at: float, floor: bool = False):
        super().__init__(daemon=True)
        self.floor = floor
        self.profile, self.port, self.stop_at = profile, port, stop_at
        self.random = random.Random(number)
        self.headers = {"Authorization": f"Api-Key {profile['key']}", "Accept": "application/json"}
        self.samples: list[tuple[str, float]] = []  # (endpoint, seconds)
        self.errors: dict[str, int] = {}
        self.delivered: list[int] = []
        self.connection: http.client.HTTPConnection | None = None

    def call(self, endpoint: str, method: str, path: str) -> dict | None:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        started = time.perf_counter()
        try:
            self.connection.request(method, path, headers=self.headers)
            response = self.connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.samples.append((endpoint, time.perf_counter() - started))
            self.error(f"{endpoint} {type(error).__name__}")
            self.connection.close()
            self.connection = None
            return None
        self.samples.append((endpoint, time.perf_counter() - started))
        if response.will_close:
            self.connection.close()
            self.connection = None
        if response.status not in EXPECTED[endpoint]:
            self.error(f"{endpoint} {response.status}")
            return None
        return json.loads(body) if response.status == 200 else None

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def seen(self, leads: list[dict]) -> None:
        self.delivered.extend(lead["id"] for lead in leads if lead["state"] == "delivered")
        del self.delivered[:-200]

    def run(self) -> None:
        ids = self.profile["lead_ids"]
        while time.monotonic() < self.stop_at:
            if self.floor:  # the stack alone: no authentication, no query
                self.call("healthz", "GET", "/healthz")
                continue
            pick = self.random.random()
            if pick < 0.4:
                min_score = self.random.choice((50, 60, 70))
                page = self.call("list", "GET", f"/api/v1/leads/?min_score={min_score}&ordering=-score&page_size=50")
                if page:
                    self.seen(page["results"])
                    if page.get("next") and self.random.random() < 0.25:
                        following = urlsplit(page["next"])
                        page = self.call("next", "GET", f"{following.path}?{following.query}")
                        if page:
                            self.seen(page["results"])
            elif pick < 0.8:
                lead = self.call("detail", "GET", f"/api/v1/leads/{self.random.choice(ids)}/")
                if lead:
                    self.seen([lead])
            else:
                lead_id = self.delivered.pop() if self.delivered else self.random.choice(ids)
                self.call("accept", "POST", f"/api/v1/leads/{lead_id}/accept/")
        if self.connection is not None:
            self.connection.close()


def percentile(values: list[float], fraction: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1]


def load_run(clients: list[dict], port: int, count: int, seconds: float, floor: bool = False) -> dict:
    stop_at = time.monotonic() + seconds
    threads = [Client(number, clients[number % len(clients)], port, stop_at, floor) for number in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while time.monotonic() < stop_at:
        time.sleep(min(5.0, max(0.0, stop_at - time.monotonic())))
        done = sum(len(thread.samples) for thread in threads)
        errors = sum(sum(thread.errors.values()) for thread in threads)
        print(f"{time.monotonic() - started:5.1f} s: {done:,} requests, {errors} errors", file=sys.stderr)
    for thread in threads:
        thread.join()  # each finishes the request it is in
    elapsed = time.monotonic() - started
    samples = [sample for thread in threads for sample in thread.samples]
    errors: dict[str, int] = {}
    for thread in threads:
        for what, number in thread.errors.items():
            errors[what] = errors.get(what, 0) + number
    latencies = [seconds * 1000 for _, seconds in samples]
    figures = {
        "requests": len(samples),
        "rps": round(len(samples) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "errors": sum(errors.values()),
    }
    for endpoint in EXPECTED:
        endpoint_latencies = [seconds * 1000 for name, seconds in samples if name == endpoint]
        if not endpoint_latencies:
            continue
        figures[f"{endpoint}_requests"] = len(endpoint_latencies)
        figures[f"{endpoint}_p95_ms"] = round(percentile(endpoint_latencies, 0.95), 1)
    if errors:
        figures["error_kinds"] = errors
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads per worker (>1: gthread)")
    parser.add_argument(
        "--floor", action="store_true", help="then the same clients on /healthz: the server stack alone (floor_*)"
    )
    args = parser.parse_args()

    database_url = use_bench_database()
    prepare_schema()
    from django.db import connection

    from scoring.models import Trade

    market_ensure(args.properties)
    scores_ensure(args.properties)
    owners_ensure()
    trade = Trade.objects.get(slug=TRADE)
    held = leads_ensure(trade, args.leads)
    clients = clients_prepare(trade)
    connection.close()  # the bench process holds no connection while the server is measured
    print(f"{len(clients)} contractors with API keys, {held:,} leads assigned or delivered", file=sys.stderr)

    config = {"worker_class": "gthread" if args.threads > 1 else "sync", "workers": args.workers}
    config |= {"threads": args.threads} if args.threads > 1 else {}
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="bench-api-gunicorn-", suffix=".log")[1])
    server = gunicorn_start(database_url, port, args.workers, args.threads, log)
    try:
        ready_wait(port, server, log)
        print(f"gunicorn {config} on 127.0.0.1:{port}; {args.clients} clients for {args.seconds:g} s", file=sys.stderr)
        figures = load_run(clients, port, args.clients, args.seconds)
        if args.floor:
            floor = load_run(clients, port, args.clients, args.seconds, floor=True)
            figures |= {f"floor_{name}": floor[name] for name in ("rps", "p50_ms", "p95_ms", "errors")}
    finally:
        gunicorn_stop(server)
    server_log = log.read_text().strip()
    if server_log:
        print(f"gunicorn log ({log}):\n{server_log[-3000:]}", file=sys.stderr)
    log.unlink()
    summary = {"bench": "api", "properties": args.properties, "leads": held, "clients": args.clients}
    summary |= {"seconds": args.seconds, "contractors": len(clients)} | figures | {"gunicorn": config}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
