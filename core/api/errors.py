"""Every API error is JSON: {"code": "...", "detail": "...", "fields": {...}}, with stable codes. Domain
errors (core.errors.DomainError, whatever the app) carry their own code, HTTP status and extra fields; DRF's
own errors get theirs; a database that cannot be reached is 503 database_unavailable with Retry-After, a
body over DATA_UPLOAD_MAX_MEMORY_SIZE 413 too_large."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import DomainError
from core.retry import is_transient

log = logging.getLogger(__name__)


# What a client is told to wait before trying again while the database cannot be reached: a restart or a
# failover takes tens of seconds, and a few requests in that time cost nothing.
DATABASE_RETRY_AFTER_SECONDS = 10
# SQLSTATE classes of a server that cannot take the statement now, whatever it is: insufficient resources (53:
# too many connections, out of memory or disk), operator intervention (57: shutting down, starting up, the
# statement cancelled by a timeout) and system errors (58).
UNAVAILABLE_CLASSES = ("53", "57", "58")


def error_body(code: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"code": code, "detail": detail, "fields": fields or {}}


def database_unavailable(error: BaseException) -> bool:
    """True when `error` says PostgreSQL cannot be reached or cannot serve now (a connection refused, lost or
    timed out, the server starting up or shutting down, out of connections), not that the request was wrong:
    the caller may try the same request again later."""
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    code = getattr(error.__cause__ or error, "sqlstate", None)
    return is_transient(error) or (code is not None and code.startswith(UNAVAILABLE_CLASSES))


def database_unavailable_body() -> dict[str, Any]:
    return error_body(
        "database_unavailable",
        f"The database cannot be reached for a moment. Try again in {DATABASE_RETRY_AFTER_SECONDS} seconds.",
    ) | {"retry_after_seconds": DATABASE_RETRY_AFTER_SECONDS}


def database_unavailable_json() -> JsonResponse:
    """The API's 503 outside a DRF view (middleware, the session, Django's error handlers)."""
    response = JsonResponse(database_unavailable_body(), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def suspicious_request(error: SuspiciousOperation) -> tuple[int, dict[str, Any]]:
    """(status, body) of a request Django refuses to read: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413
    too_large; too many parameters or files 400 too_many_fields; anything else Django finds malformed 400
    bad_request (its details are logged by Django, not shown)."""
    if isinstance(error, RequestDataTooBig):
        from django.conf import settings

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, error_body(
            "too_large", f"The request body is larger than {limit:,} bytes; nothing was read."
        )
    if isinstance(error, (TooManyFieldsSent, TooManyFilesSent)):
        return status.HTTP_400_BAD_REQUEST, error_body(
            "too_many_fields", "The request has more parameters or files than the server reads; nothing was read."
        )
    return status.HTTP_400_BAD_REQUEST, error_body("bad_request", "The request is malformed.")


def _flatten(detail: object) -> dict[str, list[str]]:
    """DRF's nested field errors as {"field": ["message", ...]} (nested fields dotted)."""
    fields: dict[str, list[str]] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and not all(isinstance(item, str) for item in value):
            for index, inner in enumerate(value):
                walk(f"{prefix}.{index}" if prefix else str(index), inner)
        else:
            fields.setdefault(prefix or "non_field_errors", []).extend(
                [str(item) for item in value] if isinstance(value, list) else [str(value)]
            )

    walk("", detail)
    return fields


def api_exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(error, DomainError):
        return Response(error_body(error.code, error.detail) | error.body_extra(), status=error.http_status)
    if isinstance(error, DatabaseError) and database_unavailable(error):
        # Logged without a trace: while PostgreSQL restarts, every request would add one.
        log.warning("API request answered 503, the database is unavailable: %s", error)
        unavailable = Response(database_unavailable_body(), status=status.HTTP_503_SERVICE_UNAVAILABLE)
        unavailable["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return unavailable
    if isinstance(error, SuspiciousOperation):
        http_status, body = suspicious_request(error)
        log.warning("API request refused: %s", error)
        return Response(body, status=http_status)
    if isinstance(error, DataError):
        # A value the database cannot hold (a NUL character, a number or date out of its range) that got past
        # validation: the request is at fault, not the server. Logged, so that the validation gets fixed.
        log.warning("API input refused by the database: %s", error)
        return Response(
            error_body("invalid", "A value in the request cannot be stored or compared: out of range or malformed."),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(error, Http404):
        error = exceptions.NotFound()
    elif isinstance(error, PermissionDenied):
        error = exceptions.PermissionDenied()
    response = exception_handler(error, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handler (leadengine.views.server_error) answers
    if isinstance(error, exceptions.ValidationError):
        fields = _flatten(error.detail)
        response.data = error_body("invalid", "The request has invalid fields; see fields.", fields)
        return response
    detail = error.detail if isinstance(error, exceptions.APIException) else str(error)
    codes = error.get_codes() if isinstance(error, exceptions.APIException) else "error"
    code = codes if isinstance(codes, str) else getattr(error, "default_code", "error")
    response.data = error_body(code, str(detail))
    # Throttled.wait is set by its __init__; DRF's stubs do not declare it.
    wait: float | None = getattr(error, "wait", None) if isinstance(error, exceptions.Throttled) else None
    if wait is not None:
        response.data["retry_after_seconds"] = math.ceil(wait)  # as Retry-After says (DRF rounds it up already)
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = "Api-Key"
    return response


class ErrorSerializer(serializers.Serializer[Any]):
    """The body of every API error (the schema's Error)."""

    code = serializers.CharField(help_text="Stable, for programs: not_found, invalid, throttled, cap_reached, ...")
    detail = serializers.CharField(help_text="For people.")
    # The body's field named "fields": DRF collects declared fields before its `fields` property exists.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text='Messages per invalid field (nested fields dotted, "non_field_errors" for the whole body).',
    )
    retry_after_seconds = serializers.IntegerField(
        required=False, help_text="On 429 and 503: seconds to wait before trying again (also in Retry-After)."
    )
    conflicts = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        required=False,
        help_text='On a refused territory claim: {"zip_code", "held_as": "owned" | "offered"} per ZIP taken.',
    )
