"""Cached reads, invalidated by generation. A cached answer's key carries the current generation of each
kind of data it was built from; a service that changes that data bumps the kind's generation once its
transaction commits, so no answer built on the old data is read again (it simply expires). The
generations live in Django's cache (Redis), shared by every process.

While Redis cannot be reached (core/cache_backend.py), answers are computed directly, and a bump that
could not be made is kept by the process and made at its next cached read or bump once Redis answers. A
bump lost for good (the process ended first) leaves an answer built before it readable until it expires:
never longer than CACHE_SECONDS after it was computed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar, cast

from django.core.cache import cache
from django.db import transaction

from core.cache_backend import CacheUnavailable

log = logging.getLogger(__name__)

CACHE_SECONDS = 300

# The kinds of data cached answers depend on, and who bumps them.
SCORES = "scores"  # scoring: a run finishes, a property is rescored
TERRITORIES = "territories"  # territories: an ownership starts or ends


def usage(contractor_id: int) -> str:
    """The kind of one contractor's cap usage (the leads counted against its caps, leads.selectors):
    bumped by every lead move that adds a lead to its count or takes one out (usage_bump)."""
    return f"usage:{contractor_id}"


def _key(kind: str) -> str:
    return f"generation:{kind}"


# Kinds whose bump could not reach Redis, to bump once it answers (this process's; see the module's docstring).
_bumps_owed: set[str] = set()
_bumps_owed_lock = threading.Lock()


def _bump_now(kinds: Iterable[str]) -> None:
    """Bump the generation of each of `kinds`, and of the kinds owed; those Redis cannot take are owed."""
    with _bumps_owed_lock:
        owed = set(_bumps_owed)
        todo = sorted(owed | set(kinds))
        _bumps_owed.clear()
    for index, kind in enumerate(todo):
        try:
            cache.incr(_key(kind))
        except ValueError:  # not set yet (or evicted): any value but the old one will do
            cache.set(_key(kind), 2, timeout=None)
        except CacheUnavailable:
            with _bumps_owed_lock:
                _bumps_owed.update(todo[index:])
            if new := sorted(set(todo[index:]) - owed):
                log.info("Generations %s not bumped while Redis is unavailable: bumped once it answers", new)
            return


def generation(kind: str) -> int | None:
    """The kind's current generation, or None while Redis cannot be reached (answers are then not cached)."""
    if _bumps_owed:
        _bump_now(())
    key = _key(kind)
    value: int | None = cache.get(key)
    if value is None:
        cache.add(key, 1, timeout=None)  # the first reader starts it; a concurrent one's wins
        value = cache.get(key)
    return value


def generation_bump(*kinds: str) -> None:
    """Invalidate every cached answer built on any of `kinds`, after the current transaction commits (a
    reader between the bump and the commit would otherwise cache the old data under the new generation)."""
    if kinds:
        transaction.on_commit(lambda: _bump_now(kinds))


def usage_bump(contractor_ids: Iterable[int | None]) -> None:
    """Invalidate the cached cap usage of these contractors (None: a lead without one, skipped), in one
    callback after commit."""
    generation_bump(*(usage(contractor_id) for contractor_id in sorted({i for i in contractor_ids if i is not None})))


T = TypeVar("T")


def cached(
    name: str,
    parts: Iterable[object],
    *,
    depends_on: Iterable[str],
    compute: Callable[[], T],
    seconds: int = CACHE_SECONDS,
) -> T:
    """compute(), cached under `name` and `parts` for `seconds` (CACHE_SECONDS unless given), until a kind it
    depends on changes; computed directly while Redis cannot be reached."""
    generations = {kind: generation(kind) for kind in sorted(depends_on)}
    if None in generations.values():
        return compute()
    versions = ",".join(f"{kind}={number}" for kind, number in generations.items())
    key = f"{name}:{':'.join(str(part) for part in parts)}:{versions}"
    # What compute() returned, now or when it was cached (Django's stubs allow for None).
    return cast(T, cache.get_or_set(key, compute, timeout=seconds))
