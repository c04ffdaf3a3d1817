"""Who makes an API call, and the one rule of which rows it may see (caller_rows), which every app's
selectors apply to theirs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from django.contrib.auth.models import User
from django.db.models import Model, QuerySet

from contractors.models import ApiKey, Contractor
from contractors.selectors import contractor_for_user

if TYPE_CHECKING:
    from rest_framework.request import Request


@dataclass(frozen=True)
class Caller:
    """The caller of one request. `user`: the person calling, staff or a contractor's member, and None for
    a contractor's own API key (its systems, no person) and for an anonymous call. `contractor`: the
    contractor the call acts for, its key's or its member's; None for staff and anonymous calls."""

    user: User | None
    contractor: Contractor | None

    @property
    def is_staff(self) -> bool:
        return self.user is not None and self.user.is_staff

    @classmethod
    def of(cls, request: Request) -> Caller:
        """The caller of a DRF request, from what authentication found: request.auth is the API key of a
        call made with one (contractors.api.authentication), None for a session's. A member's contractor
        costs one query; a key's comes with the key."""
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is not None and key.contractor_id is not None:
            return cls(user=None, contractor=key.contractor)
        user = request.user
        if not isinstance(user, User) or not user.is_authenticated:  # anonymous (AnonymousUser)
            return cls(user=None, contractor=None)
        return cls(user=user, contractor=contractor_for_user(user=user))


M = TypeVar("M", bound=Model)


def caller_contractor_ids(*, caller: Caller) -> list[int] | None:
    """The contractors whose rows `caller` may see: None for every contractor's (staff), its own for a
    contractor's key or member, none ([]) for anyone else. The one visibility rule of the API's models, which
    caller_rows applies to a queryset, and SQL written by hand (leads.representation) to its WHERE."""
    if caller.is_staff:
        return None
    return [caller.contractor.pk] if caller.contractor is not None else []


def caller_rows(queryset: QuerySet[M], *, caller: Caller) -> QuerySet[M]:
    """The rows of `queryset` (a model with a `contractor`) `caller` may see (caller_contractor_ids), which each
    app's selectors apply to theirs (leads_visible, territories_visible)."""
    contractor_ids = caller_contractor_ids(caller=caller)
    if contractor_ids is None:
        return queryset
    return queryset.filter(contractor__in=contractor_ids) if contractor_ids else queryset.none()
