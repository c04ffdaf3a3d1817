"""API keys: created by the system, shown once, stored as a SHA-256 hash, revocable. A key belongs to a
contractor (its systems call the API as the contractor) or to a staff user (it calls as that user, and
only while they are active staff).

A key is `le_` + 8 hex characters (its visible prefix) + `_` + 43 URL-safe characters (256 random
bits). With that much entropy a plain SHA-256 is as good as a slow password hash, and it lets a request
find its key by an index lookup on the hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from contractors.errors import ApiAccessDenied, ApiKeyOwnerInvalid, ApiKeyRevoked, ApiKeyUnknown
from contractors.models import ApiKey, Contractor
from contractors.selectors import contractor_api_access, staff_api_access

KEY_PREFIX = "le_"
# last_used_at is written at most this often per key, so that busy clients do not write on every call.
# The shape of every key api_key_generate makes; anything else is refused without a database query.
KEY_SHAPE = re.compile(r"le_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


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
    """Revoke a key at once; revoking a revoked key keeps its first revocation time."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db(fields=["revoked_at"])
    return key


def api_key_authenticate(*, raw_key: str, now: dt.datetime | None = None) -> ApiKey:
    """The key (with its contractor or user) that `raw_key` is, or ApiKeyRejected saying why not: unknown
    or revoked key (401; a string without a key's shape is unknown without a query); suspended contractor
    (403, with the suspension's reason); a user who is no longer staff or is deactivated (403: a staff key
    carries the user's rights, so it lasts only as long as they do). A known key costs one query by the
    unique hash index (and a write of last_used_at at most once a minute)."""
    now = now or timezone.now()
    raw_key = raw_key.strip()
    if not api_key_well_formed(raw_key):
        raise ApiKeyUnknown("Unknown API key.")  # what no key can be costs no query
    digest = api_key_hash(raw_key)
    # By the unique hash index, without ApiKey's default ordering (a join and a sort on every request).
    key = ApiKey.objects.select_related("contractor", "user").filter(key_hash=digest).order_by().first()
    # The hash lookup already matched; compare_digest keeps the final check constant-time anyway.
    if key is None or not hmac.compare_digest(key.key_hash, digest):
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
    return key
