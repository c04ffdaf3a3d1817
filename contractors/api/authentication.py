"""API-key authentication: `Authorization: Api-Key <key>`. A contractor's key authenticates a
ContractorClient: not a user of the site, but the contractor acting through its systems. A staff user's
own key authenticates that user, exactly as their session would (request.auth is the key either way).
Views read who is calling as a Caller (contractors.caller), once per request (CallerMixin)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from contractors.caller import Caller
from contractors.errors import ApiKeyRejected, ApiKeyUnknown
from contractors.models import ApiKey
from contractors.services.api_keys import api_key_authenticate
from core.api.throttling import AuthFailureThrottle

KEYWORD = "Api-Key"


@dataclass(frozen=True)
class ContractorClient:
    """request.user of a call made with a contractor's API key: what DRF asks of a user (authenticated, not
    staff, a pk for throttling). Domain code reads the request's Caller, not this."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return f"key:{self.key.pk}"

    def __str__(self) -> str:
        return f"{self.key.contractor} ({self.key.prefix})"


class ApiKeyFailed(exceptions.AuthenticationFailed):
    """The key was refused: carries the service's stable code and HTTP status (401 or 403)."""

    def __init__(self, rejection: ApiKeyRejected):
        super().__init__(detail=str(rejection), code=rejection.code)
        self.status_code = rejection.http_status


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Refused keys are counted per client address (Redis); past API_AUTH_FAILURES_PER_MINUTE in a minute
    the address's refused keys get 429 instead of 401 until the minute is over, but a valid key from it is
    still authenticated, and costs no look at the counter: one bad actor behind a NAT must not lock out
    everyone sharing its address.

    That costs nothing in safety: a key holds 256 random bits, so guessing one is hopeless at any rate. The
    throttle is there to bound what a flood of bad keys costs, and that stays small: a string without a key's
    shape is refused without a query (api_key_well_formed), a well-formed guess costs one probe of the unique
    hash index that finds nothing, as every API call's own authentication does."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        try:
            keyword, _, raw_key = header.decode("ascii").partition(" ")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "The Authorization header is not ASCII.", code="invalid_header"
            ) from None
        if keyword != KEYWORD:
            return None
        try:
            if not raw_key.strip() or " " in raw_key.strip():
                raise ApiKeyUnknown(f'Give the key as "Authorization: {KEYWORD} <key>".')
            key = api_key_authenticate(raw_key=raw_key)
        except ApiKeyRejected as rejection:
            failures = AuthFailureThrottle()
            if not failures.allow_request(request, None):  # counts this refusal; a valid key is never counted
                raise exceptions.Throttled(
                    wait=failures.wait(), detail="Too many refused API keys from this address."
                ) from None
            raise ApiKeyFailed(rejection) from None
        if key.user_id is not None:
            return key.user, key
        return ContractorClient(key=key), key

    def authenticate_header(self, request) -> str:
        return KEYWORD


# A view's caller, read once per request from what authentication found and handed to selectors and
# services; views never ask request.user whom it acts for. (A comment, not a docstring: the OpenAPI schema
# would describe every view without one of its own by it.)
class CallerMixin:
    @cached_property
    def caller(self) -> Caller:
        return Caller.of(self.request)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                f"\"{KEYWORD} <key>\": a contractor's key, or a staff user's own key "
                "(manage.py create_api_key, or the admin)."
            ),
        }
