"""API keys: created by the system, shown once, stored as a SHA-256 hash, revocable. A key belongs to a
contractor (its systems call the API as the contractor) or to a staff user (it calls as that user, and
only while they are active staff).

A key is `le_` + 8 hex characters (its visible prefix) + `_` + 43 URL-safe characters (256 random
bits). With that much entropy a plain SHA-256 is as good as a slow password hash, and it lets a request
find its key by an index lookup on the hash.

A key found is cached in each process (`KEYS`, core.process_cache) by its hash, never by the key itself:
a warmed key costs no query. Whatever may stop a key calls `api_keys_access_changed` (through
`api_key_revoke`, and through `api_key_changes_watched`'s signals for every save or delete of a key, a
contractor or a user, whoever makes it: the services, the admin, Django's user admin, a cascade), so a
revoked key, a suspended contractor's or a key of a user who left staff is refused everywhere within
`KEYS.check_seconds` of the commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from contractors.errors import ApiAccessDenied, ApiKeyOwnerInvalid, ApiKeyRevoked, ApiKeyUnknown
from contractors.models import ApiKey, Contractor
from contractors.selectors import contractor_api_access, staff_api_access
from core.process_cache import ProcessCache

KEY_PREFIX = "le_"
# The shape of every key api_key_generate makes; anything else is refused without a database query.
KEY_SHAPE = re.compile(r"le_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
# last_used_at is written at most this often per key (and process), so that busy clients do not write on every call.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
# What the cache holds of the key's owner: not the contractor's webhook secret nor the user's password hash,
# which authentication never reads (reading them from a key's owner costs a query, as any deferred field).
SECRET_FIELDS = {"contractor": "webhook_secret", "user": "password"}


def _attnames(model: type[models.Model], *, without: str = "") -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields if field.attname != without)


KEY_FIELDS = _attnames(ApiKey)
CONTRACTOR_FIELDS = _attnames(Contractor, without=SECRET_FIELDS["contractor"])
USER_FIELDS = _attnames(get_user_model(), without=SECRET_FIELDS["user"])


@dataclass(frozen=True)
class _Found:
    """A key row and its owner's as read, in plain values: each request gets model instances of its own
    (instance()), so no request sees another's changes to them."""

    key: tuple[Any, ...]
    contractor: tuple[Any, ...] | None
    user: tuple[Any, ...] | None

    @classmethod
    def of(cls, key: ApiKey) -> _Found:
        contractor, user = key.contractor, key.user
        return cls(
            key=tuple(getattr(key, name) for name in KEY_FIELDS),
            contractor=None if contractor is None else tuple(getattr(contractor, name) for name in CONTRACTOR_FIELDS),
            user=None if user is None else tuple(getattr(user, name) for name in USER_FIELDS),
        )

    def instance(self) -> ApiKey:
        key = ApiKey.from_db("default", KEY_FIELDS, self.key)
        contractor = (
            None if self.contractor is None else Contractor.from_db("default", CONTRACTOR_FIELDS, self.contractor)
        )
        user = None if self.user is None else get_user_model().from_db("default", USER_FIELDS, self.user)
        ApiKey._meta.get_field("contractor").set_cached_value(key, contractor)
        ApiKey._meta.get_field("user").set_cached_value(key, user)
        return key

    def used_at(self, when: dt.datetime) -> _Found:
        values = list(self.key)
        values[KEY_FIELDS.index("last_used_at")] = when
        return replace(self, key=tuple(values))


# Keys found, by hash, in this process. Every process drops them within half a second of a change anywhere
# (check_seconds: one Redis GET per process per half second, not per request); each is read again from
# PostgreSQL after 5 s at most (what a change made behind the services' and signals' back can last).
KEYS: ProcessCache[_Found] = ProcessCache(kind="api_keys", seconds=5, check_seconds=0.5, max_entries=10_000)


def api_key_well_formed(raw_key: str) -> bool:
    """True when `raw_key` has the shape of a key this system makes (it may still be unknown or revoked)."""
    return KEY_SHAPE.fullmatch(raw_key) is not None


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_generate() -> tuple[str, str]:
    """(raw key, visible prefix)."""
    prefix = KEY_PREFIX + secrets.token_hex(4)
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


@transaction.atomic
def api_key_create(
    *,
    contractor: Contractor | None = None,
    user: User | None = None,
    name: str = "",
    created_by: User | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the contractor, or for a staff user's own use: (the stored key, the raw key). Give
    exactly one owner; a user who is not active staff is refused (ApiKeyOwnerInvalid). The raw key exists
    only in the return value; show it to the user once."""
    if (contractor is None) == (user is None):
        raise ApiKeyOwnerInvalid("An API key belongs to a contractor or to a staff user: give exactly one.")
    if user is not None and not (access := staff_api_access(user=user)).allowed:
        raise ApiKeyOwnerInvalid(f"{access.reason[:-1]}; only active staff have API keys of their own.")
    raw_key, prefix = api_key_generate()
    key = ApiKey.objects.create(
        contractor=contractor,
        user=user,
        name=name,
        prefix=prefix,
        key_hash=api_key_hash(raw_key),
        created_by=created_by,
    )
    return key, raw_key


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke a key at once; revoking a revoked key keeps its first revocation time. An UPDATE, which sends
    no signal: it tells the processes' caches itself."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_keys_access_changed()
    key.refresh_from_db(fields=["revoked_at"])
    return key


def api_keys_access_changed() -> None:
    """A key, its contractor or its user may have changed in a way that stops the key (or lets it again):
    once the current transaction commits, every process drops the keys it cached (within
    KEYS.check_seconds), this one at once. Call it from whatever changes those rows without a save() or a
    delete() (a queryset's update()); saves and deletes are watched (api_key_changes_watched)."""
    KEYS.changed()


# The fields of a user whose change can stop the user's own keys; a save naming none of them (the login's
# last_login) changes nothing cached that matters.
USER_ACCESS_FIELDS = frozenset({"is_active", "is_staff", "is_superuser", "username"})


def _saved(
    sender: type[models.Model],
    instance: models.Model,
    created: bool = False,
    update_fields: Iterable[str] | None = None,
    **kwargs: object,
) -> None:
    if created and sender is ApiKey:
        return  # a new key was never cached
    if sender is get_user_model() and update_fields is not None and not USER_ACCESS_FIELDS & set(update_fields):
        return
    api_keys_access_changed()


def _deleted(sender: type[models.Model], instance: models.Model, **kwargs: object) -> None:
    api_keys_access_changed()


def api_key_changes_watched() -> None:
    """Every save or delete of an API key, a contractor or a user tells the processes' key caches, whoever
    makes it (the services, the admin and Django's user admin, a shell, a cascade), after its commit.
    A signal and not a call in each service, as the conventions would have it: this is a cache's
    invalidation, not a domain step, and it must follow writes this project does not make (the auth app's).
    Connected once, by the app's ready()."""
    for model in (ApiKey, Contractor, get_user_model()):
        post_save.connect(_saved, sender=model, dispatch_uid=f"api_keys_saved_{model._meta.label_lower}")
        post_delete.connect(_deleted, sender=model, dispatch_uid=f"api_keys_deleted_{model._meta.label_lower}")


def _found_in_database(digest: str) -> _Found | None:
    # By the unique hash index, without ApiKey's default ordering (a join and a sort on every request).
    key = (
        ApiKey.objects.select_related("contractor", "user")
        .defer(*(f"{relation}__{field}" for relation, field in SECRET_FIELDS.items()))
        .filter(key_hash=digest)
        .order_by()
        .first()
    )
    return None if key is None else _Found.of(key)


def api_key_authenticate(*, raw_key: str, now: dt.datetime | None = None) -> ApiKey:
    """The key (with its contractor or user) that `raw_key` is, or ApiKeyRejected saying why not: unknown
    or revoked key (401; a string without a key's shape is unknown without a query); suspended contractor
    (403, with the suspension's reason); a user who is no longer staff or is deactivated (403: a staff key
    carries the user's rights, so it lasts only as long as they do). A key cached in this process (KEYS)
    costs no query; otherwise one by the unique hash index. last_used_at is written at most once a minute
    per key and process."""
    now = now or timezone.now()
    raw_key = raw_key.strip()
    if not api_key_well_formed(raw_key):
        raise ApiKeyUnknown("Unknown API key.")  # what no key can be costs no query
    digest = api_key_hash(raw_key)
    stamp = KEYS.stamp()  # before the database is read: a change committed after it is not missed
    found = KEYS.get(digest, stamp)
    if found is None:
        found = _found_in_database(digest)
        if found is None:
            raise ApiKeyUnknown("Unknown API key.")  # not cached: a key made later is found at once
        KEYS.put(digest, found, stamp)
    key = found.instance()
    # The lookup already matched; compare_digest keeps the final check constant-time anyway.
    if not hmac.compare_digest(key.key_hash, digest):
        raise ApiKeyUnknown("Unknown API key.")
    if key.revoked_at is not None:
        raise ApiKeyRevoked(f"API key {key.prefix} was revoked on {key.revoked_at:%Y-%m-%d}.")
    if key.user is not None:
        access = staff_api_access(user=key.user)
    else:
        assert key.contractor is not None  # a key is a staff user's or a contractor's
        access = contractor_api_access(contractor=key.contractor)
    if not access.allowed:
        raise ApiAccessDenied(access.reason)
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        KEYS.put(digest, found.used_at(now), stamp)
    return key
