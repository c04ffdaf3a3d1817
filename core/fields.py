"""Field types any app may use: JSON stored as written, and the one definition of a ZIP code."""

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression
from django.utils.deconstruct import deconstructible

# A ZIP code is five ASCII digits, nothing around them. The one definition: Python checks, pandas'
# vectorised import check, PostgreSQL's check constraints (ZIP_CODE_REGEX) and the OpenAPI schema's
# pattern are all written from it. ZIP+4 and ZIPs a spreadsheet cut short are normalised before checking.
ZIP_CODE_PATTERN = "[0-9]{5}"
ZIP_CODE_REGEX = f"^{ZIP_CODE_PATTERN}$"  # anchored, for SQL `~` and schemas, which search rather than match
_ZIP_CODE = re.compile(ZIP_CODE_PATTERN)


def is_zip_code(value: str) -> bool:
    return _ZIP_CODE.fullmatch(value) is not None


@deconstructible
class ZipCodeValidator(RegexValidator):
    """is_zip_code as a validator. A RegexValidator (whose pattern drf-spectacular writes into the schema)
    that matches the whole value: RegexValidator's own search lets a trailing newline through `$`."""

    regex = ZIP_CODE_REGEX
    message = "Enter a five-digit ZIP code."
    code = "invalid_zip_code"

    def __call__(self, value: object) -> None:
        if not isinstance(value, str) or not is_zip_code(value):
            raise ValidationError(self.message, code=self.code, params={"value": value})


validate_zip_code = ZipCodeValidator()


class ZipCodeFormField(forms.CharField):
    """A form's ZIP code: five digits, surrounding spaces trimmed."""

    default_validators = [validate_zip_code]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "ZIP code")
        super().__init__(**kwargs)


class WrittenJSONField(models.JSONField):
    """JSON stored as written (PostgreSQL `json`, not `jsonb`), with keys in the order they were written.

    For documents that are written in bulk and read whole, never searched inside in SQL: PostgreSQL
    only validates `json`, where it converts `jsonb` to a binary form, which cost 0.5 s of every
    100,000 scores a run writes.
    """

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return "json"

    def get_db_prep_value(self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False) -> str | None:
        if value is None:
            return None
        return json.dumps(value, cls=self.encoder)

    def from_db_value(self, value: Any, expression: Expression, connection: BaseDatabaseWrapper) -> Any:
        if isinstance(value, str):  # psycopg parses json itself; text arrives from casts and raw SQL
            return super().from_db_value(value, expression, connection)
        return value
