"""Throttling per API key (or staff user's session), and per client address for calls without
credentials. The counters live in Django's cache, Redis (CACHES), shared by every server process."""

from rest_framework.throttling import SimpleRateThrottle

from contractors.models import ApiKey


class ClientRateThrottle(SimpleRateThrottle):
    """API_RATE requests per key, whoever owns it (a staff user's keys each have their own bucket, apart
    from the user's session), or per user for a session; anonymous callers (including failed
    authentication, which DRF answers before throttles run for the user) are counted by address under
    API_ANON_RATE."""

    def get_rate(self):
        from django.conf import settings

        return settings.API_RATE

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": "client", "ident": f"key:{request.auth.pk}"}
        user = request.user
        if user is not None and user.is_authenticated:
            return self.cache_format % {"scope": "client", "ident": f"user:{user.pk}"}
        return None


class AddressRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        from django.conf import settings

        return settings.API_ANON_RATE

    def get_cache_key(self, request, view):
        if request.user is not None and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": "address", "ident": self.get_ident(request)}


class AuthFailureThrottle(SimpleRateThrottle):
    """Refused API keys per client address. allow_request only looks; count_failure records one."""

    scope = "auth_failure"

    def get_rate(self):
        from django.conf import settings

        return settings.API_AUTH_FAILURE_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view):
        self.key = self.get_cache_key(request, view)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) < self.num_requests

    def count_failure(self) -> None:
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)
