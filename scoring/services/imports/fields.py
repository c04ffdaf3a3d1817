"""Vectorised parsers for the columns of imported CSV files.

Each parser takes a column as a Series of strings as read ("" when empty), ignores surrounding
whitespace, and returns the parsed values (missing where empty) and a Series of reasons (None where
the value is fine). They never raise on bad data: a bad
value becomes a reason that ends up in the rejects file. Columns with few distinct values (dates,
ZIPs, flags, categories) are parsed once per distinct value and mapped back, which is what keeps an
import of a million rows within seconds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.fields import ZIP_CODE_PATTERN

TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
BOOLEAN_WORDS = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}
MONEY_NOISE = re.compile(r"[$,\s]")
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
ZIP_PLUS_FOUR = re.compile(rf"^({ZIP_CODE_PATTERN})-?[0-9]{{4}}$")


@dataclass
class Parsed:
    values: pd.Series
    reasons: pd.Series  # object dtype: None, or why the value was refused


REASON_DTYPE = pd.StringDtype("pyarrow")  # missing = no reason; isna() reads a bitmap, not objects


def no_reasons(index: pd.Index) -> pd.Series:
    return pd.Series(pd.NA, index=index, dtype=REASON_DTYPE)


def add_reason(reasons: pd.Series, mask: pd.Series | np.ndarray, reason: str | pd.Series) -> None:
    """Record `reason` where `mask` holds and no earlier reason was given (the first problem wins)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():  # the common case on clean data: skip the scan of the reasons
        return
    mask = mask & reasons.isna().to_numpy()  # not in place: the array of a Series may be read-only
    reasons[mask] = reason[mask] if isinstance(reason, pd.Series) else reason


def by_distinct_value(column: pd.Series, parse_distinct: Callable[[pd.Series], Parsed]) -> Parsed:
    """Parse each distinct value once, then spread the results back over the column."""
    codes, uniques = pd.factorize(column)
    parsed = parse_distinct(pd.Series(uniques, dtype=object).str.strip())
    values = parsed.values.take(codes)
    reasons = parsed.reasons.take(codes)
    values.index = column.index
    reasons.index = column.index
    return Parsed(values, reasons)


def text(max_length: int) -> Callable[[pd.Series], Parsed]:
    def parse(column: pd.Series) -> Parsed:
        text = pc.utf8_trim_whitespace(pa.array(column, type=pa.string(), from_pandas=True))
        reasons = no_reasons(column.index)
        too_long = pc.greater(pc.utf8_length(text), max_length).to_numpy(zero_copy_only=False)
        add_reason(reasons, too_long, f"longer than {max_length} characters")
        values = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        return Parsed(pd.Series(values, index=column.index, dtype=pd.StringDtype("pyarrow")), reasons)

    return parse


def number(*, low: float, high: float, whole: bool = False, unit: str = "") -> Callable[[pd.Series], Parsed]:
    """Numbers such as 1234, -1.5e3, 1,234.50 or $350,000; `whole` refuses fractions.

    Parsed with Arrow's compute kernels: about twenty times faster than pandas.to_numeric on text.
    """

    def parse(column: pd.Series) -> Parsed:
        text = pc.utf8_trim_whitespace(pa.array(column, type=pa.string(), from_pandas=True))
        given = pc.not_equal(text, "")
        try:  # fast path: every value given is a plain number
            numbers = pc.cast(pc.if_else(given, text, pa.scalar(None, pa.string())), pa.float64())
        except pa.ArrowInvalid:
            plain = pc.match_substring_regex(text, NUMBER_PATTERN)
            # "$1,234" and "1 234" are numbers once the currency sign, commas and spaces are gone.
            cleaned = pc.if_else(plain, text, pc.replace_substring_regex(text, MONEY_NOISE.pattern, ""))
            valid = pc.match_substring_regex(cleaned, NUMBER_PATTERN)
            numbers = pc.cast(pc.if_else(valid, cleaned, pa.scalar(None, pa.string())), pa.float64())
        values = pd.Series(numbers.to_numpy(zero_copy_only=False), index=column.index)
        given = given.to_numpy(zero_copy_only=False)
        reasons = no_reasons(column.index)
        add_reason(reasons, given & values.isna().to_numpy(), "not a number")
        suffix = f" {unit}" if unit else ""
        add_reason(reasons, (values < low) | (values > high), f"outside {readable(low)} to {readable(high)}{suffix}")
        if whole:
            add_reason(reasons, values.notna() & (values != values.round()), "not a whole number")
            values = values.where(reasons.isna()).round().astype("Int64")
        return Parsed(values, reasons)

    return parse


def readable(number: float) -> str:
    """1600 as 1600 (a year), 2000000000 as 2,000,000,000, 0.01 as 0.01."""
    if number == int(number):
        return f"{int(number):,}" if abs(number) >= 10_000 else str(int(number))
    return f"{number:g}"


def boolean(column: pd.Series) -> Parsed:
    def parse_distinct(values: pd.Series) -> Parsed:
        flags = values.str.lower().map(BOOLEAN_WORDS)
        reasons = no_reasons(values.index)
        add_reason(reasons, flags.isna() & (values != ""), "not a yes/no value (true/false, yes/no, y/n, 1/0)")
        return Parsed(flags.astype("boolean"), reasons)

    return by_distinct_value(column, parse_distinct)


def date(*, earliest: dt.date, latest: Callable[[], dt.date]) -> Callable[[pd.Series], Parsed]:
    """Dates as YYYY-MM-DD or MM/DD/YYYY; values are returned as ISO strings for COPY."""

    def parse_distinct(values: pd.Series) -> Parsed:
        parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
        us = parsed.isna() & (values != "")
        if us.any():
            parsed[us] = pd.to_datetime(values[us], format="%m/%d/%Y", errors="coerce")
        reasons = no_reasons(values.index)
        add_reason(reasons, parsed.isna() & (values != ""), "not a date (use YYYY-MM-DD or MM/DD/YYYY)")
        add_reason(reasons, parsed < pd.Timestamp(earliest), f"before {earliest.isoformat()}")
        add_reason(reasons, parsed > pd.Timestamp(latest()), "in the future")
        iso = parsed.dt.strftime("%Y-%m-%d").where(reasons.isna() & parsed.notna(), None)
        return Parsed(iso.astype(object), reasons)

    def parse(column: pd.Series) -> Parsed:
        return by_distinct_value(column, parse_distinct)

    return parse


def choice(synonyms: Mapping[str, str], allowed: list[str]) -> Callable[[pd.Series], Parsed]:
    """A category: case, spaces and dashes are ignored, and each synonym maps to its canonical value."""

    def parse_distinct(values: pd.Series) -> Parsed:
        keys = values.str.lower().str.replace(r"[\s\-/]+", "_", regex=True)
        mapped = keys.map(lambda key: synonyms.get(key, key if key in allowed else None))
        reasons = no_reasons(values.index)
        add_reason(reasons, mapped.isna() & (values != ""), f"not one of {', '.join(allowed)}")
        return Parsed(mapped.astype(object), reasons)

    def parse(column: pd.Series) -> Parsed:
        return by_distinct_value(column, parse_distinct)

    return parse


def zip_code(known: frozenset[str]) -> Callable[[pd.Series], Parsed]:
    """5-digit ZIPs in the reference table; ZIP+4 is cut to 5 digits and leading zeros that a
    spreadsheet dropped (2134 for 02134) are restored."""

    def normalise(raw: str) -> str:
        plus_four = ZIP_PLUS_FOUR.match(raw)
        if plus_four:
            return plus_four.group(1)
        if raw.isdigit() and 3 <= len(raw) <= 4:
            return raw.zfill(5)
        return raw

    def parse_distinct(values: pd.Series) -> Parsed:
        codes = values.map(normalise)
        reasons = no_reasons(values.index)
        add_reason(reasons, (values != "") & ~codes.str.fullmatch(ZIP_CODE_PATTERN), "not a 5-digit ZIP code")
        unknown = np.fromiter((code not in known for code in codes), dtype=bool, count=len(codes))
        add_reason(reasons, (values != "") & unknown, "ZIP code " + codes + " is not in the US ZIP reference")
        return Parsed(codes.where(reasons.isna() & (values != ""), None), reasons)

    def parse(column: pd.Series) -> Parsed:
        return by_distinct_value(column, parse_distinct)

    return parse


def state(known: frozenset[str]) -> Callable[[pd.Series], Parsed]:
    def parse_distinct(values: pd.Series) -> Parsed:
        codes = values.str.upper()
        reasons = no_reasons(values.index)
        unknown = np.fromiter((code not in known for code in codes), dtype=bool, count=len(codes))
        add_reason(reasons, (values != "") & unknown, "not a two-letter US state code")
        return Parsed(codes.where(values != "", None), reasons)

    def parse(column: pd.Series) -> Parsed:
        return by_distinct_value(column, parse_distinct)

    return parse
