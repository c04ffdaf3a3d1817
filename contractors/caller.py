"""Who makes an API call: the one object that selectors scope rows by (contractors.selectors.caller_rows)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from contractors.models import ApiKey, Contractor
from contractors.selectors import contractor_for_user


@dataclass(frozen=True)
class Caller:
    """The caller of one request. `user`: the person calling, staff or a contractor's member, and None for
    a contractor's own API key (its systems, no person) and for an anonymous call. `contractor`: the
    contractor the call acts for, its key's or its member's; None for staff and anonymous calls."""

    user: AbstractBaseUser | None
    contractor: Contractor | None

    @property
    def is_staff(self) -> bool:
        return self.user is not None and self.user.is_staff

    @classmethod
    def of(cls, request) -> Caller:
        """The caller of a DRF request, from what authentication found: request.auth is the API key of a
        call made with one (contractors.api.authentication), None for a session's. A member's contractor
        costs one query; a key's comes with the key."""
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is not None and key.contractor_id is not None:
            return cls(user=None, contractor=key.contractor)
        user = request.user
        if user is None or not user.is_authenticated:
            return cls(user=None, contractor=None)
        return cls(user=user, contractor=contractor_for_user(user=user))
