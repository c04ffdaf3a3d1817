"""Fault scenarios: LeadEngine's work with a server restarted or killed in the middle of it, as an operator
would meet it. Each scenario runs against a fresh copy of the template database on a throw-away PostgreSQL and
a throw-away Redis (tests/faults/servers.py), injects one fault, lets the work finish with no manual step, and
returns what happened: whether the work completed unattended within its bound, what was lost or duplicated,
and how long after the server was back the work finished. tests/faults/ asserts on the outcomes;
bench/faults.py runs every scenario several times and sums them up."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tests.faults.servers import Postgres, Process, Redis, celery_worker, manage, wait_until

AS_OF = "2026-06-01"
TRADE = "roofing"
PARTITION_ROWS = "250"
BOUND_SECONDS = 180  # a scenario's work that is not over by then is a hang
# A liveness time short enough for a test to see a takeover: a scoring run or partition lease silent for 15 s
# (a heartbeat every 2.5 s) is taken as dead.
FAST_LIVENESS = {"SCORING_RUN_STALE_SECONDS": "15"}


@dataclass
class Outcome:
    """What one scenario run showed."""

    scenario: str
    key: str = ""  # its name in SCENARIOS
    completed_unattended: bool = False
    hang: bool = False
    lost: int = 0
    duplicated: int = 0
    recovery_s: float | None = None  # from the server back (or the worker replaced) to the work done
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.completed_unattended and not self.hang and not self.lost and not self.duplicated


@dataclass
class Stage:
    """The servers and the scratch directory a scenario runs on."""

    pg: Postgres
    redis: Redis
    directory: Path
    database: str
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {"DATABASE_URL": self.pg.url(self.database), "REDIS_URL": self.redis.url(0), **extra}

    def manage(self, *args: str, **env: str) -> Process:
        process = manage(*args, env=self.env(**env), log=self.directory / f"{self.database}-{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def worker(self, **env: str) -> Process:
        log = self.directory / f"{self.database}-worker-{len(self.processes)}.log"
        process = celery_worker(env=self.env(**env), log=log)
        self.processes.append(process)
        return process

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        return self.pg.sql(self.database, query, params)

    def scalar(self, query: str, params: tuple = ()):
        return self.pg.scalar(self.database, query, params)

    def scalar_or_none(self, query: str, params: tuple = ()):
        """A scalar, or None while the server is down (a poll during the fault)."""
        try:
            return self.scalar(query, params)
        except Exception:
            return None

    def close(self) -> None:
        for process in self.processes:
            process.terminate()


def _stage(pg: Postgres, redis: Redis, directory: Path, name: str) -> Stage:
    database = f"{name}_{random.randrange(10**8)}"
    pg.database_copy(database)
    return Stage(pg=pg, redis=redis, directory=directory, database=database)


def _partitions_done(stage: Stage) -> int:
    return stage.scalar_or_none("SELECT count(*) FROM scoring_scoringpartition WHERE status = 'succeeded'") or 0


def _scores_check(stage: Stage, outcome: Outcome) -> None:
    """Every property has exactly one roofing score (lost: missing ones; duplicated: extra rows)."""
    properties = stage.scalar("SELECT count(*) FROM scoring_property")
    rows, distinct = stage.sql(
        "SELECT count(*), count(DISTINCT s.property_id) FROM scoring_score s JOIN scoring_trade t ON t.id = s.trade_id "
        "WHERE t.slug = %s",
        (TRADE,),
    )[0]
    outcome.lost += properties - distinct
    outcome.duplicated += rows - distinct


def _runs_truthful(stage: Stage, outcome: Outcome) -> None:
    """The scoring runs' records tell the truth: none left running, the last one succeeded with every
    partition succeeded."""
    running = stage.scalar("SELECT count(*) FROM scoring_scoringrun WHERE status = 'running'")
    status, partitions = stage.sql("SELECT status, partitions FROM scoring_scoringrun ORDER BY id DESC LIMIT 1")[0]
    succeeded = stage.scalar(
        "SELECT count(*) FROM scoring_scoringpartition WHERE run_id = (SELECT max(id) FROM scoring_scoringrun) "
        "AND status = 'succeeded'"
    )
    if running or status != "succeeded" or succeeded != partitions:
        outcome.completed_unattended = False
        outcome.notes.append(f"run records: {running} running, last {status}, {succeeded}/{partitions} partitions")


def _finish(process: Process, outcome: Outcome, *, back_at: Callable[[], float | None]) -> int | None:
    try:
        code = process.wait(BOUND_SECONDS)
    except TimeoutError as hang:
        outcome.hang = True
        outcome.notes.append(str(hang)[-2000:])
        return None
    back = back_at()
    if back is not None:
        outcome.recovery_s = round(max(0.0, time.monotonic() - back), 1)
    if code != 0:
        outcome.notes.append(f"exit {code}: {process.output()[-2000:]}")
    return code


class _Restart:
    """A PostgreSQL restart in a thread once `when()` holds; remembers when the server was back."""

    def __init__(self, pg: Postgres, *, when: Callable[[], bool], down_seconds: float):
        self.back: float | None = None

        def restart() -> None:
            wait_until(when, seconds=120, step=0.05, what="the moment to restart PostgreSQL")
            pg.restart(down_seconds=down_seconds)
            self.back = time.monotonic()

        self.thread = threading.Thread(target=restart, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(timeout=180)


SCORE = ("score", "--trade", TRADE, "--as-of", AS_OF, "--partition-rows", PARTITION_ROWS)


def _scoring_judged(stage: Stage, outcome: Outcome, code: int | None) -> Outcome:
    outcome.completed_unattended = code == 0
    if code is not None:
        _scores_check(stage, outcome)
        _runs_truthful(stage, outcome)
    return outcome


def score_postgres_restart(
    pg: Postgres, redis: Redis, directory: Path, *, distributed: bool = False, down_seconds: float = 3
) -> Outcome:
    """`manage.py score`, in process or `--distributed` on a Celery worker, with PostgreSQL restarted (down
    `down_seconds`) after a few partitions."""
    command_line = "score --distributed" if distributed else "score"
    outcome = Outcome(f"{command_line}, PostgreSQL restarted for {down_seconds:g} s")
    stage = _stage(pg, redis, directory, "distributed" if distributed else "score")
    try:
        if distributed:
            stage.worker(**FAST_LIVENESS)
            command = stage.manage(*SCORE, "--distributed", **FAST_LIVENESS)
        else:
            command = stage.manage(*SCORE)
        restart = _Restart(pg, when=lambda: _partitions_done(stage) >= 3, down_seconds=down_seconds)
        code = _finish(command, outcome, back_at=lambda: restart.back)
        restart.join()
        return _scoring_judged(stage, outcome, code)
    finally:
        stage.close()


def score_distributed_worker_killed(pg: Postgres, redis: Redis, directory: Path) -> Outcome:
    """`manage.py score --distributed`: its only worker is killed (SIGKILL) after a few partitions, and a new
    worker is started, as a process supervisor would."""
    outcome = Outcome("score --distributed, worker killed")
    stage = _stage(pg, redis, directory, "killed")
    try:
        first = stage.worker(**FAST_LIVENESS)
        command = stage.manage(*SCORE, "--distributed", **FAST_LIVENESS)
        wait_until(lambda: _partitions_done(stage) >= 3, seconds=120, step=0.05, what="three partitions scored")
        first.kill()
        stage.worker(**FAST_LIVENESS)
        replaced = time.monotonic()
        return _scoring_judged(stage, outcome, _finish(command, outcome, back_at=lambda: replaced))
    finally:
        stage.close()


def _properties_csv(stage: Stage, path: Path, rows: int) -> None:
    """A county file of `rows` new properties over the market's ZIPs."""
    zips = [row[0] for row in stage.sql("SELECT DISTINCT zip_code FROM scoring_property ORDER BY 1 LIMIT 50")]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["parcel_id", "address", "zip", "year_built", "roof_year", "market_value"])
        for number in range(rows):
            writer.writerow([f"F-{number:07d}", f"{number} Fault Street", zips[number % len(zips)], 1990, 2005,
                             250_000 + number])  # fmt: skip


def import_postgres_restart(pg: Postgres, redis: Redis, directory: Path, *, down_seconds: float = 3):
    """`manage.py import_data properties` of a 60,000-row file in 2,000-row chunks, PostgreSQL restarted
    once the first rows are in."""
    outcome = Outcome(f"import, PostgreSQL restarted for {down_seconds:g} s")
    stage = _stage(pg, redis, directory, "import")
    rows = 60_000
    try:
        before = stage.scalar("SELECT count(*) FROM scoring_property")
        path = directory / f"{stage.database}.csv"
        _properties_csv(stage, path, rows)
        command = stage.manage("import_data", "properties", str(path), "--chunk-rows", "2000")
        in_progress = "SELECT coalesce(max(rows_read), 0) FROM scoring_importrun WHERE status = 'running'"
        restart = _Restart(pg, when=lambda: (stage.scalar_or_none(in_progress) or 0) >= 2000, down_seconds=down_seconds)
        code = _finish(command, outcome, back_at=lambda: restart.back)
        restart.join()
        outcome.completed_unattended = code == 0
        if code is not None:
            imported = stage.scalar("SELECT count(*) FROM scoring_property WHERE parcel_id LIKE 'F-%%'")
            total = stage.scalar("SELECT count(*) FROM scoring_property")
            outcome.lost += rows - imported
            outcome.duplicated += max(0, total - before - rows)
            last_run = "SELECT status, rows_inserted FROM scoring_importrun ORDER BY id DESC LIMIT 1"
            status, inserted = stage.sql(last_run)[0]
            if status != "succeeded" or inserted != rows:
                outcome.completed_unattended = False
                outcome.notes.append(f"import run says {status}, {inserted} inserted")
            if stage.scalar("SELECT count(*) FROM scoring_importrun WHERE status = 'running'"):
                outcome.notes.append("an import run is left running")
                outcome.completed_unattended = False
    finally:
        stage.close()
    return outcome


LEAD_SET = (
    "SELECT l.property_id, t.slug, l.state, l.contractor_id FROM leads_lead l JOIN scoring_trade t ON t.id = l.trade_id"
)


def pipeline_postgres_restart(pg: Postgres, redis: Redis, directory: Path, *, down_seconds: float = 3):
    """`manage.py run_pipeline` (score, generate, route, expire) with PostgreSQL restarted as scoring ends
    and lead generation starts; the leads must be those a run without the fault makes."""
    outcome = Outcome(f"run_pipeline, PostgreSQL restarted for {down_seconds:g} s")
    clean = _stage(pg, redis, directory, "pipeline_clean")
    stage = _stage(pg, redis, directory, "pipeline")
    try:
        args = ("run_pipeline", "--trade", TRADE, "--as-of", AS_OF)
        if clean.manage(*args).wait(BOUND_SECONDS) != 0:
            raise RuntimeError(f"the pipeline failed without a fault: {clean.processes[-1].output()}")
        expected = {(row[0], row[1]): row for row in clean.sql(LEAD_SET)}
        command = stage.manage(*args)
        scored = "SELECT count(*) FROM scoring_scoringrun WHERE status = 'succeeded'"
        restart = _Restart(pg, when=lambda: (stage.scalar_or_none(scored) or 0) >= 1, down_seconds=down_seconds)
        code = _finish(command, outcome, back_at=lambda: restart.back)
        restart.join()
        outcome.completed_unattended = code == 0
        if code is not None:
            made = stage.sql(LEAD_SET)
            keys = {(row[0], row[1]) for row in made}
            outcome.duplicated += len(made) - len(keys)
            outcome.lost += len(set(expected) - keys)
            outcome.duplicated += len(keys - set(expected))
            states = sorted(row[2] for row in made)
            if states != sorted(row[2] for row in expected.values()):
                outcome.completed_unattended = False
                outcome.notes.append("the leads' states differ from a run without the fault")
    finally:
        stage.close()
        clean.close()
    return outcome


def _api_key(stage: Stage) -> str:
    slug = stage.scalar("SELECT slug FROM contractors_contractor ORDER BY id LIMIT 1")
    process = stage.manage("create_api_key", slug, "--name", "faults")
    if process.wait(60) != 0:
        raise RuntimeError(process.output())
    return process.output().strip().splitlines()[-1].strip()


def _get(port: int, path: str, key: str | None = None) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("GET", path, headers={"Authorization": f"Api-Key {key}"} if key else {})
        response = connection.getresponse()
        body = response.read()
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {"raw": body[:200].decode(errors="replace")}
        return response.status, dict(response.getheaders()), parsed
    finally:
        connection.close()


def _server(stage: Stage) -> int:
    from tests.faults.servers import free_port

    port = free_port()
    stage.manage("runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading")

    def up() -> bool:
        try:
            return _get(port, "/healthz")[0] == 200
        except OSError:
            return False

    wait_until(up, seconds=60, what="the site answering")
    return port


def api_redis_killed(pg: Postgres, redis: Redis, directory: Path, *, down_seconds: float = 5):
    """A contractor's CRM reads its leads while Redis is killed and started again (empty): reads keep
    working, /readyz names Redis while it is down, and everything is back once it is up."""
    outcome = Outcome("API, Redis killed")
    stage = _stage(pg, redis, directory, "api_redis")
    try:
        key = _api_key(stage)
        port = _server(stage)
        answers = [_get(port, "/api/v1/leads/", key)[0]]
        redis.kill()
        down = [_get(port, "/api/v1/leads/", key)[0] for _ in range(5)]
        ready_status, _, ready = _get(port, "/readyz")
        time.sleep(down_seconds)
        redis.start()
        back = time.monotonic()
        answers += [_get(port, "/api/v1/leads/", key)[0] for _ in range(3)]
        ready_again = wait_until(lambda: _get(port, "/readyz")[0] == 200, seconds=60, what="ready again")
        outcome.recovery_s = round(time.monotonic() - back, 1)
        failed = [code for code in answers + down if code != 200]
        outcome.completed_unattended = not failed and ready_status == 503 and bool(ready_again)
        outcome.lost = len(failed)
        if failed or ready_status != 503 or not str(ready.get("checks", {}).get("redis", "")).startswith("unavailable"):
            outcome.notes.append(f"answers {answers + down}, /readyz while down {ready_status} {ready}")
    finally:
        stage.close()
    return outcome


def api_postgres_down(pg: Postgres, redis: Redis, directory: Path, *, down_seconds: float = 5):
    """The API while PostgreSQL is stopped: 503 JSON with Retry-After, never a 500 or a hang; 200 once back."""
    outcome = Outcome("API, PostgreSQL down")
    stage = _stage(pg, redis, directory, "api_pg")
    try:
        key = _api_key(stage)
        port = _server(stage)
        before = _get(port, "/api/v1/leads/", key)[0]
        pg.stop()
        try:
            started = time.monotonic()
            status, headers, body = _get(port, "/api/v1/leads/", key)
            took = time.monotonic() - started
            time.sleep(down_seconds)
        finally:
            pg.start()
        back = time.monotonic()
        wait_until(lambda: _get(port, "/api/v1/leads/", key)[0] == 200, seconds=60, what="the API answering again")
        outcome.recovery_s = round(time.monotonic() - back, 1)
        retry_after = {name.lower(): value for name, value in headers.items()}.get("retry-after")
        outcome.completed_unattended = (
            before == 200 and status == 503 and body.get("code") == "database_unavailable" and bool(retry_after)
        )
        if not outcome.completed_unattended:
            outcome.notes.append(f"before {before}; while down {status} {headers} {body} in {took:.1f} s")
    finally:
        stage.close()
    return outcome


WEBHOOK_ENV = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_TIMEOUT_SECONDS": "5"}
DELIVER = "from leads.services.webhooks import leads_webhook_deliver; print(leads_webhook_deliver())"
HOOKED = (
    "SELECT count(*) FROM leads_lead l JOIN contractors_contractor c ON c.id = l.contractor_id "
    "WHERE c.webhook_url <> '' AND l.state IN ('assigned', 'delivered')"
)


def webhook_delivery_postgres_restart(pg: Postgres, redis: Redis, directory: Path, *, down_seconds: float = 3):
    """Webhook delivery of the day's assigned leads to a receiver that answers each POST in 50 ms, with
    PostgreSQL restarted once a few leads are posted: every lead is delivered, and posted once."""
    from tests.receiver import Receiver

    outcome = Outcome(f"webhook delivery, PostgreSQL restarted for {down_seconds:g} s")
    stage = _stage(pg, redis, directory, "webhooks")
    receiver = Receiver()
    receiver.on_request = lambda headers: time.sleep(0.05)
    try:
        if stage.manage("run_pipeline", "--trade", TRADE, "--as-of", AS_OF).wait(BOUND_SECONDS) != 0:
            raise RuntimeError(f"the pipeline failed without a fault: {stage.processes[-1].output()}")
        stage.sql("UPDATE contractors_contractor SET webhook_url = %s", (receiver.url,))
        expected = stage.scalar(HOOKED)
        if expected < 20:
            raise RuntimeError(f"only {expected} leads to post: the market is too small for this scenario")
        command = stage.manage("shell", "-c", DELIVER, **WEBHOOK_ENV)
        restart = _Restart(pg, when=lambda: len(receiver.requests) >= 5, down_seconds=down_seconds)
        code = _finish(command, outcome, back_at=lambda: restart.back)
        restart.join()
        outcome.completed_unattended = code == 0
        if code is not None:
            posts = receiver.seen
            delivered = stage.scalar(
                "SELECT count(*) FROM leads_lead WHERE state = 'delivered' AND contractor_id IS NOT NULL"
            )
            outcome.lost += expected - delivered
            outcome.duplicated += sum(count - 1 for count in posts.values() if count > 1)
            if len(posts) != expected:
                outcome.notes.append(f"{len(posts)} leads posted of {expected}")
                outcome.lost += max(0, expected - len(posts))
    finally:
        stage.close()
        receiver.close()
    return outcome


def _schedule_every_seconds(stage: Stage, seconds: int) -> None:
    """The lead expiry job due every `seconds` (a schedule ops could set in the admin), every other
    schedule off but the recovery sweep: the job a beat sends while Redis is away."""
    code = (
        "from django_celery_beat.models import IntervalSchedule, PeriodicTask; "
        "from leadengine.services.schedules import schedules_seed; schedules_seed(); "
        "PeriodicTask.objects.exclude(name='Recovery sweep').update(enabled=False); "
        f"every, _ = IntervalSchedule.objects.get_or_create(every={seconds}, period='seconds'); "
        "PeriodicTask.objects.create(name='Lead expiry, often', task='leadengine.job_scheduled', interval=every, "
        'kwargs=\'{"job": "lead_expiry"}\')'
    )
    process = stage.manage("shell", "-c", code)
    if process.wait(60) != 0:
        raise RuntimeError(process.output())


RUNS = "SELECT count(*) FROM leadengine_jobrun WHERE job = 'lead_expiry' AND status = %s"


def scheduled_job_redis_restart(pg: Postgres, redis: Redis, directory: Path, *, down_seconds: float = 12):
    """Beat and a worker run a job every 4 seconds; Redis (the broker) is killed for `down_seconds` and comes
    back empty. The due times beat could not send are recorded as missed, the job is caught up at most once
    (here its next due time covers it), and it runs on; nothing is left queued or running."""
    outcome = Outcome(f"scheduled job, Redis killed for {down_seconds:g} s")
    stage = _stage(pg, redis, directory, "beat")
    try:
        _schedule_every_seconds(stage, 4)
        beat = Process(["-m", "celery", "-A", "leadengine", "beat", "-l", "info"], env=stage.env(),
                       log=directory / f"{stage.database}-beat.log")  # fmt: skip
        stage.processes.append(beat)
        supervised = [stage.worker(), beat]
        wait_until(lambda: stage.scalar_or_none(RUNS, ("succeeded",)), seconds=90, what="a scheduled run")
        redis.kill()
        time.sleep(down_seconds)
        redis.start()
        back = time.monotonic()
        succeeded_before = stage.scalar(RUNS, ("succeeded",))

        def running_on() -> bool:
            # A worker that lost the broker while acknowledging a task may exit (a fault of Celery's Redis
            # transport): the supervisor production runs it under starts it again (README, Running in production).
            for process in supervised:
                if process.restart_if_exited():
                    outcome.notes.append(f"{' '.join(process.argv[3:5])} exited; restarted as its supervisor would")
            return stage.scalar(RUNS, ("succeeded",)) >= succeeded_before + 2

        try:
            wait_until(running_on, seconds=BOUND_SECONDS, step=0.5, what="scheduled runs after Redis came back")
            outcome.recovery_s = round(time.monotonic() - back, 1)
        except TimeoutError as hang:
            outcome.hang = True
            outcome.notes.append(str(hang))
            return outcome
        missed = stage.scalar(RUNS, ("missed",))
        catch_ups = stage.scalar(
            "SELECT count(*) FROM leadengine_jobrun WHERE job = 'lead_expiry' AND status <> 'missed' "
            "AND queued_at > (SELECT max(finished_at) FROM leadengine_jobrun WHERE status = 'missed') "
            "AND requested_by_id IS NULL AND task_id = ''"
        )
        # A run a worker held when it died is taken over by the recovery sweep (every minute): give it time.
        stuck_sql = (
            "SELECT count(*) FROM leadengine_jobrun WHERE status IN ('queued', 'running') "
            "AND queued_at < now() - interval '60 seconds'"
        )
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: stage.scalar(stuck_sql) == 0, seconds=150, step=1, what="no run left behind")
        stuck = stage.scalar(stuck_sql)
        outcome.completed_unattended = missed >= 1 and stuck == 0
        outcome.lost += stuck
        outcome.duplicated += max(0, catch_ups - 1)
        outcome.notes.append(f"{missed} missed, {catch_ups} catch-up runs")
    finally:
        stage.close()
    return outcome


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "score_in_process_postgres_restart": score_postgres_restart,
    "score_in_process_postgres_down_30s": partial(score_postgres_restart, down_seconds=30),
    "score_distributed_postgres_restart": partial(score_postgres_restart, distributed=True),
    "score_distributed_worker_killed": score_distributed_worker_killed,
    "import_postgres_restart": import_postgres_restart,
    "pipeline_postgres_restart": pipeline_postgres_restart,
    "webhook_delivery_postgres_restart": webhook_delivery_postgres_restart,
    "scheduled_job_redis_restart": scheduled_job_redis_restart,
    "api_redis_killed": api_redis_killed,
    "api_postgres_down": api_postgres_down,
}


def scenario_run(name: str, pg: Postgres, redis: Redis, directory: Path) -> Outcome:
    started = dt.datetime.now()
    outcome = SCENARIOS[name](pg, redis, directory)
    outcome.key = name
    outcome.notes.append(f"took {(dt.datetime.now() - started).total_seconds():.0f} s")
    return outcome
