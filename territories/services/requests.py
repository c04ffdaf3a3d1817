"""Claim requests: a contractor's claim that waits for staff (the trade is not open for self-service, or the
claim would pass its self-service ZIP limit). A request is checked as a claim is when it is made (the ZIPs
sellable, free and not on offer to another contractor, the trade served), so a contractor hears of a
conflict at once; approval claims through territory_claim_many, all or none, under its locks, so
exclusivity stays the database's. The contractor is told each decision (webhook event and email).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from contractors.models import Contractor, ContractorNotice
from contractors.services.notices import contractor_event_record
from scoring.models import Trade
from territories.errors import ClaimRequestError, TerritoryTaken
from territories.models import ClaimRequest, SelfService, Territory
from territories.services.claims import (
    contractors_lock,
    owner_check,
    territory_claim_many,
    territory_conflicts,
    zip_codes_check,
    zip_codes_normalize,
)

Status = ClaimRequest.Status


def self_service_limit(*, trade: Trade) -> int | None:
    """The self-service ZIP limit of `trade`, None when the trade is not open for self-service."""
    policy = SelfService.objects.filter(trade=trade, enabled=True).first()
    return None if policy is None else policy.zip_limit


@transaction.atomic
def claim_request_create(
    *, contractor: Contractor, trade: Trade, zip_codes: Iterable[str], note: str = "", requested_by: User | None = None
) -> ClaimRequest:
    """Ask staff for these ZIPs. Refused as a claim would be (TerritoryTaken naming every ZIP owned or on
    offer to another contractor, UnknownZipCodes, TradeNotServed, ContractorNotEligible), and when the
    contractor already waits for one of them (ClaimRequestError)."""
    codes = zip_codes_normalize(zip_codes)
    zip_codes_check(codes)
    contractor = contractors_lock([contractor.pk])[contractor.pk]  # its pending requests, one writer at a time
    owner_check(contractor=contractor, trade=trade)
    now = timezone.now()
    conflicts = territory_conflicts(trade_id=trade.pk, zip_codes=codes, contractor_id=contractor.pk, now=now)
    if conflicts:
        raise TerritoryTaken(trade_name=trade.name, conflicts=conflicts)
    waiting = ClaimRequest.objects.filter(
        contractor=contractor, trade=trade, status=Status.PENDING, zip_codes__overlap=codes
    ).order_by("pk")
    for earlier in waiting:
        again = sorted(set(earlier.zip_codes) & set(codes))
        raise ClaimRequestError(
            f"Claim request {earlier.pk} already asks for {', '.join(again)} ({trade}); nothing was requested."
        )
    return ClaimRequest.objects.create(
        contractor=contractor,
        trade=trade,
        zip_codes=codes,
        note=note.strip(),
        requested_at=now,
        requested_by=requested_by if requested_by is not None and requested_by.is_authenticated else None,
    )


def _pending_lock(request: ClaimRequest) -> ClaimRequest:
    locked = ClaimRequest.objects.select_for_update().select_related("contractor", "trade").get(pk=request.pk)
    if locked.status != Status.PENDING:
        raise ClaimRequestError(f"Claim request {locked.pk} is already {locked.get_status_display().lower()}.")
    return locked


def _decide(request: ClaimRequest, *, status: str, user: User | None, note: str) -> ClaimRequest:
    request.status, request.decided_at, request.decision_note = status, timezone.now(), note.strip()
    request.decided_by = user if user is not None and user.is_authenticated else None
    request.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
    return request


def _tell(request: ClaimRequest, *, event: str) -> None:
    decided_at = request.decided_at
    assert decided_at is not None  # told once decided
    contractor_event_record(
        contractor=request.contractor,
        event=event,
        payload={
            "id": request.pk,
            "trade": request.trade.slug,
            "zip_codes": request.zip_codes,
            "note": request.decision_note,
            "decided_at": decided_at,
        },
        key=f"{event}-{request.pk}",
        now=decided_at,
    )


@transaction.atomic
def claim_request_approve(*, request: ClaimRequest, user: User | None, note: str = "") -> list[Territory]:
    """Claim the request's ZIPs for its contractor, all or none: refused (and left pending, for staff to
    deny) when one was taken since it was made, or the contractor can no longer own them. Returns the new
    territories; the caller routes their waiting leads (leadengine.flows.claim_request_approve)."""
    request = _pending_lock(request)
    created = territory_claim_many(  # its refusals as worded there; nothing is written then
        contractor=request.contractor,
        trade=request.trade,
        zip_codes=request.zip_codes,
        claimed_by=user,
        note=f"Claim request {request.pk}" + (f": {note.strip()}" if note.strip() else ""),
    )
    _decide(request, status=Status.APPROVED, user=user, note=note)
    _tell(request, event=ContractorNotice.Event.CLAIM_APPROVED)
    return created


@transaction.atomic
def claim_request_deny(*, request: ClaimRequest, user: User | None, note: str) -> ClaimRequest:
    """Refuse a waiting request, saying why: the contractor is told."""
    if not note.strip():
        raise ClaimRequestError("Say why the request is denied; the contractor sees it.")
    request = _decide(_pending_lock(request), status=Status.DENIED, user=user, note=note)
    _tell(request, event=ContractorNotice.Event.CLAIM_DENIED)
    return request


@transaction.atomic
def claim_request_withdraw(*, request: ClaimRequest, user: User | None = None) -> ClaimRequest:
    """The contractor takes back a request still waiting."""
    return _decide(_pending_lock(request), status=Status.WITHDRAWN, user=user, note="")
