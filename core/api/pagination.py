from __future__ import annotations

import binascii
import datetime as dt
import math
from base64 import b64decode
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib import parse

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connection, models
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import Cursor, CursorPagination, _positive_int

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

# The longest cursor a page link carries is well under 200 characters (a position of a date-time or a number).
MAX_CURSOR_LENGTH = 1_000


class BoundedCursorPagination(CursorPagination):
    """Cursor pages (stable under inserts, no COUNT over the table) of `page_size` rows, at most 200.

    A cursor is read strictly: only what encode_cursor writes (base64 of o=<offset>&r=1&p=<position>, the
    position a value of the first ordering column) names a page; anything else, whatever it decodes to, is
    404 "Invalid cursor" before the database sees it."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    model: type[models.Model]

    # Cursor pages are of querysets only, where DRF's pagination also takes lists.
    def paginate_queryset(  # type: ignore[override]
        self, queryset: models.QuerySet[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            return self.cursor_read(encoded)
        except (TypeError, ValueError, binascii.Error, ValidationError, OverflowError):
            raise NotFound(self.invalid_cursor_message) from None

    def cursor_read(self, encoded: str) -> Cursor:
        """The cursor `encoded` names, or ValueError (or the error of the part that fails) when it is not one
        this list wrote."""
        if len(encoded) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        tokens = parse.parse_qs(
            b64decode(encoded.encode("ascii"), validate=True).decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
        )
        if set(tokens) - {"o", "r", "p"} or any(len(values) != 1 for values in tokens.values()):
            raise ValueError("unknown or repeated tokens")
        offset = tokens.get("o", ["0"])[0]
        if not offset.isascii() or not offset.isdigit():
            raise ValueError("offset")
        reverse = tokens.get("r", ["0"])[0]
        if reverse not in ("0", "1"):
            raise ValueError("reverse")
        position = tokens.get("p", [None])[0]
        if position is not None:
            self.position_value(position)
        return Cursor(
            offset=_positive_int(offset, cutoff=self.offset_cutoff),
            reverse=reverse == "1",
            position=position,  # type: ignore[arg-type]  # DRF's cursors carry the position as text
        )

    def position_value(self, position: str) -> object:
        """The position as a value of the first ordering column, or ValueError/ValidationError when the column
        could never hold it: text that is no date-time or number, a date-time without its UTC offset, a number
        that is not finite or out of the column's range, a NUL character."""
        if "\x00" in position:
            raise ValueError("NUL in position")
        name = self.ordering[0].lstrip("-")
        try:
            field = self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return position  # an annotation: compared as given, the database refuses what it cannot compare
        value = field.to_python(position)  # type: ignore[union-attr]  # an ordering names a column, no reverse relation
        if isinstance(field, models.DateTimeField):
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise ValueError("a date-time position carries its UTC offset")
            value.astimezone(dt.UTC)  # OverflowError at the ends of the calendar
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a finite number")
        elif isinstance(field, models.IntegerField):
            low, high = connection.ops.integer_field_range(field.get_internal_type())
            if not (low is None or low <= value) or not (high is None or value <= high):
                raise ValueError("out of the column's range")
        return value


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` as asked, then `-id`: rows that tie on the asked field (equal scores) keep one order,
    which cursor pages need so that no row is repeated or skipped between pages."""

    def get_ordering(self, request: Request, queryset: models.QuerySet[Any], view: APIView) -> Sequence[str] | None:
        ordering = super().get_ordering(request, queryset, view)
        if ordering and not {"id", "-id", "pk", "-pk"} & set(ordering):
            ordering = [*ordering, "-id"]
        return ordering
