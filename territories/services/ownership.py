"""Ending ownerships: releasing territories (which moves their waitlists) and transferring them to
another contractor. Both take many territories at once, all or nothing, for staff bulk actions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from contractors.models import Contractor
from core.cache import TERRITORIES, generation_bump
from territories.errors import TerritoryError, TerritoryNotActive
from territories.models import Territory
from territories.services.claims import contractors_lock, owner_check, territories_insert, waitlist_lines_lock
from territories.services.waitlist import Promotion, waitlist_lines_promote


@dataclass(frozen=True)
class Released:
    territories: list[Territory]  # the ended ownerships
    promotions: list[Promotion]  # what the waitlists did with the freed territories


def territories_lock(territories: Iterable[Territory]) -> list[Territory]:
    """Lock the rows by id and check that every one is still an active ownership."""
    ids = sorted({territory.pk for territory in territories})
    if not ids:
        raise TerritoryError("No territories given.")
    locked = list(
        Territory.objects.select_for_update(of=("self",))
        .select_related("trade", "contractor")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    ended = [territory for territory in locked if territory.ended_at is not None]
    if ended:
        names = ", ".join(f"{territory.zip_code_id} {territory.trade}" for territory in ended)
        raise TerritoryNotActive(f"No longer owned (already released or transferred): {names}. Nothing was changed.")
    return locked


def _end(territories: list[Territory], *, reason: str, ended_by: User | None, note: str, now: dt.datetime) -> None:
    Territory.objects.filter(pk__in=[territory.pk for territory in territories]).update(
        ended_at=now, end_reason=reason, ended_by=ended_by, end_note=note
    )
    for territory in territories:
        territory.ended_at, territory.end_reason, territory.ended_by, territory.end_note = now, reason, ended_by, note
    generation_bump(TERRITORIES)


@transaction.atomic
def territory_release_many(
    *, territories: Iterable[Territory], released_by: User | None = None, note: str = ""
) -> Released:
    """End these ownerships now, all or none (TerritoryNotActive if one has already ended), and hand
    each freed territory to its waitlist in the same transaction."""
    locked = territories_lock(territories)
    now = timezone.now()
    pairs = [(territory.trade, territory.zip_code_id) for territory in locked]
    waitlist_lines_lock(pairs=[(trade.pk, code) for trade, code in pairs])
    _end(locked, reason=Territory.EndReason.RELEASE, ended_by=released_by, note=note, now=now)
    return Released(territories=locked, promotions=waitlist_lines_promote(pairs=pairs, now=now))


def territory_release(*, territory: Territory, released_by: User | None = None, note: str = "") -> Released:
    return territory_release_many(territories=[territory], released_by=released_by, note=note)


@transaction.atomic
def territory_transfer_many(
    *,
    territories: Iterable[Territory],
    to_contractor: Contractor,
    transferred_by: User | None = None,
    note: str = "",
) -> list[Territory]:
    """Move these ownerships to `to_contractor` at one instant, all or none: each current ownership ends
    (transfer) and the new owner's starts in the same transaction, so no moment exists without an
    owner and the waitlist never sees the territory free. Returns the new ownerships."""
    locked = territories_lock(territories)
    already = [territory for territory in locked if territory.contractor_id == to_contractor.pk]
    if already:
        names = ", ".join(f"{territory.zip_code_id} {territory.trade}" for territory in already)
        raise TerritoryError(f"{to_contractor} already owns {names}. Nothing was transferred.")
    waitlist_lines_lock(pairs=[(territory.trade_id, territory.zip_code_id) for territory in locked])
    contractor = contractors_lock([to_contractor.pk])[to_contractor.pk]
    trades = {territory.trade_id: territory.trade for territory in locked}
    for trade in sorted(trades.values(), key=lambda trade: trade.pk):
        owner_check(contractor=contractor, trade=trade)
    now = timezone.now()
    _end(locked, reason=Territory.EndReason.TRANSFER, ended_by=transferred_by, note=note, now=now)
    created = []
    for trade_id, trade in sorted(trades.items()):
        created += territories_insert(
            contractor=contractor,
            trade=trade,
            zip_codes=sorted(territory.zip_code_id for territory in locked if territory.trade_id == trade_id),
            now=now,
            start_reason=Territory.StartReason.TRANSFER,
            started_by=transferred_by,
            start_note=note,
        )
    return created


def territory_transfer(
    *,
    territory: Territory,
    to_contractor: Contractor,
    transferred_by: User | None = None,
    note: str = "",
) -> Territory:
    (created,) = territory_transfer_many(
        territories=[territory], to_contractor=to_contractor, transferred_by=transferred_by, note=note
    )
    return created
