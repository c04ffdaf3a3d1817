"""Throttling per API key (or staff user's session), and per client address for calls without
credentials. The counters live in Django's cache, Redis (CACHES), shared by every server process.

Each throttle is a fixed window per key or address: its first request starts a window of the rate's duration
(a minute), and each request is counted in one atomic Redis step, one round trip (a Lua script that INCRs
the counter and sets its expiry on the first hit: FallbackRedisCache.hit_window). Past the rate the request
gets 429 with Retry-After, the seconds left in the window. DRF's SimpleRateThrottle, used before, read a
list of timestamps, changed it in Python and wrote it back: two round trips, and two processes reading the
same list each added their request and one write won, so more requests went through than the rate. A fixed
window can let up to twice the rate through in the seconds either side of a window's end; a sliding window
would not, at the cost of one entry per request in Redis and a longer script. A throttle bounds load, and an
outage already lets more through (below), so the fixed window's O(1) counter is worth that.

While Redis cannot be reached the throttles fail open: the window answers nothing (core/cache_backend.py), so
every request goes through uncounted, and one warning per outage says so.
Failing closed would turn a cache outage into an API outage for every client; counting in PostgreSQL instead
would add a write to every request on the one store the API still has, when it must carry the reads the
cache no longer answers. What a throttle guards against is bounded anyway: API keys are still checked on
every request, a key gets only its own contractor's rows, and an outage of a few minutes lets a client make
a few minutes' worth of requests more than its rate."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from django.core.cache.backends.base import BaseCache
from rest_framework.throttling import SimpleRateThrottle

from core.cache_backend import Window, cache_outage

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

log = logging.getLogger(__name__)
_warned: dict[str, tuple[str, float | None] | None] = {"outage": None}
_warned_lock = threading.Lock()


def _note_uncounted(cache: BaseCache) -> None:
    """Warn once per outage of the cache that requests go through uncounted."""
    outage = cache_outage(cache)
    if outage is None:
        return
    with _warned_lock:
        if _warned["outage"] == (outage.location, outage.down_since):
            return
        _warned["outage"] = (outage.location, outage.down_since)
    log.warning("API throttles let requests through uncounted while Redis (%s) is unavailable", outage.location)


class WindowThrottle(SimpleRateThrottle):
    """A fixed window per get_cache_key (see the module's docstring). SimpleRateThrottle gives the rate's
    parsing (get_rate, parse_rate), the client's address (get_ident, NUM_PROXIES) and the cache; its history
    list is not used."""

    # Not DRF's "throttle_%(scope)s_%(ident)s": a counter must never meet a history list DRF left in Redis.
    cache_format = "throttle:%(scope)s:%(ident)s"
    # Set from the rate by SimpleRateThrottle.__init__; DRF's stubs do not declare them.
    num_requests: int
    duration: int
    window: Window | None = None

    def allow_request(self, request: Request, view: APIView | None) -> bool:
        self.key = self.get_cache_key(request, view)  # type: ignore[arg-type]
        if self.key is None:
            return True
        self.window = self.cache.hit_window(self.key, seconds=self.duration)  # type: ignore[attr-defined]
        if self.window is None:
            _note_uncounted(self.cache)
            return True
        return self.window.count <= self.num_requests

    def wait(self) -> float | None:
        """The seconds until the window resets (Retry-After: DRF rounds them up)."""
        return self.window.seconds_left if self.window is not None else None


class ClientRateThrottle(WindowThrottle):
    """API_RATE requests per key, whoever owns it (a staff user's keys each have their own bucket, apart
    from the user's session), or per user for a session; anonymous callers (including failed
    authentication, which DRF answers before throttles run for the user) are counted by address under
    API_ANON_RATE."""

    def get_rate(self) -> str:
        from django.conf import settings

        return settings.API_RATE

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if getattr(request.auth, "pk", None) is not None:  # an API key (a session has no request.auth)
            return self.cache_format % {"scope": "client", "ident": f"key:{request.auth.pk}"}
        user = request.user
        if user is not None and user.is_authenticated:
            return self.cache_format % {"scope": "client", "ident": f"user:{user.pk}"}
        return None


class AddressRateThrottle(WindowThrottle):
    def get_rate(self) -> str:
        from django.conf import settings

        return settings.API_ANON_RATE

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.user is not None and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": "address", "ident": self.get_ident(request)}


class AuthFailureThrottle(WindowThrottle):
    """Refused API keys per client address, counted by allow_request only once a key is refused
    (contractors/api/authentication.py): a valid key never touches the counter."""

    scope = "auth_failure"

    def get_rate(self) -> str:
        from django.conf import settings

        return settings.API_AUTH_FAILURE_RATE

    def get_cache_key(self, request: Request, view: APIView | None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
