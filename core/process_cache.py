"""Small caches inside one process, shared by its threads: VersionedCache (at the end) of values keyed by the
version they were made from; ProcessCache of rows a hot path would otherwise read from PostgreSQL on every
call (an API key and its owner), which every process drops soon after a change.

A change calls `changed()`: once its transaction commits, the kind's generation in Redis is bumped
(core.cache) and this process drops its entries at once. Every process reads the generation at most every
`check_seconds` (one Redis GET, made by one of its threads while the others go on) and drops its entries
when it moved; so an entry is never used more than `check_seconds` (plus the time of one GET) after a
change committed anywhere. Each entry also expires `seconds` after it was read, which bounds what a change
made without `changed()` (a raw UPDATE) or a bump lost in a Redis outage can leave behind.

An entry carries the generation (and this process's own count of changes) known *before* its row was
read, and is used only while both are still current: a thread that read the row just before a change
committed cannot store it as fresh after the change's bump.

While Redis cannot be reached (the generation reads None) nothing is cached and every call reads
PostgreSQL: safe, as before the cache; the entries held when the outage was noticed are dropped, since a
change made during it cannot be told through Redis."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import transaction

from core.cache import generation, generation_bump

V = TypeVar("V")


@dataclass(frozen=True)
class Stamp:
    """What the cache knew before a row was read: Redis's generation of the kind and this process's count
    of its own changes."""

    generation: int
    epoch: int


class ProcessCache(Generic[V]):
    """Values by string key (never a secret: callers key by a hash), at most `max_entries` (the least
    recently used go first), each for `seconds`, dropped when the kind's generation moves (checked every
    `check_seconds`). Thread-safe: one lock around a dict, held for microseconds."""

    def __init__(self, *, kind: str, seconds: float, check_seconds: float, max_entries: int) -> None:
        self.kind = kind
        self.seconds = seconds
        self.check_seconds = check_seconds
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Stamp, float, V]] = OrderedDict()
        self._generation: int | None = None
        self._epoch = 0
        self._checked_at = -math.inf

    def stamp(self) -> Stamp | None:
        """Take it before reading the database, and hand it to get() and put(). None while Redis cannot be
        reached: read the database and cache nothing."""
        now = time.monotonic()
        with self._lock:
            due = now - self._checked_at >= self.check_seconds
            if due:
                self._checked_at = now  # this thread reads the generation; the others go on meanwhile
        if due:
            current = generation(self.kind)
            with self._lock:
                if current != self._generation:
                    self._entries.clear()
                    self._generation = current
        with self._lock:
            return None if self._generation is None else Stamp(self._generation, self._epoch)

    def get(self, key: str, stamp: Stamp | None) -> V | None:
        """The value cached under `key`, if it was read under `stamp` and has not expired."""
        if stamp is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry_stamp, expires_at, value = entry
            if entry_stamp != stamp or time.monotonic() >= expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: V, stamp: Stamp | None) -> None:
        """Cache `value`, read from the database after `stamp` was taken; dropped if a change came since."""
        if stamp is None:
            return
        with self._lock:
            if self._generation is None or stamp != Stamp(self._generation, self._epoch):
                return
            self._entries[key] = (stamp, time.monotonic() + self.seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def changed(self) -> None:
        """Something cached may have changed: once the current transaction commits (at once outside one),
        every process drops its entries within `check_seconds`, this one at once."""
        generation_bump(self.kind)
        transaction.on_commit(self._drop_here)

    def _drop_here(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def clear(self) -> None:
        """Forget everything, the generation too (tests: Redis is emptied between them)."""
        with self._lock:
            self._entries.clear()
            self._generation = None
            self._epoch += 1
            self._checked_at = -math.inf

    def __len__(self) -> int:
        return len(self._entries)


class VersionedCache(Generic[V]):
    """Values by a key that names the version of what they were made from (a row's id and its xmin, say), at
    most `max_entries`, the least recently used going first. A change makes a new version, so a new key: an
    entry is never stale and nothing needs dropping; the old versions age out. Thread-safe, as ProcessCache."""

    def __init__(self, *, max_entries: int) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[object, V] = OrderedDict()

    def get(self, key: object) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: object, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
