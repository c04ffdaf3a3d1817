"""REST API throughput, latency and CPU cost per request under concurrent contractors, served by gunicorn and
driven by wrk.

    python bench/api.py --properties 1000000 --leads 100000 [--clients 32 | --clients 4,32] [--seconds 30]
                        [--workers 2] [--threads 4] [--floor]

The bench database gets the demo market of N properties (seed 7; reused when it is there), its roofing
scores, every ZIP owned with caps and prepaid limits lifted (as bench/leads.py does), and at least --leads roofing leads
assigned or delivered to their contractors: topped up with leads_generate (score floor lowered to 50,
then 0, no ZIP limit, a one-day cooldown) and leads_route only when fewer are there, so runs reuse them. Each
contractor holding leads gets a new API key (the previous run's bench keys are deleted).

gunicorn serves leadengine.wsgi:application on 127.0.0.1 (a free port) with DEBUG off and no HTTPS
redirect, against the bench database, with the rate limit raised out of the way. The load is wrk (Debian's
package, installed when missing if this runs as root; otherwise `sudo apt-get install wrk`), scripted in
Lua (bench/api_wrk.lua): --clients connections, one per wrk thread, each acting as one contractor with its
own API key (connections beyond the number of contractors share one, and split its leads), for --seconds in
a closed loop without think time, mixing:
- list (40%): GET /api/v1/leads/?min_score=<50|60|70>&ordering=-score&page_size=50, and one time in
  four the next page through its cursor; reading assigned leads delivers them;
- detail (40%): GET /api/v1/leads/<id>/ of one of its leads (which delivers it);
- accept (20%): POST /api/v1/leads/<id>/accept/ of a lead it saw delivered, each once (a detail while it
  has seen none), so every answer expected is a 200.
With --floor, after each client count, as many connections call /healthz (no key, no query: a no-op Django
view through the whole stack) for as long: the cost of the server stack alone, with the same wrk and server.
--clients 4,32 measures each count in turn against the same server.

Latency percentiles are wrk's own histogram's (per endpoint, the script's timings). Errors are non-2xx
answers and socket errors (connect, read, write, timeouts past 30 s). CPU time is read from /proc for each
run: gunicorn's master and workers (user + system, with their reaped children), the bench database's
PostgreSQL backends (when the server runs on this machine), and wrk itself. The last line printed is one
JSON object: clients, rps, p50_ms, p95_ms, p99_ms, errors, server_cpu_ms_per_request (gunicorn's),
floor_cpu_ms_per_request, cost_vs_floor (their ratio), cost_with_postgres_vs_floor (both sides with their
PostgreSQL backends' time), then requests and p95 per endpoint, postgres_ and wrk_cpu_ms_per_request, the
floor's own figures (floor_*), the gunicorn configuration; with several counts, the last count's figures
at the top and every count's under by_clients.

gunicorn configuration (measured with the former Python-thread clients on the same 2 cores, 32 clients,
12 s each): sync 2/3/4 workers 44/46/46 requests/s; gthread 2x2 44, 2x4 45-74, 2x8 48, 3x2 50, 3x4 63.
The default, gthread with 2 workers of 4 threads, keeps connections alive (sync workers close each one)
and was the best seen.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, market_ensure, prepare_schema, use_bench_database
from bench.leads import TRADE, owners_ensure, scores_ensure

DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4
KEY_NAME = "bench api"
HELD_STATES = ("assigned", "delivered")  # a contractor's leads it has yet to accept (Lead.State values)
LEAD_IDS_PER_CLIENT = 2_000  # of its contractor's leads a client picks details and accepts from
WRK_SCRIPT = ROOT / "bench" / "api_wrk.lua"
WRK_TIMEOUT = "30s"  # a request slower than this is a socket error (timeout), as the old clients' timeout
OK_STATUSES = tuple(f" {status}" for status in range(200, 300))  # the script's "<endpoint> <status>" keys
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def leads_ensure(trade, count: int) -> int:
    """At least `count` leads of the trade assigned or delivered to contractors; returns how many there are."""
    from django.db import connection

    from leads.models import Lead, LeadFilter
    from leads.services.generation import leads_generate
    from leads.services.routing import leads_route

    held = Lead.objects.filter(trade=trade, state__in=HELD_STATES)
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
    """One API key per contractor holding leads of the trade, with a sample of its leads not yet accepted
    (assigned or delivered): reading one delivers it, and a client accepts the leads it saw delivered, so that
    the share of accepts stays the same from run to run as accepted leads pile up."""
    from contractors.models import ApiKey, Contractor
    from contractors.services.api_keys import api_key_create
    from leads.models import Lead

    ApiKey.objects.filter(name=KEY_NAME).delete()
    held = Lead.objects.filter(trade=trade, state__in=HELD_STATES)
    contractors = Contractor.objects.filter(pk__in=held.filter(contractor__isnull=False).values("contractor"))
    clients = []
    for contractor in contractors.order_by("pk"):
        _, raw_key = api_key_create(contractor=contractor, name=KEY_NAME)
        ids = list(held.filter(contractor=contractor).order_by("?").values_list("pk", flat=True)[:LEAD_IDS_PER_CLIENT])
        clients.append({"contractor": contractor.slug, "key": raw_key, "lead_ids": ids})
    return clients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, static_root: Path) -> dict[str, str]:
    """The environment of production's settings on the loopback, against the bench database."""
    from django.conf import settings

    return os.environ | {
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
        "STATIC_ROOT": str(static_root),
    }


def static_collect(env: dict[str, str]) -> None:
    """The release step's collectstatic into the bench's own STATIC_ROOT: with production's storage, /readyz
    answers 503 until the static files' manifest is there."""
    command = [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "--verbosity", "0"]
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def gunicorn_start(env: dict[str, str], port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
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


def wrk_ensure() -> str:
    """wrk's path: Debian's package, installed when it is missing and this runs as root (as the Makefile
    installs Chromium for the browser tests); otherwise a clear refusal saying what to install."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        raise SystemExit(
            "bench/api.py drives the API with wrk, which is not installed. Install Debian's package "
            "(sudo apt-get install wrk), or run the benchmark as root once to have it installed, then run it again."
        )
    print("wrk is missing: installing Debian's package (apt-get install wrk)", file=sys.stderr)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        if subprocess.run(command, env=env, stdout=sys.stderr).returncode != 0:
            raise SystemExit(f"could not install wrk: `{shlex.join(command)}` failed (output above)")
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("apt-get installed wrk, yet no wrk is on PATH")
    return path


def clients_parse(text: str) -> list[int]:
    """--clients: one count, or several separated by commas (4,32), each measured in turn."""
    counts = []
    for part in text.split(","):
        try:
            count = int(part)
        except ValueError:
            count = 0
        if count < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: whole numbers of clients, at least 1, comma-separated")
        counts.append(count)
    return counts


def connections_write(clients: list[dict], count: int, path: Path) -> None:
    """The file bench/api_wrk.lua reads: one line per connection (key, slot, share, lead ids). Connection n acts
    for contractor n modulo their number; the `share` connections of one contractor split its lead ids, and the
    leads they accept, by id modulo `share`, so that no two accept the same lead."""
    if not clients:
        raise SystemExit("no contractor holds leads of the trade: nothing to call the API with")
    lines = []
    for number in range(count):
        client = clients[number % len(clients)]
        share = len(range(number % len(clients), count, len(clients)))
        slot = number // len(clients)
        ids = [lead_id for lead_id in client["lead_ids"] if lead_id % share == slot] or client["lead_ids"]
        lines.append(f"{client['key']}\t{slot}\t{share}\t{' '.join(map(str, ids))}\n")
    path.write_text("".join(lines))


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (the state is [0]), or None once it has gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and its descendants, with that of the children each reaped: for
    gunicorn, its master, its workers, and any worker that was replaced."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(entry.name)) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    ticks, pending = 0, [root]
    while pending:
        pid = pending.pop()
        if (fields := proc_stat(pid)) is not None:
            ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        pending.extend(parents.get(pid, []))
    return ticks / TICKS_PER_SECOND


class BackendCpu(threading.Thread):
    """CPU time of the PostgreSQL backends serving one database on this machine, found by their process titles
    ("postgres: 15/main: <user> <database> <host>(<port>) <activity>") and sampled every second, since a backend
    that closes takes its time with it. None when no PostgreSQL process is visible (a server elsewhere)."""

    def __init__(self, database: str):
        super().__init__(daemon=True)
        self.database = f" {database} "
        self.visible = False
        self.first: dict[int, int] = {}  # ticks of the backends there at the start
        self.last: dict[int, int] = {}
        self.stopping = threading.Event()
        self.sample(first=True)

    def sample(self, first: bool = False) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            self.visible = True
            if not title.startswith("postgres:") or self.database not in title:
                continue
            if (fields := proc_stat(entry.name)) is not None:
                ticks = int(fields[11]) + int(fields[12])
                (self.first if first else self.last)[int(entry.name)] = ticks

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.sample()

    def stop(self) -> float | None:
        self.stopping.set()
        self.join()
        self.sample()
        if not self.visible:
            return None
        # A backend born during the run counts from zero; one there at the start from its first sample.
        ticks = sum(last - self.first.get(pid, 0) for pid, last in self.last.items())
        return ticks / TICKS_PER_SECOND


def per_request_ms(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None or not requests else round(seconds * 1000 / requests, 3)


def load_run(wrk: str, port: int, count: int, seconds: int, mode: str, connections: Path, server, database: str):
    """One wrk run of `count` connections for `seconds` (mode mix: the contractors' calls; floor: /healthz),
    with the CPU time the server, its PostgreSQL backends and wrk spent meanwhile. Returns its figures."""
    command = [
        wrk, "--threads", str(count), "--connections", str(count), "--duration", f"{seconds}s",
        "--timeout", WRK_TIMEOUT, "--script", str(WRK_SCRIPT), f"http://127.0.0.1:{port}", "--", mode, str(connections),
    ]  # fmt: skip
    backends = BackendCpu(database)
    backends.start()
    server_before = process_tree_cpu_seconds(server.pid)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # gunicorn, the other child, is not reaped yet
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_seconds = process_tree_cpu_seconds(server.pid) - server_before
    postgres_seconds = backends.stop()
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not lines[-1].startswith('{"wrk"'):
        raise RuntimeError(
            f"wrk failed (exit code {result.returncode}): {shlex.join(command)}\n{result.stdout}\n{result.stderr}"
        )
    print("\n".join(lines[:-1]), result.stderr.strip(), sep="\n", file=sys.stderr)  # wrk's own report
    report = json.loads(lines[-1])
    requests = report["requests"]
    error_kinds = {kind: number for kind, number in report["statuses"].items() if not kind.endswith(OK_STATUSES)}
    error_kinds |= {f"socket {kind}": number for kind, number in report["socket_errors"].items() if number}
    wrk_seconds = sum(getattr(wrk_after, name) - getattr(wrk_before, name) for name in ("ru_utime", "ru_stime"))
    figures = {
        "requests": requests,
        "rps": round(requests / report["duration_s"], 1),
        **{name: round(report[name], 1) for name in ("p50_ms", "p95_ms", "p99_ms")},
        "errors": sum(error_kinds.values()),
        "server_cpu_ms_per_request": per_request_ms(server_seconds, requests),
        "postgres_cpu_ms_per_request": per_request_ms(postgres_seconds, requests),
        "wrk_cpu_ms_per_request": per_request_ms(wrk_seconds, requests),
    }
    if mode == "mix":
        for endpoint, stats in report["endpoints"].items():
            figures[f"{endpoint}_requests"] = stats["requests"]
            figures[f"{endpoint}_p95_ms"] = round(stats["p95_ms"], 1)
    if error_kinds:
        figures["error_kinds"] = error_kinds
    return figures


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else round(numerator / denominator, 2)


def clients_measure(wrk: str, port: int, count: int, args, clients: list[dict], server, database: str) -> dict:
    """The API's figures at `count` clients and, with --floor, the floor's at as many right after, then how
    their costs compare; the figures the JSON line names first come first."""
    connections = Path(tempfile.mkstemp(prefix="bench-api-connections-", suffix=".tsv")[1])  # keys: mode 0600
    try:
        connections_write(clients, count, connections)
        print(f"{count} clients (wrk connections) for {args.seconds} s", file=sys.stderr)
        mix = load_run(wrk, port, count, args.seconds, "mix", connections, server, database)
        floor = None
        if args.floor:
            print(f"floor: {count} connections on /healthz for {args.seconds} s", file=sys.stderr)
            floor = load_run(wrk, port, count, args.seconds, "floor", connections, server, database)
    finally:
        connections.unlink()
    server_cpu = mix.pop("server_cpu_ms_per_request")
    postgres_cpu = mix["postgres_cpu_ms_per_request"]
    floor_cpu = floor["server_cpu_ms_per_request"] if floor else None
    floor_postgres = floor["postgres_cpu_ms_per_request"] if floor else None
    figures = {"clients": count} | {name: mix.pop(name) for name in ("rps", "p50_ms", "p95_ms", "p99_ms", "errors")}
    figures |= {
        "server_cpu_ms_per_request": server_cpu,
        "floor_cpu_ms_per_request": floor_cpu,
        "cost_vs_floor": ratio(server_cpu, floor_cpu),
        # The same with PostgreSQL's share on both sides (the floor's is about nothing: /healthz runs no query).
        "cost_with_postgres_vs_floor": ratio(
            None if server_cpu is None or postgres_cpu is None else server_cpu + postgres_cpu,
            None if floor_cpu is None or floor_postgres is None else floor_cpu + floor_postgres,
        ),
    }
    figures |= mix
    if floor:
        figures |= {f"floor_{name}": value for name, value in floor.items() if name != "server_cpu_ms_per_request"}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument(
        "--clients", type=clients_parse, default=[32], help="wrk connections, one contractor each; 4,32 measures both"
    )
    parser.add_argument("--seconds", type=int, default=30, help="of each wrk run (whole seconds)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads per worker (>1: gthread)")
    parser.add_argument(
        "--floor", action="store_true", help="after each count, as many connections on /healthz: the floor (floor_*)"
    )
    args = parser.parse_args()
    if args.seconds < 1:
        parser.error("--seconds: at least 1")
    wrk = wrk_ensure()

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
    database = connection.settings_dict["NAME"]
    connection.close()  # the bench process holds no connection while the server is measured
    print(f"{len(clients)} contractors with API keys, {held:,} leads assigned or delivered", file=sys.stderr)

    config = {"worker_class": "gthread" if args.threads > 1 else "sync", "workers": args.workers}
    config |= {"threads": args.threads} if args.threads > 1 else {}
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="bench-api-gunicorn-", suffix=".log")[1])
    with tempfile.TemporaryDirectory(prefix="bench-api-static-") as static_root:
        env = server_env(database_url, Path(static_root))
        static_collect(env)
        server = gunicorn_start(env, port, args.workers, args.threads, log)
        try:
            ready_wait(port, server, log)
            print(f"gunicorn {config} on 127.0.0.1:{port}", file=sys.stderr)
            runs = [clients_measure(wrk, port, count, args, clients, server, database) for count in args.clients]
        finally:
            gunicorn_stop(server)
    server_log = log.read_text().strip()
    if server_log:
        print(f"gunicorn log ({log}):\n{server_log[-3000:]}", file=sys.stderr)
    log.unlink()
    summary = {"bench": "api"} | runs[-1]
    summary |= {"properties": args.properties, "leads": held, "seconds": args.seconds, "contractors": len(clients)}
    summary |= {"gunicorn": config, "load_generator": "wrk"}
    if len(runs) > 1:
        summary["by_clients"] = {str(run["clients"]): run for run in runs}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
