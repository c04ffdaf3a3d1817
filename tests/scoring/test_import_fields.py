"""The vectorised parsers behind the CSV import: parsed values and refusal reasons, value by value."""

import datetime as dt

import pandas as pd

from scoring.services.imports import fields as f


def column(*values: str) -> pd.Series:
    # The import hands parsers stripped text in pandas' string dtype, "" for an empty cell.
    return pd.Series(values, dtype=str, index=range(10, 10 + len(values)))


def plain(series: pd.Series) -> list:
    """Values as plain Python objects, None for every kind of missing value."""
    return [None if pd.isna(value) else value for value in series.astype(object)]


def test_number_reads_plain_money_and_thousands_forms():
    parsed = f.number(low=0, high=2_000_000_000, whole=True, unit="dollars")(
        column("1285000", "$1,050,000", "$742,000", "1,234", "$ 5 000", "")
    )

    assert plain(parsed.values) == [1285000, 1050000, 742000, 1234, 5000, None]
    assert plain(parsed.reasons) == [None] * 6
    assert str(parsed.values.dtype) == "Int64"


def test_number_refuses_text_infinities_fractions_and_out_of_range_values():
    parsed = f.number(low=0, high=100, whole=True, unit="sq ft")(
        column("abc", "inf", "nan", "12.5", "-1", "101", "$5,00O", "100")
    )

    assert plain(parsed.reasons) == [
        "not a number",
        "not a number",
        "not a number",
        "not a whole number",
        "outside 0 to 100 sq ft",
        "outside 0 to 100 sq ft",
        "not a number",
        None,
    ]
    assert plain(parsed.values) == [None, None, None, None, None, None, None, 100]


def test_number_keeps_fractions_when_whole_numbers_are_not_required():
    parsed = f.number(low=-90, high=90)(column("40.0224", "-89.5", "90", "90.0001"))

    assert plain(parsed.values) == [40.0224, -89.5, 90.0, 90.0001]
    assert plain(parsed.reasons) == [None, None, None, "outside -90 to 90"]


def test_boolean_accepts_true_false_yes_no_y_n_1_0_in_any_case():
    parsed = f.boolean(column("true", "FALSE", "Yes", "no", "Y", "n", "1", "0", "T", "f", ""))

    assert plain(parsed.values) == [True, False, True, False, True, False, True, False, True, False, None]
    assert plain(parsed.reasons) == [None] * 11


def test_boolean_refuses_other_words():
    parsed = f.boolean(column("maybe", "yes"))

    assert plain(parsed.values) == [None, True]
    assert plain(parsed.reasons) == ["not a yes/no value (true/false, yes/no, y/n, 1/0)", None]


def test_date_reads_iso_and_us_forms_into_iso_text():
    parse = f.date(earliest=dt.date(1800, 1, 1), latest=lambda: dt.date(2025, 6, 30))

    parsed = parse(column("2019-06-14", "06/30/2021", "6/3/2021", "2025-06-30", ""))

    assert plain(parsed.values) == ["2019-06-14", "2021-06-30", "2021-06-03", "2025-06-30", None]
    assert plain(parsed.reasons) == [None] * 5


def test_date_refuses_impossible_two_digit_year_early_and_future_dates():
    parse = f.date(earliest=dt.date(1800, 1, 1), latest=lambda: dt.date(2025, 6, 30))

    parsed = parse(column("2021-02-30", "13/01/2021", "06/30/21", "June 3 2021", "1799-12-31", "2025-07-01"))

    assert plain(parsed.values) == [None] * 6
    assert plain(parsed.reasons) == [
        "not a date (use YYYY-MM-DD or MM/DD/YYYY)",
        "not a date (use YYYY-MM-DD or MM/DD/YYYY)",
        "not a date (use YYYY-MM-DD or MM/DD/YYYY)",
        "not a date (use YYYY-MM-DD or MM/DD/YYYY)",
        "before 1800-01-01",
        "in the future",
    ]


def test_zip_code_cuts_zip_plus_four_and_restores_dropped_leading_zeros():
    parse = f.zip_code(frozenset({"80304", "02134", "00501"}))

    parsed = parse(column("80304", "80304-1234", "803041234", "2134", "501", ""))

    assert plain(parsed.values) == ["80304", "80304", "80304", "02134", "00501", None]
    assert plain(parsed.reasons) == [None] * 6


def test_zip_code_refuses_malformed_codes_and_codes_outside_the_reference():
    parse = f.zip_code(frozenset({"80304"}))

    parsed = parse(column("99999", "8030A", "80304-12", "12"))

    assert plain(parsed.values) == [None, None, None, None]
    assert plain(parsed.reasons) == [
        "ZIP code 99999 is not in the US ZIP reference",
        "not a 5-digit ZIP code",
        "not a 5-digit ZIP code",
        "not a 5-digit ZIP code",
    ]


def test_choice_ignores_case_spaces_and_dashes_and_maps_synonyms():
    parse = f.choice({"sfr": "single_family", "townhome": "townhouse"}, ["single_family", "townhouse", "condo"])

    parsed = parse(column("Single Family", "single-family", "SFR", "Townhome", "CONDO", "castle", ""))

    assert plain(parsed.values) == ["single_family", "single_family", "single_family", "townhouse", "condo", None, None]
    assert plain(parsed.reasons) == [None, None, None, None, None, "not one of single_family, townhouse, condo", None]


def test_state_is_upper_cased_and_must_be_a_known_code():
    parsed = f.state(frozenset({"CO", "MA"}))(column("co", "MA", "XX", ""))

    assert plain(parsed.values) == ["CO", "MA", "XX", None]
    assert plain(parsed.reasons) == [None, None, "not a two-letter US state code", None]


def test_text_refuses_values_longer_than_the_limit_and_empties_become_missing():
    parsed = f.text(5)(column("abcde", "abcdef", ""))

    assert plain(parsed.values) == ["abcde", "abcdef", None]
    assert plain(parsed.reasons) == [None, "longer than 5 characters", None]


def test_parsing_by_distinct_value_keeps_the_row_index_and_gives_repeats_the_same_result():
    parsed = f.state(frozenset({"CO"}))(column("co", "XX", "co", "XX"))

    assert list(parsed.values.index) == [10, 11, 12, 13]
    assert list(parsed.reasons.index) == [10, 11, 12, 13]
    assert plain(parsed.values) == ["CO", "XX", "CO", "XX"]
    assert plain(parsed.reasons) == [None, "not a two-letter US state code", None, "not a two-letter US state code"]
