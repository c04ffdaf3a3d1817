"""Contractors: creating them, the trades they serve, their users, status changes and webhook secret."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from contractors.errors import ContractorStatusError, MembershipError, TradeStillOwned
from contractors.models import Contractor, ContractorStatusChange, ContractorTrade, Membership, webhook_secret_new
from scoring.models import Trade

Status = Contractor.Status

# The one place that says which status changes exist. Every change is audited (ContractorStatusChange).
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.ACTIVE: frozenset({Status.PAUSED, Status.SUSPENDED}),
    Status.PAUSED: frozenset({Status.ACTIVE, Status.SUSPENDED}),
    Status.SUSPENDED: frozenset({Status.ACTIVE, Status.PAUSED}),
}

FOREIGN_KEY_VIOLATION = "23503"


def contractor_status_may(contractor: Contractor, status: str) -> bool:
    """Whether `contractor` may go to `status` from its present one: what its admin page offers."""
    return status in TRANSITIONS.get(contractor.status, frozenset())


def _locked(contractor: Contractor) -> Contractor:
    return Contractor.objects.select_for_update().get(pk=contractor.pk)


@transaction.atomic
def contractor_create(*, name: str, slug: str, trades: Iterable[Trade] = (), **fields: object) -> Contractor:
    """A new active contractor serving `trades`; `fields` are the other model fields (caps, contact...)."""
    contractor = Contractor(name=name, slug=slug, **fields)
    contractor.full_clean()
    contractor.save()
    ContractorTrade.objects.bulk_create(ContractorTrade(contractor=contractor, trade=trade) for trade in trades)
    return contractor


@transaction.atomic
def contractor_trades_set(*, contractor: Contractor, trades: Iterable[Trade]) -> Contractor:
    """Make the contractor serve exactly `trades`.

    Dropping a trade the contractor still owns territories of is refused: territories reference the
    contractor-trade row by a foreign key, so the database refuses it under any writer; this turns
    that refusal into a message. The contractor row is locked so that a concurrent claim, which locks
    it too, sees either the old or the new trades.
    """
    contractor = _locked(contractor)
    wanted = {trade.pk: trade for trade in trades}
    current = dict(contractor.contractor_trades.values_list("trade_id", "pk"))
    dropped = sorted(set(current) - set(wanted))
    ContractorTrade.objects.bulk_create(
        ContractorTrade(contractor=contractor, trade=wanted[trade_id])
        for trade_id in sorted(set(wanted) - set(current))
    )
    for trade_id in dropped:
        try:
            with transaction.atomic():
                ContractorTrade.objects.filter(pk=current[trade_id]).delete()
        except IntegrityError as error:
            if getattr(error.__cause__, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
                raise
            trade = Trade.objects.get(pk=trade_id)
            raise TradeStillOwned(
                f"{contractor} still owns {trade} territories; release or transfer them before it stops serving "
                f"{trade}."
            ) from None
    return contractor


@transaction.atomic
def contractor_status_change(
    *, contractor: Contractor, status: str, reason: str = "", changed_by: User | None = None
) -> Contractor:
    """Pause, resume, suspend or reinstate a contractor, with an audit row, in one transaction.

    Takes effect for the next assignment: routing reads the status (contractor_assignment_access)
    under the same row lock, so nothing is assigned to a contractor once its pause has committed.
    """
    contractor = _locked(contractor)
    if status not in Status.values:
        raise ContractorStatusError(f"{status!r} is not a contractor status.")
    if not contractor_status_may(contractor, status):
        raise ContractorStatusError(f"{contractor} is already {contractor.status}.")
    now = timezone.now()
    ContractorStatusChange.objects.create(
        contractor=contractor,
        from_status=contractor.status,
        to_status=status,
        reason=reason,
        changed_by=changed_by,
        changed_at=now,
    )
    contractor.status = status
    contractor.status_reason = "" if status == Status.ACTIVE else reason
    contractor.status_changed_at = now
    contractor.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
    return contractor


@transaction.atomic
def contractor_member_add(*, contractor: Contractor, user: User) -> Membership:
    """Let `user` act for the contractor. Staff users and members of another contractor are refused."""
    if user.is_staff:
        raise MembershipError(f"{user} is staff; staff users belong to no contractor.")
    existing = Membership.objects.filter(user=user).select_related("contractor").first()
    if existing is not None:
        if existing.contractor_id == contractor.pk:
            return existing
        raise MembershipError(f"{user} already belongs to {existing.contractor}.")
    try:
        with transaction.atomic():
            return Membership.objects.create(user=user, contractor=contractor)
    except IntegrityError:
        # A concurrent add for the same user won (one membership per user is the OneToOne's unique key).
        raise MembershipError(f"{user} already belongs to a contractor.") from None


@transaction.atomic
def contractor_member_remove(*, membership: Membership) -> None:
    """The user stops acting for the contractor, from its next request on (each request reads the
    membership: contractors.selectors.contractor_for_user). Removing a membership already gone does
    nothing."""
    Membership.objects.filter(pk=membership.pk).delete()


@transaction.atomic
def contractor_webhook_secret_rotate(*, contractor: Contractor) -> str:
    """A new webhook signing secret; the old one stops being used at once."""
    contractor = _locked(contractor)
    contractor.webhook_secret = webhook_secret_new()
    contractor.save(update_fields=["webhook_secret", "updated_at"])
    return contractor.webhook_secret
