"""Real Celery worker processes for tests: on the real Redis broker and the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from leadengine.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The test database as a DATABASE_URL for a worker process."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    if (db["HOST"] or "").startswith("/"):
        return f"postgres://{user}{password}@/{db['NAME']}?host={quote(db['HOST'])}&port={db['PORT'] or 5432}"
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A real Celery worker process (two pool processes) on the real Redis broker and the test database, with
    `env` added to its environment. It reads a queue of its own, which is also its default queue, so the
    tasks it sends itself (a run a job asks for) come back to it, as they do to a deployment's workers on
    the one default queue, and no other worker takes them. It runs in a session of its own, so that it and
    its pool processes can be killed together (SIGKILL: no shutdown, no acknowledgement, no cleanup)."""

    def __init__(self, log: Path, env: dict[str, str]):
        self.queue = f"test-{uuid.uuid4().hex[:8]}"
        self.log = log
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DEBUG": "true",
            "DJANGO_SETTINGS_MODULE": "leadengine.settings",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        # Its lines are LOG_LEVEL's (WARNING unless `env` says otherwise), as every process's (core/logs.py).
        argv = ["worker", "-Q", self.queue, "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        boot = (
            "from leadengine.celery import app; "
            f"app.conf.task_default_queue = {self.queue!r}; "
            f"app.worker_main({argv!r})"
        )
        command = [sys.executable, "-c", boot]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> str:
        """Stop it as the fixture does (warm shutdown); returns what it logged."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        return self.log.read_text()

    def unacknowledged(self) -> dict[bytes, dict]:
        """The messages it took and never acknowledged (a killed worker's tasks), by delivery tag: Redis
        keeps them aside and hands them back to the queue after the visibility timeout (an hour)."""
        with celery_app.connection_for_write() as broker:
            client = broker.default_channel.client
            held = {tag: json.loads(payload) for tag, payload in client.hgetall("unacked").items()}
        return {tag: message for tag, (message, _exchange, queue) in held.items() if queue == self.queue}

    def forget_its_messages(self) -> None:
        """Delete its queue and its unacknowledged messages, which nothing would ever take."""
        tags = list(self.unacknowledged())
        with celery_app.connection_for_write() as broker:
            client = broker.default_channel.client
            client.delete(self.queue)
            if tags:
                client.hdel("unacked", *tags)
                client.zrem("unacked_index", *tags)
