"""Throttling per API key (or staff user's session), and per client address for calls without
credentials. The counters live in Django's cache, Redis (CACHES), shared by every server process.

While Redis cannot be reached the throttles fail open: the cache reads no history and drops the new one
(core/cache_backend.py), so every request goes through uncounted, and one warning per outage says so.
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

from core.cache_backend import cache_outage

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


class FailOpenThrottle(SimpleRateThrottle):
    def allow_request(self, request: Request, view: APIView) -> bool:
        allowed = super().allow_request(request, view)
        _note_uncounted(self.cache)
        return allowed


class ClientRateThrottle(FailOpenThrottle):
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


class AddressRateThrottle(FailOpenThrottle):
    def get_rate(self) -> str:
        from django.conf import settings

        return settings.API_ANON_RATE

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.user is not None and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": "address", "ident": self.get_ident(request)}


class AuthFailureThrottle(FailOpenThrottle):
    """Refused API keys per client address. allow_request only looks; count_failure records one."""

    scope = "auth_failure"
    # Set from the rate by SimpleRateThrottle.__init__; DRF's stubs do not declare them.
    num_requests: int
    duration: int

    def get_rate(self) -> str:
        from django.conf import settings

        return settings.API_AUTH_FAILURE_RATE

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request: Request, view: APIView) -> bool:
        self.key = self.get_cache_key(request, view)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        _note_uncounted(self.cache)
        return len(self.history) < self.num_requests

    def count_failure(self) -> None:
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)
