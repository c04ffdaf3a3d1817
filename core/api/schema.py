"""What the OpenAPI schema says beyond each view's own annotations, for every /api/v1/ operation: its tag (the
resource its path starts with), the JSON error body under each status the API can answer with, and the blank
value of read-only choices.

Every view uses ApiSchema (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS); a view with its own schema class
(ProfileViewSet) derives it from ApiSchema."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.drainage import warn
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry
from drf_spectacular.settings import spectacular_settings
from rest_framework import serializers

from core.api.errors import ErrorSerializer

API_PREFIX = "/api/v1/"

# Status: when the API answers with it. Every operation may answer 401, 403, 404, 429 and 503.
ERRORS = {
    "400": "Invalid parameters or body; `fields` names each invalid field.",
    "401": "No API key, or the key is unknown or expired.",
    "403": "The contractor is suspended, a staff key's user is no longer active staff, the operation is for staff "
    "only, or a session write lacks its CSRF token.",
    "404": "No such object among those the caller may see, or a cursor that names no page.",
    "409": "The object is not in a state that allows this.",
    "422": "Refused by a business rule (return window, trades served, ZIP codes unknown).",
    "413": "The body is larger than the server reads (REQUEST_BODY_MAX_BYTES); nothing was read.",
    "415": "A body of a media type the API does not read (it reads JSON, forms and multipart forms).",
    "429": "Too many requests from this key or address; `retry_after_seconds` says when to try again.",
    "503": "The database cannot be reached for a moment; `retry_after_seconds` (and the Retry-After header) says "
    "when to try again.",
}
ALWAYS = ("401", "403", "404", "429", "503")
ON_INPUT = ("400",)  # operations with query parameters or a body
ON_BODY = ("413", "415")  # operations with a body
ON_WRITE = ("409", "422")  # operations that change something


def declared_tags() -> list[str]:
    """The tags SPECTACULAR_SETTINGS["TAGS"] declares, with their descriptions, in the docs' order."""
    return [tag["name"] for tag in spectacular_settings.TAGS]


class ApiSchema(AutoSchema):
    def get_tags(self) -> list[str]:
        # An /api/v1/ operation is tagged with its resource, the path's first part (/api/v1/leads/{id}/accept/:
        # leads), so the docs group it; a resource without a declared tag is a warning, which fails
        # `make schema` and the schema test (--fail-on-warn). A view's own extend_schema(tags=...) wins.
        if not self.path.startswith(API_PREFIX):
            tags: list[str] = super().get_tags()
            return tags
        resource = self.path.removeprefix(API_PREFIX).split("/", 1)[0]
        if resource not in declared_tags():
            warn(f'{self.path}: no tag "{resource}" in SPECTACULAR_SETTINGS["TAGS"]; declare it with a description')
        return [resource]

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None or not path.startswith(API_PREFIX):
            return operation
        codes = list(ALWAYS)
        if operation.get("requestBody") or any(p["in"] == "query" for p in operation.get("parameters", [])):
            codes += ON_INPUT
        if operation.get("requestBody"):
            codes += ON_BODY
        if method not in ("GET", "HEAD", "OPTIONS"):
            codes += ON_WRITE
        responses = operation["responses"]
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code) | {"description": ERRORS[code]}
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _map_serializer_field(
        self, field: serializers.Field[Any, Any, Any, Any], direction: str, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        # DRF drops allow_blank from read-only model fields, yet a choice left blank (a lead not returned, a
        # territory not ended) is answered as "": the schema must allow it.
        if isinstance(field, serializers.ChoiceField) and field.read_only and not field.allow_blank:
            field.allow_blank = blank_on_model(field)
        mapped: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)
        return mapped


def blank_on_model(field: serializers.Field[Any, Any, Any, Any]) -> bool:
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or not field.source or "." in field.source:
        return False
    try:
        blank: bool = model._meta.get_field(field.source).blank
    except FieldDoesNotExist:
        return False
    return blank
