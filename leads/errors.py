"""Domain errors of leads (core.errors.DomainError). Each has a stable `code` and an `http_status` for the
API; the admin shows the message."""

from __future__ import annotations

from core.errors import DomainError


class LeadError(DomainError):
    code = "lead_error"
    http_status = 400


class TransitionRefused(LeadError):
    """The move is not in the transition table for the lead's current state, or not for this actor."""

    code = "transition_refused"
    http_status = 409


class NotTerritoryOwner(LeadError):
    """Staff tried to give a lead to a contractor that does not own its ZIP for its trade."""

    code = "not_territory_owner"
    http_status = 409


class CapReached(LeadError):
    code = "cap_reached"
    http_status = 409


class CreditLimitReached(LeadError):
    """A prepaid contractor's balance would go past its credit limit."""

    code = "credit_limit_reached"
    http_status = 409


class ContractorNotReceiving(LeadError):
    """The contractor is paused or suspended, or does not serve the lead's trade."""

    code = "contractor_not_receiving"
    http_status = 409


class ReturnRefused(LeadError):
    code = "return_refused"
    http_status = 422


class SuppressionImportError(LeadError):
    """A do-not-contact file with bad rows: nothing was imported. `errors` lists (line, message)."""

    code = "suppression_file_invalid"
    http_status = 422

    def __init__(self, errors: list[tuple[int, str]], *, shown: int = 20):
        self.errors = errors
        listed = "; ".join(f"line {line}: {message}" for line, message in errors[:shown])
        more = f"; and {len(errors) - shown} more" if len(errors) > shown else ""
        super().__init__(f"{len(errors)} bad row(s), nothing imported: {listed}{more}.")


class EvaluationRefused(LeadError):
    """An evaluation asked for a period that is no period (its last day before its first, or no day)."""

    code = "evaluation_refused"
    http_status = 400


class LearningRefused(LeadError):
    """A trade's outcomes cannot teach a new scoring model version: too few, no conversion, no active
    version to learn beside, or not enough days to hold some back; the message says which."""

    code = "learning_refused"
    http_status = 409


class NotEnoughOutcomes(LearningRefused):
    """Fewer leads with a known outcome than LEARN_MIN_OUTCOMES, or none converted (or all did)."""

    code = "not_enough_outcomes"
