"""Cached reads, invalidated by generation. A cached answer's key carries the current generation of each
kind of data it was built from; a service that changes that data bumps the kind's generation once its
transaction commits, so no answer built on the old data is read again (it simply expires). The
generations live in Django's cache (Redis), shared by every process."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import cache
from django.db import transaction

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


def generation(kind: str) -> int:
    return cache.get_or_set(_key(kind), 1, timeout=None)


def generation_bump(*kinds: str) -> None:
    """Invalidate every cached answer built on any of `kinds`, after the current transaction commits (a
    reader between the bump and the commit would otherwise cache the old data under the new generation)."""

    def bump() -> None:
        for kind in kinds:
            try:
                cache.incr(_key(kind))
            except ValueError:  # not set yet (or evicted): any value but the old one will do
                cache.set(_key(kind), 2, timeout=None)

    if kinds:
        transaction.on_commit(bump)


def usage_bump(contractor_ids: Iterable[int | None]) -> None:
    """Invalidate the cached cap usage of these contractors (None: a lead without one, skipped), in one
    callback after commit."""
    generation_bump(*(usage(contractor_id) for contractor_id in sorted({i for i in contractor_ids if i is not None})))


def cached(name: str, parts: Iterable[Any], *, depends_on: Iterable[str], compute: Callable[[], Any]) -> Any:
    """compute(), cached under `name` and `parts` for CACHE_SECONDS, until a kind it depends on changes."""
    generations = ",".join(f"{kind}={generation(kind)}" for kind in sorted(depends_on))
    key = f"{name}:{':'.join(str(part) for part in parts)}:{generations}"
    return cache.get_or_set(key, compute, timeout=CACHE_SECONDS)
