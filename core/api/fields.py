"""Serializer fields any API may use."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class RoundedFloatField(serializers.FloatField):
    """A float answered to `decimals` places, so that a computed figure shows as the figure it is: a lead's
    priority reads 99.175, not 99.17500000000001."""

    def __init__(self, *, decimals: int, **kwargs: Any) -> None:
        self.decimals = decimals
        super().__init__(**kwargs)

    def to_representation(self, value: float) -> Any:  # a float (DRF answers null itself)
        return round(float(value), self.decimals)


BIGINT = 2**63


def path_id(value: str) -> int | None:
    """A row's id as a URL names it (`/leads/<id>/`), read as the ORM reads a primary key (int()), or None when
    no row could have it: not a whole number, or beyond PostgreSQL's bigint. A view answers None with 404, as
    get_object does."""
    try:
        number = int(value)
    except ValueError:
        return None
    return number if -BIGINT <= number < BIGINT else None
