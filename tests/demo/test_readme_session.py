"""README's API sessions, run as a reader pastes them, so that README cannot drift from the product.

Every `$ ` line of the shell blocks of README's "API" section (with its continuation lines) is typed into one
bash, in order, in the checkout, after README's first step: a demo set up from an empty database of its own by
`manage.py setup` (a tiny market), served by gunicorn with a Celery worker. The shell starts without the
virtual environment on its PATH and without DEBUG, as a new terminal does. The session's URLs name
127.0.0.1:8000; the server listens on a free port instead and the commands are typed with that port (the only
change), so that a `make run` on 8000 is never in the way. Each command must exit 0 and answer what README
shows under it: the same JSON keys, the same states, codes and messages (ids and figures aside), the same CSV
columns; no answer where README shows none.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCUMENTED_HOST = "127.0.0.1:8000"
# Keys whose value README shows as the answer's own (digits aside: ids in messages); other keys must exist.
SAME_VALUE = {"state", "code", "detail", "fields", "trade", "job", "status", "requested_by", "job_value", "previous"}
SHOWN_PAIR = re.compile(r'"(\w+)": ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|null|true|false|\{\})')
SETUP = ["--properties", "2000", "--days", "1"]


def api_sessions() -> list[list[tuple[str, str]]]:
    """The shell blocks of README's API section: each a list of (command, the answer README shows under it)."""
    text = README.read_text()
    start = text.index("\n## API\n")
    section = text[start : text.index("\n## ", start + 1)]
    sessions = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        entries: list[tuple[list[str], list[str]]] = []
        lines = iter(block.splitlines())
        for line in lines:
            if line.startswith("$ "):
                command = [line[2:]]
                while command[-1].endswith("\\"):
                    command.append(next(lines))
                entries.append((command, []))
            else:
                assert entries, f"README's API session starts with an answer, not a command: {line}"
                entries[-1][1].append(line)
        sessions.append([("\n".join(command), "\n".join(answer)) for command, answer in entries])
    return sessions


def test_readme_api_section_has_the_sessions_this_test_runs():
    sessions = api_sessions()

    assert len(sessions) == 2
    assert sessions[0][0][0] == "source .venv/bin/activate && export DEBUG=true"
    assert all(DOCUMENTED_HOST in command for session in sessions for command, _ in session if "curl" in command)


class Shell:
    """One bash, fed a command at a time as a reader types them: what a command defines stays for the next."""

    def __init__(self, *, cwd: Path, env: dict[str, str]):
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def run(self, command: str, *, timeout: float = 120) -> tuple[int, str]:
        """Run `command`; its exit code and everything it wrote (stdout and stderr)."""
        marker = f"--end-{uuid.uuid4().hex}--"
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f'{command}\n__status=$?; echo; echo "{marker}$__status"\n'.encode())
        self.process.stdin.flush()
        output = b""
        deadline = time.monotonic() + timeout
        while (found := re.search(rb"\n" + marker.encode() + rb"(\d+)\n", output)) is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{command!r} still running after {timeout} s: {output.decode(errors='replace')}"
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"the shell ended: {output.decode(errors='replace')}"
                output += chunk
        return int(found[1]), output[: found.start()].decode()

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first(document: object, key: str) -> tuple[bool, object]:
    """The first value of `key` in the JSON document, depth first in the document's order (as a reader finds
    it reading down): (found, value)."""
    if isinstance(document, dict):
        if key in document:
            return True, document[key]
        values = document.values()
    elif isinstance(document, list):
        values = document
    else:
        return False, None
    for value in values:
        found, inner = first(value, key)
        if found:
            return True, inner
    return False, None


def with_any_digits(text: str) -> str:
    """`text` as a pattern in which every number may be another (ids, figures, dates)."""
    return re.sub(r"\d+", r"\\d+", re.escape(text))


def assert_answer_as_shown(command: str, shown: str, answer: str) -> None:
    answer = answer.rstrip("\n")
    if not shown:
        assert answer == "", f"{command}\nREADME shows no answer; the shell answered:\n{answer}"
        return
    if shown.lstrip().startswith("{"):
        document = json.loads(answer)
        for key, literal in SHOWN_PAIR.findall(shown):
            found, value = first(document, key)
            assert found, f"{command}\nREADME shows {key!r}, the answer has none:\n{answer}"
            if key not in SAME_VALUE:
                continue
            expected = json.loads(literal)
            if isinstance(expected, str):
                assert isinstance(value, str)
                assert re.fullmatch(with_any_digits(expected), value), (command, key, expected, value)
            else:
                assert value == expected, (command, key, expected, value)
        return
    # Text (a CSV file's lines): as many lines, each starting as README's does up to its first "...".
    shown_lines, lines = shown.splitlines(), answer.splitlines()
    assert len(lines) == len(shown_lines), (command, shown, answer)
    for expected, line in zip(shown_lines, lines, strict=True):
        assert re.match(with_any_digits(expected.split("...")[0]), line), (command, expected, line)


def status_of(answer: str) -> str | None:
    """The "status" an answer (or README's shortened one, with its "...") shows, if any."""
    found = re.search(r'"status":\s*"(\w+)"', answer)
    return found.group(1) if found else None


@pytest.fixture
def demo_database():
    """A database of its own (beside the test database), empty, dropped after the test: its URL."""
    params = connection.settings_dict
    name = f"{params['NAME']}_readme"
    admin = {"host": params["HOST"] or "127.0.0.1", "port": params["PORT"] or 5432, "user": params["USER"]}
    if params["PASSWORD"]:
        admin["password"] = params["PASSWORD"]

    def run(sql: str) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as server:
            server.execute(sql)

    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')
    password = f":{params['PASSWORD']}" if params["PASSWORD"] else ""
    yield f"postgres://{admin['user']}{password}@{admin['host']}:{admin['port']}/{name}"
    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def started(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_readme_api_sessions_run_verbatim_against_a_freshly_set_up_demo(demo_database, tmp_path):
    assert (ROOT / ".venv/bin/activate").exists(), "README's first step activates .venv, which make creates"
    servers = {"DATABASE_URL": demo_database, "REDIS_URL": settings.REDIS_URL}
    venv_bin = str(Path(sys.executable).parent)
    # A new terminal: no virtual environment on the PATH, DEBUG unset (README's first step sets both).
    path = os.pathsep.join(
        entry for entry in os.environ["PATH"].split(os.pathsep) if entry not in {venv_bin, str(ROOT / ".venv/bin")}
    )
    terminal = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "VIRTUAL_ENV", "PYTHONPATH"}}
    terminal |= servers | {"PATH": path}
    service = os.environ | servers | {"DEBUG": "true"}

    done = subprocess.run(
        [sys.executable, "manage.py", "setup", *SETUP], cwd=ROOT, env=service, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[9/9] ensure_demo_user: done in" in done.stdout

    # The site and a worker, on a queue of their own (the runs the session starts go there and nowhere else).
    queue = f"readme-{uuid.uuid4().hex[:8]}"
    port = free_port()
    boot = f"from leadengine.celery import app; app.conf.task_default_queue = {queue!r}; "
    site = started(
        [sys.executable, "-c", boot + "import sys; from gunicorn.app.wsgiapp import run; sys.argv = "
         f"['gunicorn', 'leadengine.wsgi:application', '--bind', '127.0.0.1:{port}', '--workers', '1', "
         "'--threads', '4']; run()"],
        env=service, log=tmp_path / "gunicorn.log",
    )  # fmt: skip
    worker = started(
        [sys.executable, "-c", boot + f"app.worker_main(['worker', '-Q', {queue!r}, '--pool', 'solo', '-l', 'warning', "
         "'--without-gossip', '--without-mingle', '--without-heartbeat'])"],
        env=service, log=tmp_path / "worker.log",
    )  # fmt: skip
    csv_there = (ROOT / "leads.csv").exists()
    shell = Shell(cwd=ROOT, env=terminal)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert site.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.3)

        for session in api_sessions():
            for command, shown in session:
                typed = command.replace(DOCUMENTED_HOST, f"127.0.0.1:{port}")
                code, answer = shell.run(typed)
                assert code == 0, f"{command}\nexit code {code}:\n{answer}"
                # A run README shows ended: ask again, as a reader would, while the worker is at it.
                waited = time.monotonic() + 60
                while status_of(shown) not in {None, status_of(answer)} and status_of(answer) in {"queued", "running"}:
                    assert time.monotonic() < waited, answer
                    time.sleep(0.5)
                    code, answer = shell.run(typed)
                    assert code == 0, answer
                assert_answer_as_shown(command, shown, answer)
    finally:
        shell.close()
        stop(site)
        stop(worker)
        if not csv_there:
            (ROOT / "leads.csv").unlink(missing_ok=True)
