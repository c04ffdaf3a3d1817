"""Domain errors of territories (core.errors.DomainError). Each has a stable `code` and an `http_status` for
the API; the admin shows the message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import DomainError


class TerritoryError(DomainError):
    code = "territory_error"
    http_status = 400


@dataclass(frozen=True)
class Conflict:
    """A ZIP that could not be had: who owns it, or whom it is offered to until when."""

    zip_code: str
    contractor_id: int | None
    contractor_name: str
    offered_until: dt.datetime | None = None

    def __str__(self) -> str:
        if self.offered_until is not None:
            return f"{self.zip_code} (offered to {self.contractor_name} until {self.offered_until:%Y-%m-%d %H:%M %Z})"
        return f"{self.zip_code} (owned by {self.contractor_name})"


class TerritoryTaken(TerritoryError):
    """Some of the ZIPs asked for are owned, or offered to a contractor from the waitlist; nothing was
    claimed. `conflicts` names every one of them, by ZIP."""

    code = "territory_taken"
    http_status = 409

    def __init__(self, *, trade_name: str, conflicts: Sequence[Conflict]):
        self.trade_name = trade_name
        self.conflicts = sorted(conflicts, key=lambda conflict: conflict.zip_code)
        taken = ", ".join(str(conflict) for conflict in self.conflicts)
        super().__init__(f"{trade_name} territory already taken: {taken}. Nothing was claimed.")

    @property
    def zip_codes(self) -> list[str]:
        return [conflict.zip_code for conflict in self.conflicts]

    # The API names the ZIPs, not who holds them: a competitor's territories are not another contractor's
    # business. Staff see the holders in the message.
    @property
    def detail(self) -> str:
        return f"{self.trade_name} territory already taken: {', '.join(self.zip_codes)}. Nothing was claimed."

    def body_extra(self) -> dict[str, Any]:
        return {
            "conflicts": [
                {"zip_code": conflict.zip_code, "held_as": "offered" if conflict.offered_until else "owned"}
                for conflict in self.conflicts
            ]
        }


class TradeNotServed(TerritoryError):
    code = "trade_not_served"
    http_status = 422


class ContractorNotEligible(TerritoryError):
    code = "contractor_not_eligible"
    http_status = 422


class UnknownZipCodes(TerritoryError):
    code = "unknown_zip_codes"
    http_status = 422

    def __init__(self, zip_codes: Sequence[str]):
        self.zip_codes = sorted(zip_codes)
        super().__init__(f"Not ZIP codes that can be sold (unknown or inactive): {', '.join(self.zip_codes)}.")


class TerritoryNotActive(TerritoryError):
    """A release or transfer of an ownership that has already ended."""

    code = "territory_not_active"
    http_status = 409


class WaitlistError(TerritoryError):
    code = "waitlist_error"
    http_status = 409


class SelfServiceLimitReached(TerritoryError):
    """A self-service claim would take the contractor past the trade's self-service ZIP limit: what turns a
    contractor's claim into a claim request (leadengine.flows.territories_claim_or_request)."""

    code = "self_service_limit"
    http_status = 409


class ClaimRequestError(TerritoryError):
    """A claim request that cannot be made or decided: already decided, or ZIPs already asked for."""

    code = "claim_request_error"
    http_status = 409
