"""A heartbeat: while a block of long work runs, a thread of its own, on its own database connection, calls
`beat()` every `every` seconds, so that others can tell the work is alive (its run's heartbeat_at) though
the work's own connection is busy or inside a transaction no one sees before it commits. A beat that fails
(the database is away) is logged and the next one tried on a new connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import connection

from core.retry import connection_reset

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, beat: Callable[[], object], *, every: float, name: str):
        self.beat, self.every, self.name = beat, every, name
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        # A beat under way ends within the connect timeout; the thread is a daemon if it does not.
        self.thread.join(timeout=self.every + 10)

    def _run(self) -> None:
        try:
            while not self.stop.wait(self.every):
                try:
                    self.beat()
                except Exception as error:
                    log.warning("%s: a heartbeat failed: %s", self.name, error)
                    connection_reset()
        finally:
            connection.close()
