"""The waitlist: contractors queue for a taken (ZIP, trade); a released territory goes to the first
eligible one in line, as an offer that expires (TERRITORY_OFFER_HOURS) or, with
TERRITORY_WAITLIST_AUTO_CLAIM on, as the territory itself. Either is told to the contractor (event
`territory.offered` or `territory.assigned`, by webhook and email: contractors.services.notices) in
the transaction that makes it.

Eligible means active and serving the trade, checked when the territory comes free: a paused contractor
keeps its place in line but is passed over until it resumes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from contractors.models import Contractor, ContractorNotice, ContractorTrade
from contractors.selectors import contractor_assignment_access
from contractors.services.notices import contractor_event_record
from scoring.models import Trade
from territories.errors import WaitlistError
from territories.models import Territory, WaitlistEntry
from territories.services.claims import (
    contractors_lock,
    owner_check,
    territories_insert,
    territory_conflicts,
    waitlist_lines_lock,
    zip_codes_check,
    zip_codes_normalize,
)

Status = WaitlistEntry.Status
Event = ContractorNotice.Event


@dataclass(frozen=True)
class Promotion:
    """What a freed territory's waitlist did: an offer made, or (auto-claim) the territory given."""

    entry: WaitlistEntry
    territory: Territory | None  # set when the territory was given, not offered

    def __str__(self) -> str:
        if self.territory is not None:
            return f"{self.entry.zip_code_id} went to {self.entry.contractor} from the waitlist"
        return (
            f"{self.entry.zip_code_id} offered to {self.entry.contractor} until "
            f"{self.entry.offer_expires_at:%Y-%m-%d %H:%M %Z}"
        )


def promotions_given(promotions: Sequence[Promotion]) -> list[Territory]:
    """The territories these promotions gave (auto-claim): an offer hands nothing over until accepted."""
    return [promotion.territory for promotion in promotions if promotion.territory is not None]


@dataclass(frozen=True)
class OffersExpired:
    """What an offer expiry did: the offers that ran out and were closed, and what each line then did with its
    territory (the next offer, or with auto-claim the territory itself; nothing when nobody is eligible)."""

    expired: int
    promotions: list[Promotion]

    def __str__(self) -> str:
        given = len(promotions_given(self.promotions))
        offered = len(self.promotions) - given
        return f"{self.expired:,} expired, {offered:,} offered to the next in line, {given:,} given to the next in line"


def offer_duration() -> dt.timedelta:
    return dt.timedelta(hours=settings.TERRITORY_OFFER_HOURS)


def waitlist_lines_promote(*, pairs: Sequence[tuple[Trade, str]], now: dt.datetime) -> list[Promotion]:
    """Offer (or give) each of these (trade, ZIP) territories, if free, to the first eligible contractor
    in its line. Locks the lines, then the contractors in them (the services' lock order); a line that
    already has a live offer is left alone. Expired offers met on the way are closed."""
    trades = {trade.pk: trade for trade, _ in pairs}
    entries = waitlist_lines_lock(pairs=[(trade.pk, code) for trade, code in pairs])
    contractors = contractors_lock(entry.contractor_id for entry in entries)
    serving = set(
        ContractorTrade.objects.filter(contractor_id__in=list(contractors), trade_id__in=list(trades)).values_list(
            "contractor_id", "trade_id"
        )
    )
    promotions = []
    for trade, code in sorted(pairs, key=lambda pair: (pair[0].pk, pair[1])):
        line = [entry for entry in entries if entry.trade_id == trade.pk and entry.zip_code_id == code]
        for entry in line:
            if entry.status == Status.OFFERED and entry.offer_expires_at <= now:  # type: ignore[operator]  # an offer has its expiry (a check constraint)
                _close(entry, Status.EXPIRED, now)
        if any(entry.status == Status.OFFERED for entry in line):
            continue
        if Territory.objects.active().filter(trade=trade, zip_code_id=code).exists():
            continue
        for entry in line:
            contractor = contractors[entry.contractor_id]
            if entry.status != Status.WAITING or (contractor.pk, trade.pk) not in serving:
                continue
            if not contractor_assignment_access(contractor=contractor).allowed:
                continue
            entry.contractor = contractor
            promotions.append(_promote(entry, trade=trade, now=now))
            break
    return promotions


def _close(entry: WaitlistEntry, status: str, now: dt.datetime) -> None:
    entry.status = status
    entry.closed_at = now
    entry.save(update_fields=["status", "closed_at"])


def _promote(entry: WaitlistEntry, *, trade: Trade, now: dt.datetime) -> Promotion:
    if settings.TERRITORY_WAITLIST_AUTO_CLAIM:
        (territory,) = territories_insert(
            contractor=entry.contractor,
            trade=trade,
            zip_codes=[entry.zip_code_id],
            now=now,
            start_reason=Territory.StartReason.WAITLIST,
            started_by=None,
            start_note="Given automatically to the first eligible contractor on the waitlist.",
        )
        entry.refresh_from_db()
        contractor_event_record(
            contractor=entry.contractor,
            event=Event.TERRITORY_ASSIGNED,
            payload={
                "id": territory.pk,
                "trade": trade.slug,
                "zip_code": entry.zip_code_id,
                "started_at": territory.started_at,
                "waitlist_entry_id": entry.pk,
            },
            key=f"territory.assigned-{territory.pk}",
            now=now,
        )
        return Promotion(entry=entry, territory=territory)
    entry.status = Status.OFFERED
    entry.offered_at = now
    entry.offer_expires_at = now + offer_duration()
    entry.save(update_fields=["status", "offered_at", "offer_expires_at"])
    # Told in this transaction: the offer and its notices commit together or not at all.
    contractor_event_record(
        contractor=entry.contractor,
        event=Event.TERRITORY_OFFERED,
        payload={
            "id": entry.pk,
            "trade": trade.slug,
            "zip_code": entry.zip_code_id,
            "offered_at": entry.offered_at,
            "offer_expires_at": entry.offer_expires_at,
            "accept_url": offer_accept_url(entry),
        },
        key=f"territory.offered-{entry.pk}-{int(now.timestamp() * 1_000_000)}",
        now=now,
    )
    return Promotion(entry=entry, territory=None)


def offer_accept_url(entry: WaitlistEntry) -> str:
    """Where the contractor accepts the offer: the API's accept action of its waitlist entry."""
    return f"{settings.SITE_URL}{reverse('waitlist-accept', args=[entry.pk])}"


@transaction.atomic
def waitlist_join(*, contractor: Contractor, trade: Trade, zip_code: str) -> WaitlistEntry:
    """Put the contractor at the end of the line for a (ZIP, trade) that another contractor owns or has
    on offer. A free territory is claimed instead; a contractor is in a line at most once."""
    codes = zip_codes_normalize([zip_code])
    zip_codes_check(codes)
    code = codes[0]
    waitlist_lines_lock(pairs=[(trade.pk, code)])
    contractor = contractors_lock([contractor.pk])[contractor.pk]
    owner_check(contractor=contractor, trade=trade)
    now = timezone.now()
    holders = territory_conflicts(trade_id=trade.pk, zip_codes=[code], contractor_id=contractor.pk, now=now)
    if not holders:
        raise WaitlistError(f"{code} {trade} is free: claim it instead of joining its waitlist.")
    if holders[0].contractor_id == contractor.pk:
        raise WaitlistError(f"{contractor} already owns {code} {trade}.")
    try:
        with transaction.atomic():
            return WaitlistEntry.objects.create(zip_code_id=code, trade=trade, contractor=contractor, joined_at=now)
    except IntegrityError:
        raise WaitlistError(f"{contractor} is already on the waitlist for {code} {trade}.") from None


@transaction.atomic
def waitlist_leave(*, entry: WaitlistEntry) -> list[Promotion]:
    """Take the contractor out of the line. Leaving with an offer in hand declines it, and the territory
    is offered to the next in line (returned)."""
    waitlist_lines_lock(pairs=[(entry.trade_id, entry.zip_code_id)])
    entry = WaitlistEntry.objects.select_related("trade").get(pk=entry.pk)
    if entry.status not in WaitlistEntry.OPEN:
        raise WaitlistError(f"{entry.contractor}'s waitlist entry for {entry.zip_code_id} is already closed.")
    now = timezone.now()
    was_offered = entry.status == Status.OFFERED
    _close(entry, Status.DECLINED if was_offered else Status.WITHDRAWN, now)
    if not was_offered:
        return []
    return waitlist_lines_promote(pairs=[(entry.trade, entry.zip_code_id)], now=now)


@transaction.atomic
def waitlist_offer_accept(*, entry: WaitlistEntry, accepted_by: User | None = None) -> Territory:
    """Claim the territory an offer is for. Refused (WaitlistError) once the offer has expired or was
    withdrawn; the usual claim checks apply (the contractor must still serve the trade, not be suspended)."""
    waitlist_lines_lock(pairs=[(entry.trade_id, entry.zip_code_id)])
    entry = WaitlistEntry.objects.select_related("trade").get(pk=entry.pk)
    now = timezone.now()
    if entry.status != Status.OFFERED:
        raise WaitlistError(f"There is no open offer on this entry (it is {entry.get_status_display().lower()}).")
    if not entry.offer_open(now):
        raise WaitlistError(
            f"The offer of {entry.zip_code_id} {entry.trade} expired at {entry.offer_expires_at:%Y-%m-%d %H:%M %Z}."
        )
    contractor = contractors_lock([entry.contractor_id])[entry.contractor_id]
    owner_check(contractor=contractor, trade=entry.trade)
    (territory,) = territories_insert(
        contractor=contractor,
        trade=entry.trade,
        zip_codes=[entry.zip_code_id],
        now=now,
        start_reason=Territory.StartReason.WAITLIST,
        started_by=accepted_by,
        start_note="Offer from the waitlist accepted.",
    )
    return territory


def territory_offers_expire(*, now: dt.datetime | None = None) -> OffersExpired:
    """Expire the waitlist offers that ran out and offer each territory to the next eligible contractor
    in line (or give it, with auto-claim). Running it twice does nothing more (for the periodic task).
    Each (ZIP, trade) is settled in its own transaction, so one failure stops no other."""
    now = now or timezone.now()
    due = (
        WaitlistEntry.objects.filter(status=Status.OFFERED, offer_expires_at__lte=now)
        .order_by("trade_id", "zip_code_id")
        .values_list("trade_id", "zip_code_id")
        .distinct()
    )
    expired, promotions = 0, []
    for trade_id, code in list(due):
        with transaction.atomic():
            entries = waitlist_lines_lock(pairs=[(trade_id, code)])
            stale = [entry for entry in entries if entry.status == Status.OFFERED and entry.offer_expires_at <= now]  # type: ignore[operator]  # an offer has its expiry (a check constraint)
            for entry in stale:
                _close(entry, Status.EXPIRED, now)
            expired += len(stale)
            if stale:
                promotions += waitlist_lines_promote(pairs=[(Trade.objects.get(pk=trade_id), code)], now=now)
    return OffersExpired(expired=expired, promotions=promotions)
