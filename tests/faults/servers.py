"""Throw-away servers for fault tests: a PostgreSQL cluster (the machine's PostgreSQL binaries, `initdb` into
a temporary directory, its own port) and Redis servers (`redis-server` on their own ports), which a test may
stop, kill and start again without touching the machine's shared servers. Also LeadEngine processes
(`manage.py` commands, Celery workers) run against them, each in a session of its own so that it can be
killed with its children."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "leadengine_template"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bindir() -> Path:
    found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
    candidates = [Path(found)] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").exists():
            return bindir
    raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) were not found")


def wait_until(condition, *, seconds: float, step: float = 0.1, what: str = "condition"):
    """condition()'s first true value within `seconds`; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds} s")
        time.sleep(step)


class Postgres:
    """A PostgreSQL cluster of its own under a temporary directory, listening on 127.0.0.1:`port`. As root, the
    server runs as the `postgres` user (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="leadengine-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        # Small, and without fsync: a stop of the server, even "immediate", is a crash of its processes, not of
        # the machine, so what the operating system was handed survives it. synchronous_commit stays on: a
        # commit a client was told of must survive the crash, as on a real server.
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nfull_page_writes = off\nshared_buffers = 64MB\nmax_connections = 60\n"
            )
        self.start()

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / program), *args], check=True, capture_output=True, cwd=self.root
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def accepting(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        wait_until(self.accepting, seconds=30, what="the throw-away PostgreSQL accepting connections")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: `immediate` is a crash as clients see it (every connection cut, no checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, *, down_seconds: float) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def restart_later(self, *, after: float | None = None, when=None, down_seconds: float) -> threading.Thread:
        """Restart the server in a thread once `after` seconds have passed or `when()` is true (polled every 0.1 s
        for up to 120 s); returns the thread (join it)."""

        def later() -> None:
            if when is not None:
                wait_until(when, seconds=120, what="the moment to restart PostgreSQL")
            else:
                time.sleep(after or 0)
            self.restart(down_seconds=down_seconds)

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        return thread

    def sql(self, database: str, query: str, params: tuple | list = ()) -> list[tuple]:
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def scalar(self, database: str, query: str, params: tuple | list = ()):
        return self.sql(database, query, params)[0][0]

    def database_copy(self, name: str, *, template: str = TEMPLATE) -> str:
        """A new database `name` copied from `template` (a file copy: fast); returns its URL."""
        self.sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.sql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Redis:
    """A Redis server of its own on 127.0.0.1:`port`, keeping nothing on disk (a restart empties it, as a
    Redis without persistence does)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="leadengine-faults-redis-"))
        self.process: subprocess.Popen | None = None
        self.start()

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.root)]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.accepting, seconds=15, what="the throw-away Redis accepting connections")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        wait_until(lambda: not self.accepting(), seconds=10, what="the throw-away Redis gone")

    def restart(self, *, down_seconds: float) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class Process:
    """A LeadEngine process (a manage.py command or a Celery worker) against the given URLs, in a session of its
    own (killed with its children), its output in a log file."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log: Path):
        self.log = log
        self.argv = argv
        self.env = {**os.environ, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "leadengine.settings", **env}
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, *self.argv], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.started = time.monotonic()

    def restart_if_exited(self) -> bool:
        """Start it again if it exited, as a process supervisor (systemd's Restart=always) would; whether it
        had to."""
        if self.process.poll() is None:
            return False
        self.restarts += 1
        self._start()
        return True

    def wait(self, seconds: float) -> int:
        """The exit code; TimeoutError (after killing it) when it runs longer than `seconds`: a hang."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"{' '.join(self.argv)} still running after {seconds} s:\n{self.output()}") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def manage(*args: str, env: dict[str, str], log: Path) -> Process:
    return Process(["manage.py", *args], env=env, log=log)


def celery_worker(*, env: dict[str, str], log: Path, concurrency: int = 2) -> Process:
    argv = ["-m", "celery", "-A", "leadengine", "worker", "-c", str(concurrency), "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-l", "info"]  # fmt: skip
    return Process(argv, env=env, log=log)


def template_build(pg: Postgres, redis: Redis, *, properties: int, log: Path) -> None:
    """The template database every fault test copies: migrated, the ZIP reference loaded, a demo market of
    `properties` with its demo contractors and territories, scoring models active (as `make setup` leaves it,
    without the pipeline's run)."""
    pg.sql("postgres", f'CREATE DATABASE "{TEMPLATE}"')
    env = {"DATABASE_URL": pg.url(TEMPLATE), "REDIS_URL": redis.url()}
    for step in (
        ["migrate", "--noinput", "-v", "0"],
        ["load_zipcodes"],
        ["seed_demo", "--properties", str(properties), "--seed", "7"],
        ["seed_demo_territories"],
    ):
        process = manage(*step, env=env, log=log)
        if process.wait(600) != 0:
            raise RuntimeError(f"building the fault tests' template database failed at {step}:\n{process.output()}")
