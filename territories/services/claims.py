"""Claiming territories, and the checks and writes every way of getting a territory shares.

Exclusivity is the database's: the partial unique index territories_territory_one_active_owner admits
one active owner per (ZIP, trade), and the foreign key territories_territory_owner_serves_trade admits
only trades the owner serves. The checks here come first so that users get a full report (every
conflicting ZIP and its owner); when a concurrent writer wins between check and insert, the database
refuses the insert and the IntegrityError becomes the same report.

Lock order, the same in every service, so that concurrent services wait for each other instead of
deadlocking: territory rows (by id), then the waitlist lines of the (ZIP, trade) pairs involved (by
id), then contractor rows (by id), then new territory rows, inserted in ZIP order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from contractors.models import Contractor
from contractors.selectors import contractor_serves
from core.cache import TERRITORIES, generation_bump
from scoring.models import Trade, ZipCode
from territories.errors import (
    Conflict,
    ContractorNotEligible,
    SelfServiceLimitReached,
    TerritoryError,
    TerritoryTaken,
    TradeNotServed,
    UnknownZipCodes,
)
from territories.models import Territory, WaitlistEntry

ONE_ACTIVE_OWNER = "territories_territory_one_active_owner"
OWNER_SERVES_TRADE = "territories_territory_owner_serves_trade"

Reason = Territory.StartReason


def zip_codes_normalize(zip_codes: Iterable[str]) -> list[str]:
    """Distinct ZIP codes in ascending order: the order rows are locked and inserted in."""
    return sorted({str(code).strip() for code in zip_codes if str(code).strip()})


def waitlist_lines_lock(*, pairs: Iterable[tuple[int, str]]) -> list[WaitlistEntry]:
    """Lock the open waitlist entries of these (trade id, ZIP) pairs, by id, in one statement; returns
    them in line order (trade, ZIP, joined_at)."""
    zip_codes_by_trade: dict[int, set[str]] = {}
    for trade_id, code in pairs:
        zip_codes_by_trade.setdefault(trade_id, set()).add(code)
    if not zip_codes_by_trade:
        return []
    lines = Q()
    for trade_id, codes in zip_codes_by_trade.items():
        lines |= Q(trade_id=trade_id, zip_code_id__in=sorted(codes))
    entries = list(
        WaitlistEntry.objects.select_for_update().filter(lines, status__in=WaitlistEntry.OPEN).order_by("pk")
    )
    return sorted(entries, key=lambda entry: (entry.trade_id, entry.zip_code_id, entry.joined_at, entry.pk))


def contractors_lock(contractor_ids: Iterable[int]) -> dict[int, Contractor]:
    return {
        contractor.pk: contractor
        for contractor in Contractor.objects.select_for_update().filter(pk__in=set(contractor_ids)).order_by("pk")
    }


def owner_check(*, contractor: Contractor, trade: Trade) -> None:
    """May `contractor` (locked by the caller) own territories of `trade`? Suspended contractors may
    not; paused ones may (they keep buying while taking no leads)."""
    if contractor.status == Contractor.Status.SUSPENDED:
        reason = f": {contractor.status_reason}" if contractor.status_reason else ""
        raise ContractorNotEligible(f"{contractor} is suspended{reason}; it cannot take territories.")
    if not contractor_serves(contractor=contractor, trade_id=trade.pk):
        raise TradeNotServed(f"{contractor} does not serve {trade}; add the trade to the contractor first.")


def zip_codes_check(zip_codes: Sequence[str]) -> None:
    if not zip_codes:
        raise TerritoryError("No ZIP codes given.")
    sellable = set(ZipCode.objects.filter(code__in=zip_codes, active=True).values_list("code", flat=True))
    unknown = [code for code in zip_codes if code not in sellable]
    if unknown:
        raise UnknownZipCodes(unknown)


def territory_conflicts(
    *, trade_id: int, zip_codes: Sequence[str], contractor_id: int | None, now: datetime
) -> list[Conflict]:
    """The ZIPs among `zip_codes` that `contractor_id` cannot have now: owned by anyone (itself
    included), or offered from the waitlist to another contractor in an offer not yet expired."""
    owned = (
        Territory.objects.active()
        .filter(trade_id=trade_id, zip_code_id__in=zip_codes)
        .values_list("zip_code_id", "contractor_id", "contractor__name")
    )
    conflicts = {code: Conflict(code, owner_id, owner_name) for code, owner_id, owner_name in owned}
    offers = (
        WaitlistEntry.objects.filter(
            trade_id=trade_id, zip_code_id__in=zip_codes, status=WaitlistEntry.Status.OFFERED, offer_expires_at__gt=now
        )
        .exclude(contractor_id=contractor_id)  # type: ignore[misc]  # None: no contractor to leave out
        .values_list("zip_code_id", "contractor_id", "contractor__name", "offer_expires_at")
    )
    for code, contractor, name, until in offers:
        conflicts.setdefault(code, Conflict(code, contractor, name, offered_until=until))
    return sorted(conflicts.values(), key=lambda conflict: conflict.zip_code)


def territories_insert(
    *,
    contractor: Contractor,
    trade: Trade,
    zip_codes: Sequence[str],
    now: datetime,
    start_reason: str,
    started_by: User | None,
    start_note: str,
) -> list[Territory]:
    """Insert the new ownerships (ZIP order) and close the waitlist entries they settle: the owner's
    own open entries become claimed, stale offers to others expired. The caller holds the locks."""
    rows = [
        Territory(
            zip_code_id=code,
            trade=trade,
            contractor=contractor,
            started_at=now,
            start_reason=start_reason,
            started_by=started_by,
            start_note=start_note,
        )
        for code in zip_codes
    ]
    try:
        # A savepoint, so that after a refused insert the conflicts can still be read in this transaction.
        with transaction.atomic():
            created = Territory.objects.bulk_create(rows)
    except IntegrityError as error:
        constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
        if constraint == ONE_ACTIVE_OWNER:
            # The winner has committed (PostgreSQL made this insert wait for it), so it is visible now.
            conflicts = territory_conflicts(trade_id=trade.pk, zip_codes=zip_codes, contractor_id=None, now=now)
            raise TerritoryTaken(
                trade_name=trade.name,
                conflicts=conflicts or [Conflict(code, None, "another contractor, just now") for code in zip_codes],
            ) from None
        if constraint == OWNER_SERVES_TRADE:
            raise TradeNotServed(f"{contractor} does not serve {trade}.") from None
        raise
    generation_bump(TERRITORIES)
    by_zip = {territory.zip_code_id: territory for territory in created}
    settled = WaitlistEntry.objects.filter(
        trade=trade, zip_code_id__in=zip_codes, status__in=WaitlistEntry.OPEN
    ).filter(Q(contractor=contractor) | Q(status=WaitlistEntry.Status.OFFERED))
    for entry in settled:
        if entry.contractor_id == contractor.pk:
            entry.status, entry.territory = WaitlistEntry.Status.CLAIMED, by_zip[entry.zip_code_id]
        else:
            entry.status = WaitlistEntry.Status.EXPIRED
        entry.closed_at = now
        entry.save(update_fields=["status", "territory", "closed_at"])
    return created


@transaction.atomic
def territory_claim_many(
    *,
    contractor: Contractor,
    trade: Trade,
    zip_codes: Iterable[str],
    claimed_by: User | None = None,
    note: str = "",
    self_service_limit: int | None = None,
) -> list[Territory]:
    """Give `contractor` the (ZIP, `trade`) territories of all `zip_codes`, or none of them; with a
    `self_service_limit`, only while it would hold at most that many active territories of the trade
    (counted under its row lock, so concurrent claims cannot pass it together).

    Raises TerritoryTaken naming every ZIP owned by anyone or offered to another contractor,
    UnknownZipCodes, TradeNotServed, ContractorNotEligible or SelfServiceLimitReached; nothing is written
    then.
    """
    codes = zip_codes_normalize(zip_codes)
    zip_codes_check(codes)
    waitlist_lines_lock(pairs=[(trade.pk, code) for code in codes])
    contractor = contractors_lock([contractor.pk])[contractor.pk]
    owner_check(contractor=contractor, trade=trade)
    now = timezone.now()
    conflicts = territory_conflicts(trade_id=trade.pk, zip_codes=codes, contractor_id=contractor.pk, now=now)
    if conflicts:
        raise TerritoryTaken(trade_name=trade.name, conflicts=conflicts)
    if self_service_limit is not None:
        held = Territory.objects.active().filter(contractor=contractor, trade=trade).count()
        if held + len(codes) > self_service_limit:
            raise SelfServiceLimitReached(
                f"{contractor} holds {held} {trade} territories; self-service claims stop at {self_service_limit}."
            )
    return territories_insert(
        contractor=contractor,
        trade=trade,
        zip_codes=codes,
        now=now,
        start_reason=Reason.CLAIM,
        started_by=claimed_by,
        start_note=note,
    )


def territory_claim(
    *,
    contractor: Contractor,
    trade: Trade,
    zip_code: str,
    claimed_by: User | None = None,
    note: str = "",
) -> Territory:
    """Give `contractor` one territory; see territory_claim_many."""
    (territory,) = territory_claim_many(
        contractor=contractor, trade=trade, zip_codes=[zip_code], claimed_by=claimed_by, note=note
    )
    return territory
