"""Every API error is JSON: {"code": "...", "detail": "...", "fields": {...}}, with stable codes. Domain
errors (leads, territories) carry their own code and HTTP status; DRF's own errors get theirs."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.db import DataError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from contractors.services.contractors import ContractorError
from leadengine.services.jobs import JobError
from leads.errors import LeadError
from territories.errors import TerritoryError, TerritoryTaken

DOMAIN_ERRORS = (LeadError, TerritoryError, ContractorError, JobError)
log = logging.getLogger(__name__)


def error_body(code: str, detail: str, fields: dict | None = None) -> dict:
    return {"code": code, "detail": detail, "fields": fields or {}}


def _flatten(detail) -> dict:
    """DRF's nested field errors as {"field": ["message", ...]} (nested fields dotted)."""
    fields: dict = {}

    def walk(prefix: str, value) -> None:
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


def api_exception_handler(error, context):
    if isinstance(error, TerritoryTaken):
        # The ZIPs, not who holds them: a competitor's territories are not another contractor's business.
        taken = ", ".join(error.zip_codes)
        body = error_body(error.code, f"{error.trade_name} territory already taken: {taken}. Nothing was claimed.")
        body["conflicts"] = [
            {"zip_code": c.zip_code, "held_as": "offered" if c.offered_until else "owned"} for c in error.conflicts
        ]
        return Response(body, status=error.http_status)
    if isinstance(error, DOMAIN_ERRORS):
        return Response(error_body(error.code, str(error)), status=getattr(error, "http_status", 409))
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
    if isinstance(error, exceptions.Throttled) and error.wait is not None:
        response.data["retry_after_seconds"] = int(error.wait) + 1
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = "Api-Key"
    return response


class ErrorSerializer(serializers.Serializer):
    """The body of every API error (the schema's Error)."""

    code = serializers.CharField(help_text="Stable, for programs: not_found, invalid, throttled, cap_reached, ...")
    detail = serializers.CharField(help_text="For people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='Messages per invalid field (nested fields dotted, "non_field_errors" for the whole body).',
    )
    retry_after_seconds = serializers.IntegerField(required=False, help_text="On 429: when to try again.")
    conflicts = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        required=False,
        help_text='On a refused territory claim: {"zip_code", "held_as": "owned" | "offered"} per ZIP taken.',
    )
