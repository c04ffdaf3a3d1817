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
