"""Domain errors of contractors (core.errors.DomainError). Each has a stable `code` and an `http_status` for
the API (409 unless it says otherwise); the admin and the commands show the message."""

from __future__ import annotations

from core.errors import DomainError


class ContractorError(DomainError):
    """A change to a contractor that is refused; the message says why, for staff and API clients."""

    code = "contractor_error"


class ContractorStatusError(ContractorError):
    code = "invalid_status_change"


class TradeStillOwned(ContractorError):
    """The contractor still owns territories of a trade it was asked to stop serving."""

    code = "trade_still_owned"


class MembershipError(ContractorError):
    code = "invalid_membership"


class WebhookTargetError(ContractorError):
    """A webhook URL that leads cannot be posted to; the message says why."""

    code = "webhook_target_invalid"


class WebhookTargetRefused(WebhookTargetError):
    """Never posted to as it stands: a scheme, host or address the settings do not allow."""

    code = "webhook_target_refused"


class WebhookTargetUnresolved(WebhookTargetError):
    """The host name did not resolve: refused when saved, tried again later when posting."""

    code = "webhook_target_unresolved"


class ApiKeyOwnerInvalid(ContractorError):
    """A key was asked for without exactly one owner, or for a user who may not have one of their own."""

    code = "invalid_api_key_owner"


class ApiKeyRejected(DomainError):
    """A request's API key does not give access. `http_status` is what the API answers: 401 for a key
    that authenticates nobody, 403 for a known contractor who may not use the API; `code` is stable.
    The API's authentication turns it into DRF's AuthenticationFailed, which adds WWW-Authenticate."""

    http_status = 401
    code = "invalid_api_key"


class ApiKeyUnknown(ApiKeyRejected):
    code = "unknown_api_key"


class ApiKeyRevoked(ApiKeyRejected):
    code = "revoked_api_key"


class ApiAccessDenied(ApiKeyRejected):
    http_status = 403
    code = "api_access_denied"
