"""Reads about contractors for other apps: may a contractor get new work, may it use the API, whose is a
user. Which rows an API caller may see: contractors.caller."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User

from contractors.models import Contractor, Membership


@dataclass(frozen=True)
class Access:
    """Whether something is allowed, and if not, a reason fit to show the contractor."""

    allowed: bool
    reason: str = ""


def _because(contractor: Contractor, what: str) -> str:
    reason = f"{contractor.name} is {what}"
    return f"{reason}: {contractor.status_reason}" if contractor.status_reason else f"{reason}."


def contractor_assignment_access(*, contractor: Contractor) -> Access:
    """New territories (waitlist offers) and new leads go to active contractors only.

    Reads the status of the instance given: callers that assign lock the contractor row first
    (select_for_update) and pass the locked instance, so a pause that committed is always seen.
    """
    if contractor.status == Contractor.Status.ACTIVE:
        return Access(True)
    if contractor.status == Contractor.Status.PAUSED:
        return Access(False, _because(contractor, "paused"))
    return Access(False, _because(contractor, "suspended"))


def contractor_api_access(*, contractor: Contractor) -> Access:
    """Every status but suspended may use the API (a paused contractor still reads its leads)."""
    if contractor.status == Contractor.Status.SUSPENDED:
        return Access(False, _because(contractor, "suspended"))
    return Access(True)


def staff_api_access(*, user: User) -> Access:
    """A staff user's own API key works while the user is active staff: it carries their rights."""
    if not user.is_active:
        return Access(False, f"{user.get_username()} is deactivated.")
    if not user.is_staff:
        return Access(False, f"{user.get_username()} is not staff.")
    return Access(True)


def contractor_for_user(*, user: User | AnonymousUser) -> Contractor | None:
    """The contractor a user acts for; None for staff, anonymous users and users of no contractor."""
    if not user.is_authenticated or user.is_staff:
        return None
    membership = Membership.objects.select_related("contractor").filter(user=user).first()
    return membership.contractor if membership else None


def contractor_serves(*, contractor: Contractor, trade_id: int) -> bool:
    return contractor.contractor_trades.filter(trade_id=trade_id).exists()
