"""Procfile is production's (gunicorn, Celery workers, one beat); Procfile.dev is `make run`'s (runserver)."""

import http.client
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.workers import database_url

ROOT = Path(__file__).resolve().parents[2]
# A process line as honcho and the platforms read it; other lines (comments) are not processes.
PROCESS_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def processes(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    return {match[1]: match[2] for line in lines if (match := PROCESS_LINE.match(line))}


def expanded(command: str, **env: str) -> list[str]:
    """The command's words after the shell's expansion, as a platform's shell runs it."""
    clean = {key: value for key, value in os.environ.items() if key not in {"PORT", "WEB_CONCURRENCY"}}
    done = subprocess.run(
        ["sh", "-c", f"set -- {command}; printf '%s\\n' \"$@\""],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_procfile_runs_production_processes_and_no_development_server():
    production = processes("Procfile")

    assert sorted(production) == ["beat", "web", "worker"]
    assert "runserver" not in (ROOT / "Procfile").read_text()
    web = shlex.split(production["web"])
    assert web[:2] == ["gunicorn", "leadengine.wsgi:application"]
    assert production["worker"] == "celery -A leadengine worker -l info"
    # one beat: its own process, and no worker embeds another (celery worker -B)
    assert production["beat"] == "celery -A leadengine beat -l info"
    assert [name for name, command in production.items() if "beat" in command] == ["beat"]


def test_procfile_web_takes_its_port_and_worker_count_from_the_environment():
    command = processes("Procfile")["web"]

    assert expanded(command, PORT="5000") == [
        "gunicorn", "leadengine.wsgi:application", "--workers", "2", "--worker-class", "gthread", "--threads", "4",
        "--bind", "0.0.0.0:5000",
    ]  # fmt: skip
    assert expanded(command, PORT="8080", WEB_CONCURRENCY="5")[2:4] == ["--workers", "5"]
    assert expanded(command, PORT="8080", WEB_CONCURRENCY="5")[-1] == "0.0.0.0:8080"


def test_procfile_dev_runs_the_development_server_worker_and_beat():
    development = processes("Procfile.dev")

    assert development == {
        "web": "python manage.py runserver $HOST:$PORT",
        "worker": "celery -A leadengine worker -l info -c 2",
        "beat": "celery -A leadengine beat -l info",
    }


def test_make_run_starts_procfile_dev():
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)

    assert run is not None
    honcho = [line for line in run[1].splitlines() if "honcho" in line]
    assert len(honcho) == 1
    assert honcho[0].endswith("$(BIN)/honcho start -f Procfile.dev")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


@pytest.mark.django_db
def test_procfile_web_serves_production_with_probes_over_plain_http(settings, tmp_path):
    """The web line as a platform runs it (a shell, PORT set, WEB_CONCURRENCY unset), with production's
    settings: 2 gunicorn workers; the probes answer plain HTTP, the admin redirects to https."""
    port = free_port()
    clean = {key: value for key, value in os.environ.items() if key not in {"WEB_CONCURRENCY", "DEBUG"}}
    env = clean | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PORT": str(port),
        "DEBUG": "false",
        "SECRET_KEY": "a-production-secret-for-this-test-only-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["sh", "-c", f"exec {processes('Procfile')['web']}"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                healthz = get(port, "/healthz")
            except OSError:
                time.sleep(0.2)
                continue
            if log.read_text().count("Booting worker with pid") == 2:
                break
            time.sleep(0.2)

        assert healthz == (200, "")
        assert get(port, "/readyz") == (200, "")
        assert get(port, "/admin/") == (301, f"https://127.0.0.1:{port}/admin/")
        assert log.read_text().count("Booting worker with pid") == 2
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
