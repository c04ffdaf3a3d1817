"""LeadEngine as production runs it, for tests: the Procfile's lines (the release step, the web process) run by a
shell as a platform runs them, with production's settings (DEBUG off, a SECRET_KEY) on the test database and the
session's Redis. Each process runs in a session of its own, so that it is stopped with its children."""

from __future__ import annotations

import atexit
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.workers import database_url

ROOT = Path(__file__).resolve().parent.parent
# A process line as honcho and the platforms read it; other lines (comments) are not processes.
PROCESS_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def processes(name: str = "Procfile") -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    return {match[1]: match[2] for line in lines if (match := PROCESS_LINE.match(line))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(**env: str) -> dict[str, str]:
    """This environment with production's settings on the test database (call it inside a database test) and the
    session's Redis, the virtual environment's programs first on PATH, static files collected as a release
    collects them (once a session: collected_static_root), then `env`. WEB_CONCURRENCY is unset, as a platform
    leaves it unless asked."""
    from django.conf import settings

    clean = {key: value for key, value in os.environ.items() if key not in {"WEB_CONCURRENCY", "DEBUG", "PORT"}}
    clean.pop("PYTEST_CURRENT_TEST", None)
    production = clean | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DEBUG": "false",
        "SECRET_KEY": "a-production-secret-for-this-test-only-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    if "STATIC_ROOT" not in env:
        production["STATIC_ROOT"] = str(collected_static_root(production))
    return production | env


_static_roots: list[Path] = []  # the session's collected STATIC_ROOT, once made


def collected_static_root(env: dict[str, str]) -> Path:
    """A STATIC_ROOT that production's collectstatic filled (with `env`'s settings), once a test session, removed
    at its end: a production process without its static files is not ready (/readyz 503, "static")."""
    if not _static_roots:
        static_root = Path(tempfile.mkdtemp(prefix="leadengine-test-static-"))
        atexit.register(shutil.rmtree, static_root, ignore_errors=True)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            cwd=ROOT, env=env | {"STATIC_ROOT": str(static_root)}, check=True, timeout=300,
        )  # fmt: skip
        _static_roots.append(static_root)
    return _static_roots[0]


def release(env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess:
    """The Procfile's release line, run by a shell as a platform's release phase runs it."""
    return subprocess.run(
        ["sh", "-c", processes()["release"]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    """GET `path` from 127.0.0.1:`port`, without following a redirect or decoding the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


@contextmanager
def web(env: dict[str, str], log: Path, *, workers: int = 2, seconds: float = 60) -> Iterator[int]:
    """The Procfile's web line (gunicorn) run by a shell on a free port, with `workers` worker processes
    (WEB_CONCURRENCY unless 2, the line's default); yields the port once /healthz answers and every worker has
    booted, and stops gunicorn with its workers (SIGTERM) afterwards."""
    port = free_port()
    env = env | {"PORT": str(port)} | ({"WEB_CONCURRENCY": str(workers)} if workers != 2 else {})
    with log.open("w") as out:
        server = subprocess.Popen(
            ["sh", "-c", f"exec {processes()['web']}"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + seconds
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                fetch(port, "/healthz")
            except OSError:
                time.sleep(0.2)
                continue
            if log.read_text().count("Booting worker with pid") == workers:
                break
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
