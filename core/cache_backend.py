"""Django's Redis cache, degraded instead of broken while Redis cannot be reached.

The cache only ever saves work: every answer in it can be computed again from PostgreSQL. So when Redis
refuses a connection or does not answer within CACHE_TIMEOUT_SECONDS, a read is a miss and a write is
dropped, and the request goes on with PostgreSQL alone. Counters are the exception: an increment cannot
be answered without Redis, so incr() and decr() raise CacheUnavailable, and their callers choose (cached
generations are bumped later, the login guard lets the login through; see core/cache.py and
leadengine/security.py). The API throttles' window (hit_window) answers None instead, and the
throttles let the request through uncounted (core/api/throttling.py).

After a failure the process leaves Redis alone for RETRY_SECONDS, so a Redis that hangs costs one timeout
per process in that time, not one per call. An outage is logged once as a warning when it starts, again
every REMINDER_SECONDS while it lasts (with the number of calls that went without Redis), and at INFO
when Redis answers again; never once per call.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

log = logging.getLogger("core.cache")

R = TypeVar("R")

DEFAULT_TIMEOUT_SECONDS = 0.5
RETRY_SECONDS = 2.0  # after a failure, calls go without Redis this long before one tries it again
REMINDER_SECONDS = 300.0
# What says the server, not the call, is at fault: refused, reset or timed-out connections, a server still
# loading its data after a restart (BusyLoadingError is a ConnectionError), a socket error.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


# One fixed window's counter, counted in one atomic step: the first hit sets the window's expiry (and a counter
# found without one gets it, so no counter outlives its window). Redis runs a script alone, with its clock
# frozen for the script, so the counter cannot expire between INCR and PTTL. Returns {count, ms left}.
_HIT_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    left = tonumber(ARGV[1])
end
return {count, left}
"""
_HIT_WINDOW_SHA = hashlib.sha1(_HIT_WINDOW.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Window:
    """A fixed window's counter as Redis holds it: hits counted so far, and the seconds until it resets."""

    count: int
    seconds_left: float


class CacheUnavailable(Exception):
    """Redis could not be reached for an operation whose answer only Redis has (incr, decr)."""


class Outage:
    """Whether one Redis location answers, shared by every thread of the process (each thread has its own
    cache object, and one outage must be logged once)."""

    def __init__(self, location: str):
        self.location = location
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.error = ""
        self.bypassed = 0
        self._retry_at = 0.0
        self._reminded_at = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def skipping(self) -> bool:
        """True while calls go without Redis, in the RETRY_SECONDS after a failure."""
        if self.down_since is None or time.monotonic() >= self._retry_at:
            return False
        with self._lock:
            self.bypassed += 1
        return True

    def failed(self, error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self.bypassed += 1
            self._retry_at = now + RETRY_SECONDS
            self.error = f"{type(error).__name__}: {error}"
            if self.down_since is None:
                self.down_since = self._reminded_at = now
                log.warning(
                    "Redis cache at %s is unavailable (%s): reads are computed from PostgreSQL, writes are "
                    "dropped, API throttles and the login guard do not count until it answers again",
                    self.location,
                    self.error,
                )
            elif now - self._reminded_at >= REMINDER_SECONDS:
                self._reminded_at = now
                log.warning(
                    "Redis cache at %s still unavailable after %.0f s (%s calls went without it): %s",
                    self.location,
                    now - self.down_since,
                    self.bypassed,
                    self.error,
                )

    def answered(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            log.info(
                "Redis cache at %s answers again after %.1f s unavailable (%s calls went without it)",
                self.location,
                time.monotonic() - self.down_since,
                self.bypassed,
            )
            self.down_since = None
            self.bypassed = 0


_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()


def outage_of(location: str) -> Outage:
    with _outages_lock:
        return _outages.setdefault(location, Outage(location))


def _redacted(location: str) -> str:
    """The location without its password, for the logs."""
    head, at, tail = location.rpartition("@")
    if not at:
        return location
    scheme, _, _credentials = head.partition("://")
    return f"{scheme}://***@{tail}"


class KeptClientRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client with one redis.Redis per connection pool, made once. Django makes a new one
    for every cache operation, and its table of response callbacks was a quarter of a throttled API request's
    Redis CPU. A redis.Redis over a pool is safe to share between threads (each command takes a connection)."""

    # Set by RedisCacheClient; Django's stubs do not declare them.
    _client: type[redis.Redis]
    _get_connection_pool_index: Callable[[bool], int]
    _get_connection_pool: Callable[[bool], redis.ConnectionPool]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class FallbackRedisCache(RedisCache):
    """Django's RedisCache with short socket timeouts (OPTIONS socket_connect_timeout, socket_timeout;
    DEFAULT_TIMEOUT_SECONDS unless set) that goes on without Redis while it is unreachable: see the
    module's docstring."""

    # Set by RedisCache.__init__; Django's stubs do not declare them.
    _options: dict[str, Any]
    _servers: list[str]

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = KeptClientRedisCacheClient  # RedisCache.__init__ sets its own
        self._options = {
            "socket_connect_timeout": DEFAULT_TIMEOUT_SECONDS,
            "socket_timeout": DEFAULT_TIMEOUT_SECONDS,
            **self._options,
        }
        self.outage = outage_of(";".join(_redacted(location) for location in self._servers))

    def _guarded(self, operation: Callable[[], R], fallback: Callable[[], R]) -> R:
        if self.outage.skipping():
            return fallback()
        try:
            result = operation()
        except UNREACHABLE as error:
            self.outage.failed(error)
            return fallback()
        self.outage.answered()
        return result

    def hit_window(self, key: str, *, seconds: float) -> Window | None:
        """Count one hit in `key`'s window of `seconds` (started by its first hit), atomically, in one round
        trip (EVALSHA; EVAL once per Redis that has not seen the script); None while Redis is unreachable."""

        def hit() -> Window:
            stored = self.make_and_validate_key(key)
            client = self._cache.get_client(stored, write=True)
            window_ms = math.ceil(seconds * 1000)
            try:
                count, left_ms = client.evalsha(_HIT_WINDOW_SHA, 1, stored, window_ms)
            except redis.exceptions.NoScriptError:  # a Redis started since: EVAL also keeps the script
                count, left_ms = client.eval(_HIT_WINDOW, 1, stored, window_ms)
            return Window(count=int(count), seconds_left=int(left_ms) / 1000)

        return self._guarded(hit, lambda: None)

    def _unavailable(self) -> NoReturn:
        raise CacheUnavailable(f"Redis cache at {self.outage.location} is unavailable: {self.outage.error}")

    def add(self, key: Any, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guarded(lambda: super(FallbackRedisCache, self).add(key, value, timeout, version), lambda: False)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._guarded(lambda: super(FallbackRedisCache, self).get(key, default, version), lambda: default)

    def set(self, key: Any, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        return self._guarded(lambda: super(FallbackRedisCache, self).set(key, value, timeout, version), lambda: None)

    def touch(self, key: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guarded(lambda: super(FallbackRedisCache, self).touch(key, timeout, version), lambda: False)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(lambda: super(FallbackRedisCache, self).delete(key, version), lambda: False)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return self._guarded(lambda: super(FallbackRedisCache, self).get_many(keys, version), dict)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(lambda: super(FallbackRedisCache, self).has_key(key, version), lambda: False)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._guarded(lambda: super(FallbackRedisCache, self).incr(key, delta, version), self._unavailable)

    def set_many(
        self, data: dict[Any, Any], timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        # Django's contract: the keys that were not stored.
        return self._guarded(
            lambda: super(FallbackRedisCache, self).set_many(data, timeout, version), lambda: list(data)
        )

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        return self._guarded(lambda: super(FallbackRedisCache, self).delete_many(keys, version), lambda: None)

    def clear(self) -> None:
        self._guarded(lambda: super(FallbackRedisCache, self).clear(), lambda: None)


def cache_outage(cache: BaseCache) -> Outage | None:
    """The outage `cache` (a FallbackRedisCache, or the proxy of one) is going through while its last call
    could not reach Redis; None while Redis answers."""
    outage: Outage | None = getattr(cache, "outage", None)
    return outage if outage is not None and outage.down else None


def cache_unavailable(cache: BaseCache) -> bool:
    """True while `cache` (a FallbackRedisCache) is going without Redis: its last call could not reach it."""
    return cache_outage(cache) is not None
