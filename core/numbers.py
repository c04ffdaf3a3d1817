"""Figures as they are shown: a float computed in floating point (a lead's priority, 99.17500000000001) is shown
to the decimals it means (99.175), wherever it is answered (the API, a webhook's body, a CSV export)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")  # money's decimals: every amount is a Decimal of whole cents


def rounded(value: float | None, decimals: int) -> float | None:
    """`value` to `decimals` places (None stays None): a float whose JSON text has at most that many decimals."""
    if value is None:
        return None
    return round(float(value), decimals)


def floats_rounded(data: Any, decimals: int) -> Any:
    """`data` (JSON: objects, arrays, numbers...) with every float in it to `decimals` places; the rest as is."""
    if isinstance(data, float):
        return round(data, decimals)
    if isinstance(data, dict):
        return {key: floats_rounded(value, decimals) for key, value in data.items()}
    if isinstance(data, list):
        return [floats_rounded(value, decimals) for value in data]
    return data
