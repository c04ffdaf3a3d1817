import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from scoring.engine import (
    FactorSpec,
    ModelDefinitionError,
    check_factors,
    reason_text,
    reasons_json,
    score_frame,
    transform,
)


def values(factor: FactorSpec, *data) -> list[float]:
    return [round(float(v), 6) for v in transform(factor, pd.Series(list(data), dtype=object))]


def test_ramp_is_linear_between_low_and_high_and_flat_outside():
    roof_age = FactorSpec("roof_age", "ramp", 1, {"low": 10, "high": 25})
    assert values(roof_age, 5, 10, 13, 17.5, 25, 40, None) == [0, 0, 0.2, 0.5, 1, 1, 0]


def test_step_counts_at_the_threshold_above_or_below():
    above = FactorSpec("hail_inches", "step", 1, {"threshold": 1.0})
    below = FactorSpec("years_since_sale", "step", 1, {"threshold": 1, "above": False})
    assert values(above, 0.75, 1.0, 1.75, None) == [0, 1, 1, 0]
    assert values(below, 0.5, 1, 3, None) == [1, 1, 0, 0]


def test_decay_halves_every_half_life_and_no_event_is_zero():
    storm = FactorSpec("days_since_hail", "decay", 1, {"half_life_days": 30})
    assert values(storm, 0, 30, 60, 15, -2, None) == [1, 0.5, 0.25, round(math.pow(0.5, 0.5), 6), 1, 0]


def test_flag_and_lookup():
    owner = FactorSpec("owner_occupied", "flag", 1)
    kind = FactorSpec("property_type", "lookup", 1, {"values": {"single_family": 1, "townhouse": 0.6}, "default": 0.2})
    assert values(owner, True, False, None) == [1, 0, 0]
    assert values(kind, "single_family", "townhouse", "condo", None) == [1, 0.6, 0.2, 0]


ROOFING = [
    FactorSpec("roof_age", "ramp", 40, {"low": 10, "high": 25}, "Roof is {value:.0f} years old"),
    FactorSpec("days_since_hail", "decay", 30, {"half_life_days": 30}, "Hail {value:.0f} days ago"),
    FactorSpec("owner_occupied", "flag", 10, {}, "Owner lives there"),
    FactorSpec("days_since_sale", "decay", 20, {"half_life_days": 180}, "Sold {value:.0f} days ago"),
]


def test_score_is_the_weighted_share_and_urgency_comes_from_decaying_factors_alone():
    features = pd.DataFrame(
        {
            "roof_age": [25, 17.5, 5, None],
            "days_since_hail": [0, 30, None, None],
            "owner_occupied": [True, False, True, None],
            "days_since_sale": [None, 180, 360, None],
        },
        index=[11, 12, 13, 14],
    )

    scored = score_frame(features, ROOFING)

    # Row 11: 40*1 + 30*1 + 10*1 + 20*0 = 80 of 100; urgency 30*1 / 50.
    # Row 12: 40*0.5 + 30*0.5 + 0 + 20*0.5 = 45; urgency (15 + 10) / 50.
    # Row 13: 0 + 0 + 10 + 20*0.25 = 15; urgency 5 / 50.
    assert scored["score"].tolist() == [80.0, 45.0, 15.0, 0.0]
    assert scored["urgency"].tolist() == [60.0, 50.0, 10.0, 0.0]
    assert list(scored.index) == [11, 12, 13, 14]


def test_reasons_rank_factors_by_contribution_with_the_model_order_breaking_ties():
    features = pd.DataFrame(
        {
            "roof_age": [25, 17.5, None],
            "days_since_hail": [0, 30, None],
            "owner_occupied": [True, False, True],
            "days_since_sale": [None, 180, None],
        }
    )

    scored = score_frame(features, ROOFING)

    reasons = scored[[f"reason_{n}_factor" for n in (1, 2, 3)]].to_numpy().tolist()
    # Row 0: roof 40, hail 30, owner 10. Row 1: roof 20, hail 15, sale 10. Row 2: owner alone.
    assert reasons == [[0, 1, 2], [0, 1, 3], [2, -1, -1]]
    assert scored.loc[1, "reason_1_value"] == 17.5
    assert scored.loc[1, "reason_3_value"] == 180
    assert pd.isna(scored.loc[2, "reason_2_value"])


def test_reason_text_renders_the_template_with_the_value():
    assert reason_text(ROOFING[0], 23.4) == "Roof is 23 years old"
    assert reason_text(FactorSpec("roof_age", "ramp", 1, {"low": 1, "high": 2}), 23) == "roof_age: 23"
    assert (
        reason_text(FactorSpec("roof_age", "ramp", 1, {"low": 1, "high": 2}, "Roof {oops}"), 23) == "Roof {oops} (23)"
    )


@pytest.mark.parametrize(
    ("factor", "message"),
    [
        (FactorSpec("roof_colour", "flag", 1), "factor 1 (roof_colour): unknown feature; use one of"),
        (FactorSpec("roof_age", "spline", 1), "factor 1 (roof_age): unknown transform 'spline'"),
        (FactorSpec("roof_age", "ramp", 1, {"low": 25, "high": 10}), "a ramp needs low < high (got low 25, high 10)"),
        (FactorSpec("roof_age", "ramp", 1, {"low": 10, "high": 10}), "a ramp needs low < high (got low 10, high 10)"),
        (FactorSpec("roof_age", "ramp", 1, {"low": "ten", "high": 20}), "factor 1 (roof_age): low must be a number"),
        (
            FactorSpec("days_since_hail", "decay", 1, {"half_life_days": -5}),
            "the half-life must be positive (got -5 days)",
        ),
        (FactorSpec("roof_age", "ramp", 0, {"low": 1, "high": 2}), "the weight must be greater than 0"),
        (FactorSpec("property_type", "lookup", 1, {"values": {}}), "a lookup needs values"),
        (
            FactorSpec("property_type", "lookup", 1, {"values": {"condo": 2}}),
            "lookup value for 'condo' must be between 0",
        ),
    ],
)
def test_bad_definitions_are_refused_naming_the_factor_and_the_problem(factor, message):
    with pytest.raises(ModelDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_factors([factor], ["roof_age", "days_since_hail", "property_type"])


def test_a_model_without_factors_is_refused():
    with pytest.raises(ModelDefinitionError, match="at least one factor"):
        check_factors([], ["roof_age"])


def test_a_reason_may_quote_details_and_other_features_by_name():
    factor = FactorSpec("hail_inches", "step", 1, {"threshold": 1}, "{value:.2f} in hail {hail_where} on {hail_date}")
    assert factor.quoted() == ["hail_where", "hail_date"]
    check_factors([factor], ["hail_inches"], details=["hail_where", "hail_date"])
    details = {"hail_where": "0.8 mi away", "hail_date": "2026-05-03"}
    assert reason_text(factor, 1.75, details) == "1.75 in hail 0.8 mi away on 2026-05-03"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("Roof is {roof_colour} and {value}", "the reason text quotes roof_colour; it may quote {value} and"),
        ("Roof is {value", "the reason text is not a valid template"),
    ],
)
def test_a_reason_quoting_an_unknown_name_or_badly_written_is_refused(reason, message):
    with pytest.raises(ModelDefinitionError, match=message.replace("{", r"\{").replace("}", r"\}")):
        check_factors([FactorSpec("roof_age", "ramp", 1, {"low": 1, "high": 2}, reason)], ["roof_age"])


def test_reasons_json_lists_the_top_factors_with_value_points_and_text():
    factors = [
        FactorSpec("roof_age", "ramp", 60, {"low": 10, "high": 30}, "Roof is {value:.0f} years old"),
        FactorSpec("hail_inches", "step", 30, {"threshold": 1}, '{value:.2f} in "hail" {hail_where}'),
        FactorSpec("owner_occupied", "flag", 10, {}, ""),
    ]
    features = pd.DataFrame(
        {
            "roof_age": [20.0, 40.0, 5.0, 20.0],
            "hail_inches": [1.75, np.nan, 0.5, 1.75],
            "hail_where": ["0.8 mi away", None, "1.0 mi away", "0.8 mi away"],
            "owner_occupied": [True, True, False, True],
        },
        index=[11, 12, 13, 14],
    )
    scored = score_frame(features, factors)
    assert scored["score"].tolist() == [70.0, 70.0, 0.0, 70.0]
    texts = reasons_json(scored, factors, features)
    assert [json.loads(text) for text in texts] == [
        [
            # Equal points: the model's order decides.
            {"feature": "roof_age", "value": 20, "points": 30.0, "text": "Roof is 20 years old"},
            {"feature": "hail_inches", "value": 1.75, "points": 30.0, "text": '1.75 in "hail" 0.8 mi away'},
            {"feature": "owner_occupied", "value": True, "points": 10.0, "text": "owner_occupied: True"},
        ],
        [
            {"feature": "roof_age", "value": 40, "points": 60.0, "text": "Roof is 40 years old"},
            {"feature": "owner_occupied", "value": True, "points": 10.0, "text": "owner_occupied: True"},
        ],
        [],
        [
            # Equal points: the model's order decides.
            {"feature": "roof_age", "value": 20, "points": 30.0, "text": "Roof is 20 years old"},
            {"feature": "hail_inches", "value": 1.75, "points": 30.0, "text": '1.75 in "hail" 0.8 mi away'},
            {"feature": "owner_occupied", "value": True, "points": 10.0, "text": "owner_occupied: True"},
        ],
    ]


# A factor on a feature with a fallback, as scoring.services.scoring_models.factor_spec makes it.
ROOF_ON_RECORD = FactorSpec(
    "roof_age",
    "ramp",
    40,
    {"low": 10, "high": 25},
    "Roof replaced in {roof_year:.0f}, {value:.0f} years ago",
    reason_fallback="No roof replacement on record; home built in {year_built:.0f}",
    record="roof_year",
)
ROOF_DETAILS = ["roof_year", "year_built"]


def test_reason_text_uses_the_fallback_text_where_the_record_is_missing():
    assert reason_text(ROOF_ON_RECORD, 23, {"roof_year": 2003.0, "year_built": 1970.0}) == (
        "Roof replaced in 2003, 23 years ago"
    )
    for missing in (None, float("nan"), np.nan, pd.NaT):
        assert reason_text(ROOF_ON_RECORD, 56, {"roof_year": missing, "year_built": 1970.0}) == (
            "No roof replacement on record; home built in 1970"
        )
    # Not given at all: not on record.
    assert reason_text(ROOF_ON_RECORD, 56, {"year_built": 1970}) == "No roof replacement on record; home built in 1970"
    # A permit date is a record like a year.
    permit = FactorSpec(
        "years_since_trade_permit",
        "ramp",
        1,
        {"low": 12, "high": 20},
        "HVAC last permitted on {trade_permit_date}, {value:.0f} years ago",
        reason_fallback="No HVAC permit on record; home built in {year_built:.0f}",
        record="trade_permit_date",
    )
    assert reason_text(permit, 14.2, {"trade_permit_date": dt.date(2012, 9, 1), "year_built": 1990}) == (
        "HVAC last permitted on 2012-09-01, 14 years ago"
    )
    assert reason_text(permit, 36, {"trade_permit_date": None, "year_built": 1990}) == (
        "No HVAC permit on record; home built in 1990"
    )
    # The fallback text that cannot be rendered shows as itself, with the value.
    assert reason_text(ROOF_ON_RECORD, 56, {"roof_year": None, "year_built": None}) == (
        "No roof replacement on record; home built in {year_built:.0f} (56)"
    )


def test_reasons_json_renders_each_row_with_the_text_of_what_is_on_record():
    factors = [ROOF_ON_RECORD, FactorSpec("owner_occupied", "flag", 10, {}, "Owner-occupied")]
    features = pd.DataFrame(
        {
            "roof_age": [23.0, 56.0, 23.0, 56.0, 40.0, 5.0],
            "owner_occupied": [True, False, True, True, False, True],
            "roof_year": [2003.0, np.nan, np.nan, np.nan, 1986.0, np.nan],
            "year_built": [1970.0, 1970.0, 2003.0, 1970.0, 1950.0, 2021.0],
        },
        index=[1, 2, 3, 4, 5, 6],
    )
    scored = score_frame(features, factors)
    texts = [[reason["text"] for reason in json.loads(text)] for text in reasons_json(scored, factors, features)]
    assert texts == [
        ["Roof replaced in 2003, 23 years ago", "Owner-occupied"],
        ["No roof replacement on record; home built in 1970"],
        # Same age as the first row, but its roof year is not on record: the fallback text.
        ["No roof replacement on record; home built in 2003", "Owner-occupied"],
        ["No roof replacement on record; home built in 1970", "Owner-occupied"],
        ["Roof replaced in 1986, 40 years ago"],
        ["Owner-occupied"],
    ]
    # Row by row, the same texts as reason_text gives.
    for row, listed in zip(features.itertuples(), texts, strict=True):
        if row.roof_age > 10:
            assert listed[0] == reason_text(ROOF_ON_RECORD, row.roof_age, row._asdict())


def test_a_reason_on_a_feature_with_a_fallback_needs_a_text_for_it():
    without = FactorSpec(
        "roof_age", "ramp", 1, {"low": 10, "high": 25}, "Roof is {value:.0f} years old", record="roof_year"
    )
    with pytest.raises(
        ModelDefinitionError, match="factor 1 \\(roof_age\\): where roof_year is missing, roof_age falls back"
    ):
        check_factors([without], ["roof_age"], ROOF_DETAILS)
    with pytest.raises(ModelDefinitionError, match="give the reason a text for that case"):
        check_factors([without], ["roof_age"], ROOF_DETAILS)
    # No reason at all: the plain "roof_age: 56" claims no record, and needs no fallback text.
    check_factors(
        [FactorSpec("roof_age", "ramp", 1, {"low": 10, "high": 25}, record="roof_year")], ["roof_age"], ROOF_DETAILS
    )
    check_factors([ROOF_ON_RECORD], ["roof_age"], ROOF_DETAILS)


@pytest.mark.parametrize(
    ("fallback", "message"),
    [
        ("No roof replacement on record; built {year_built", "the fallback reason text is not a valid template"),
        (
            "No roof on record; built {built_in:.0f}",
            "the fallback reason text quotes built_in; it may quote {value} and",
        ),
    ],
)
def test_a_fallback_text_badly_written_or_quoting_an_unknown_name_is_refused(fallback, message):
    factor = FactorSpec(
        "roof_age", "ramp", 1, {"low": 10, "high": 25}, "Roof is {value:.0f} years old", fallback, "roof_year"
    )
    with pytest.raises(ModelDefinitionError, match=message.replace("{", r"\{").replace("}", r"\}")):
        check_factors([factor], ["roof_age"], ROOF_DETAILS)


def test_a_fallback_text_without_a_fallback_or_with_an_unknown_record_is_refused():
    never = FactorSpec("home_age", "ramp", 1, {"low": 10, "high": 25}, "Home is {value:.0f} years old", "Unknown")
    with pytest.raises(ModelDefinitionError, match="home_age has no fallback, so the fallback reason text would never"):
        check_factors([never], ["home_age"])
    unknown = FactorSpec("roof_age", "ramp", 1, {"low": 10, "high": 25}, "Roof {value}", "No roof", "roof_colour")
    with pytest.raises(ModelDefinitionError, match="unknown record column 'roof_colour'"):
        check_factors([unknown], ["roof_age"], ROOF_DETAILS)
