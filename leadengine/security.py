"""Protection of staff logins against password guessing.

Failed logins are counted per username (case-insensitive) and per client address, in Django's cache
(Redis), shared by every server process. Once either count reaches its limit (LOGIN_FAILURES_PER_USER,
LOGIN_FAILURES_PER_ADDRESS) within LOGIN_LOCKOUT_MINUTES of the first failure, logins for that username,
or from that address, are refused for LOGIN_LOCKOUT_MINUTES without the password being checked: a guess
made during a lockout learns nothing and costs nothing.

An attempt is counted before its password is checked (and given back if it succeeds), so that
concurrent guesses cannot all read "not locked yet" and get more password checks than the limit.
django-axes, which looks for a lock before the check and counts after it, was measured against this and
not taken (bench/login_guard.py; README, Back office, Login protection).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from core.cache_backend import CacheUnavailable, cache_unavailable
from core.errors import DomainError

logger = logging.getLogger("leadengine.security")
_warned_outage: list = [None]  # the outage (location, start) last warned of

ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class FailureCounter:
    """The failed logins of one username or one address, under `key` in the cache."""

    kind: str  # ACCOUNT or ADDRESS
    key: str
    limit: int

    @property
    def locked_until_key(self) -> str:
        """When the lock of this counter ends (a Unix time), for the message; set only while locked."""
        return f"{self.key}:locked-until"


class LoginLocked(DomainError):
    """Logins for this username, or from this address, are refused for `minutes` more minutes; `code` is
    locked_account or locked_address."""

    http_status = 429

    def __init__(self, kind: str, minutes: int):
        self.kind = kind
        self.minutes = minutes
        whom = "for this account" if kind == ACCOUNT else "from this address"
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(f"Too many failed logins {whom}. Try again in {minutes} {unit}.", code=f"locked_{kind}")


@dataclass(frozen=True)
class LoginAttempt:
    """A login attempt allowed to check its password; `counts` are the numbers it drew, in counter order."""

    username: str
    address: str
    counters: tuple[FailureCounter, FailureCounter]
    counts: tuple[int, int]


def lockout_seconds() -> int:
    return max(1, round(settings.LOGIN_LOCKOUT_MINUTES * 60))


def client_ip(request: HttpRequest | None) -> str:
    """The address a request comes from, by the API throttles' rule (DRF's get_ident with NUM_PROXIES,
    TRUSTED_PROXIES in the environment): the connection's address, or behind trusted proxies the one the
    nearest saw; an X-Forwarded-For a client wrote itself is not believed. As written ("" when unknown)."""
    return BaseThrottle().get_ident(request).strip() if request is not None else ""


def client_address(request: HttpRequest | None) -> str:
    """The address a login comes from (client_ip); an IPv6 address counts as its /64 network, which one
    client commonly holds whole."""
    return address_group(client_ip(request))


def address_group(raw: str) -> str:
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return raw.strip() or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _username_digest(username: str) -> str:
    # Hashed: any text a client submits makes a valid cache key, and usernames stay out of Redis.
    normalized = unicodedata.normalize("NFKC", username).strip().casefold()
    return hashlib.sha256(normalized.encode()).hexdigest()


def _account_counter(username: str) -> FailureCounter:
    key = f"login-failures:account:{_username_digest(username)}"
    return FailureCounter(ACCOUNT, key, settings.LOGIN_FAILURES_PER_USER)


def _address_counter(address: str) -> FailureCounter:
    return FailureCounter(ADDRESS, f"login-failures:address:{address}", settings.LOGIN_FAILURES_PER_ADDRESS)


def _increment(key: str, timeout: int) -> int:
    """Add one to the counter at `key`, starting it (expiring in `timeout` seconds) if absent. Atomic:
    add() only creates, INCR only adds, so no two callers ever read the same number."""
    while True:
        cache.add(key, 0, timeout)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: start the next window
            continue
        if count == 1:
            # Django's incr checks that the key exists, then INCRs; a key expiring in that gap is
            # recreated without a timeout, and a counter that never expires would lock for good.
            cache.touch(key, timeout)
        return count


def _give_back(key: str, timeout: int) -> None:
    """Take back one attempt counted at `key` (it was not a failure)."""
    try:
        count = cache.decr(key)
    except (ValueError, CacheUnavailable):  # expired, or Redis unavailable: nothing to take back
        return
    if count <= 0:
        cache.touch(key, timeout)  # the same exists-then-DECR gap as in _increment


def _minutes_left(counter: FailureCounter, values: dict) -> int:
    locked_until = values.get(counter.locked_until_key)
    seconds = locked_until - time.time() if locked_until is not None else lockout_seconds()
    return max(1, math.ceil(seconds / 60))


def _refuse_if_locked(counters: tuple[FailureCounter, ...], counts: tuple[int, ...] | None = None) -> None:
    """Raise LoginLocked for the counter at or over its limit whose lock ends last (the account's on a tie).
    `counts`: numbers already drawn; otherwise the stored counts are read."""
    keys = [counter.key for counter in counters] + [counter.locked_until_key for counter in counters]
    values = cache.get_many(keys)
    if counts is None:
        counts = tuple(values.get(counter.key, 0) for counter in counters)
    locks = [
        LoginLocked(counter.kind, _minutes_left(counter, values))
        for counter, count in zip(counters, counts, strict=True)
        if count >= counter.limit
    ]
    if locks:
        raise max(locks, key=lambda lock: lock.minutes)  # max() keeps the first (the account's) on a tie


def login_attempt_begin(*, username: str, address: str) -> LoginAttempt:
    """Allow a login attempt to check its password, counting it; or raise LoginLocked, counting nothing,
    while the username or the address is locked out (the lock is not extended: it ends
    LOGIN_LOCKOUT_MINUTES after the failure that set it, however many attempts it refuses)."""
    counters = (_account_counter(username), _address_counter(address))
    _refuse_if_locked(counters)
    timeout = lockout_seconds()
    counts = tuple(_increment(counter.key, timeout) for counter in counters)
    # Concurrent attempts passed the check above together: only the numbers up to the limit may go on.
    # One refused here stays counted on both counters, like any guess refused while locked would have been
    # had it come a moment later; over the limit, a count only keeps the lock it already holds.
    if any(count > counter.limit for counter, count in zip(counters, counts, strict=True)):
        _refuse_if_locked(counters, tuple(count - 1 for count in counts))
    return LoginAttempt(username=username, address=address, counters=counters, counts=counts)


def login_attempt_failed(attempt: LoginAttempt) -> None:
    """The attempt's password (or account) was refused: it stays counted; the failure that reaches a limit
    locks the username or address for LOGIN_LOCKOUT_MINUTES from now."""
    seconds = lockout_seconds()
    for counter, count in zip(attempt.counters, attempt.counts, strict=True):
        if count != counter.limit:
            continue
        cache.touch(counter.key, seconds)
        cache.set(counter.locked_until_key, time.time() + seconds, seconds)
        logger.warning(
            "Login locked out for %s minutes after %s failed logins %s: username %r, address %s",
            settings.LOGIN_LOCKOUT_MINUTES,
            count,
            "for the account" if counter.kind == ACCOUNT else "from the address",
            attempt.username,
            attempt.address,
        )


def login_attempt_succeeded(attempt: LoginAttempt) -> None:
    """The attempt logged in: the username's failures are forgotten. The address's are not (its own count
    is only given back), or whoever holds one account could guess others' passwords from the same
    address without limit, logging in to their own between guesses."""
    account, address = attempt.counters
    cache.delete_many([account.key, account.locked_until_key])
    _give_back(address.key, lockout_seconds())


def login_unlock(*, username: str | None = None, address: str | None = None) -> list[str]:
    """Forget the failed logins of a username and/or an address (any form: an IPv6 address clears its
    /64); returns what was locked out among them ("account", "address"). Raises CacheUnavailable while
    Redis cannot be reached (nothing could be read or forgotten)."""
    counters = []
    if username is not None:
        counters.append(_account_counter(username))
    if address is not None:
        counters.append(_address_counter(address_group(address)))
    counts = cache.get_many([counter.key for counter in counters])
    cache.delete_many([key for counter in counters for key in (counter.key, counter.locked_until_key)])
    if cache_unavailable(cache):
        raise CacheUnavailable("Redis is unavailable: the failed logins could not be read or forgotten")
    return [counter.kind for counter in counters if counts.get(counter.key, 0) >= counter.limit]


def _login_unguarded(*, username: str, address: str) -> None:
    """Log a login checked without the guard (Redis unavailable): a warning once per outage, then INFO."""
    outage = getattr(cache, "outage", None)
    this_outage = (outage.location, outage.down_since) if outage is not None else None
    if _warned_outage[0] != this_outage:
        _warned_outage[0] = this_outage
        logger.warning("Login guard off while Redis is unavailable: admin logins are checked uncounted")
    logger.info("Login checked without the guard (Redis unavailable): username %r, address %s", username, address)


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form: refuses without checking the password while the username or the client
    address is locked out, and counts failed logins (see the module's docstring)."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # a missing field: no password is checked, nothing to count
        address = client_address(self.request)
        try:
            attempt = login_attempt_begin(username=username, address=address)
        except LoginLocked as locked:
            raise ValidationError(str(locked), code=locked.code) from None
        except CacheUnavailable:
            _login_unguarded(username=username, address=address)
            return super().clean()
        try:
            cleaned_data = super().clean()
        except ValidationError:
            login_attempt_failed(attempt)
            raise
        login_attempt_succeeded(attempt)
        return cleaned_data
