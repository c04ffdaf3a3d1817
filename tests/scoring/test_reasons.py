"""Reasons say what is on record: the default models' texts, their fallbacks, and version 2 of the defaults."""

import datetime as dt
import importlib
import json
import re

import pandas as pd
import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError

from scoring.engine import FactorSpec, check_factors, reason_text, reasons_json, score_frame, transform
from scoring.features import DETAILS, FALLBACKS, FEATURES, REASON_TEMPLATES, property_features
from scoring.models import Factor, ScoringModel, Trade
from scoring.services.scoring_models import factor_spec, scoring_model_activate, scoring_model_check
from tests.scoring.test_features import AS_OF, hail, homes, storms

V1 = importlib.import_module("scoring.migrations.0005_default_scoring_models")
V1_STORM_TEXTS = importlib.import_module("scoring.migrations.0008_model_versions_frozen").HAIL_REASONS
V2 = importlib.import_module("scoring.migrations.0017_default_models_v2")
TRADES = {"roofing": "Roofing", "solar": "Solar", "hvac": "HVAC", "windows": "Windows"}
# What presents a value as a record: a last permit or replacement, a date, "N years ago".
CLAIMS = re.compile(r"\b(last|replaced|permitted|years ago)\b|\bon \d{4}-", re.IGNORECASE)


def spec(feature, transform_name, params, weight, reason, reason_fallback) -> FactorSpec:
    """A default model's factor as factor_spec makes it from its row."""
    return FactorSpec(feature, transform_name, weight, params, reason, reason_fallback, FALLBACKS.get(feature, ""))


FALLBACK_FACTORS = [
    pytest.param(slug, spec(*factor), id=f"{slug}-{factor[0]}")
    for slug, factors in V2.DEFAULT_MODELS_V2.items()
    for factor in factors
    if factor[0] in FALLBACKS
]


def features_of(factor: FactorSpec, candidates: list[dict]) -> pd.DataFrame:
    """The features of the first candidate home for which the factor scores points (so it is a reason)."""
    for candidate in candidates:
        frame = property_features(homes(candidate), storms(), as_of=AS_OF)
        if transform(factor, frame[factor.feature])[0] > 0:
            return frame
    raise AssertionError(f"no candidate home gives {factor.feature} points")


def rendered(factor: FactorSpec, frame: pd.DataFrame) -> str:
    """The text of the factor's reason as a run writes it, checked against reason_text for the same row."""
    scored = score_frame(frame, [factor])
    (reason,) = json.loads(reasons_json(scored, [factor], frame)[0])
    row = frame.iloc[0]
    assert reason["text"] == reason_text(factor, row[factor.feature], row.to_dict())
    return reason["text"]


def test_every_default_factor_on_a_feature_with_a_fallback_has_a_fallback_text():
    assert FALLBACK_FACTORS, "the default models score fallback features"
    for param in FALLBACK_FACTORS:
        _slug, factor = param.values
        assert factor.reason, factor
        assert factor.reason_fallback, factor


@pytest.mark.parametrize(("slug", "factor"), FALLBACK_FACTORS)
def test_without_the_record_a_default_reason_quotes_the_year_built_and_claims_nothing(slug, factor):
    # Homes with no roof year and no permit of the trade on record: an old one, or a young one for the
    # factors that favour young roofs.
    frame = features_of(factor, [{"year_built": 1974}, {"year_built": 2018}])
    built = int(frame["year_built"].iloc[0])

    text = rendered(factor, frame)

    assert text == factor.reason_fallback.format(year_built=float(built), value=frame[factor.feature].iloc[0])
    assert f"built in {built}" in text
    assert "on record" in text
    assert not CLAIMS.search(text), text


@pytest.mark.parametrize(("slug", "factor"), FALLBACK_FACTORS)
def test_with_the_record_a_default_reason_quotes_its_date_or_year(slug, factor):
    if factor.record == "roof_year":
        candidates = [{"year_built": 1960, "roof_year": year} for year in (2001, 2019)]
    else:
        candidates = [{"year_built": 1960, "trade_permit_date": dt.date(year, 3, 15)} for year in (1999, 2004, 2012)]
    frame = features_of(factor, candidates)
    record = frame[factor.record].iloc[0]
    quoted = str(int(record)) if factor.record == "roof_year" else record.isoformat()

    text = rendered(factor, frame)

    assert quoted in text
    assert f"{frame[factor.feature].iloc[0]:.0f} years ago" in text
    assert "on record" not in text


def test_the_generic_reason_templates_follow_the_same_rule():
    """What a factor says when it has no text of its own (a learned version) is truthful as well."""
    factors = [
        FactorSpec(feature, "ramp", 1, {"low": 0, "high": 1}, reason, fallback, FALLBACKS.get(feature, ""))
        for feature, (reason, fallback) in REASON_TEMPLATES.items()
    ]
    check_factors(factors, FEATURES, DETAILS)
    for factor in factors:
        if factor.record:
            text = reason_text(factor, 52, {"year_built": 1974.0, factor.record: None})
            assert "built in 1974" in text
            assert not CLAIMS.search(text), text


@pytest.mark.parametrize("slug", list(V2.DEFAULT_MODELS_V2))
def test_version_2_defaults_are_valid_and_their_weights_read_as_points(slug):
    factors = [spec(*factor) for factor in V2.DEFAULT_MODELS_V2[slug]]
    check_factors(factors, FEATURES, DETAILS)
    assert sum(factor.weight for factor in factors) == 100


def roofing_score(factors: list[FactorSpec], *, wind_days: int = 5, **home) -> float:
    wind = hail(70, AS_OF - dt.timedelta(days=wind_days), kind="wind")
    frame = property_features(homes(home), storms(wind), as_of=AS_OF)
    return float(score_frame(frame, factors)["score"].iloc[0])


def test_roofing_version_2_ranks_an_old_roof_high_after_a_wind_storm_without_hail():
    """A 40-year-old roof, a 70 mph wind five days ago, bought a month ago, owner-occupied; no hail."""
    old_roof = {"year_built": 1986, "last_sale_date": AS_OF - dt.timedelta(days=30)}
    version_1 = [FactorSpec(f, t, w, p, r) for f, t, p, w, r in V1.DEFAULT_MODELS["roofing"]]
    version_2 = [spec(*factor) for factor in V2.DEFAULT_MODELS_V2["roofing"]]

    assert roofing_score(version_1, **old_roof) < 56  # wind was no factor: 55 points at most without hail
    # 35 (roof) + 12 + 7.4 (wind, 5 days) + 13.4 (sale, 30 days) + 5 (no roofing permit) + 5 (owner)
    assert roofing_score(version_2, **old_roof) == 77.77
    # The storm and the sale on the day of scoring: 80 points, without hail.
    assert roofing_score(version_2, wind_days=0, **old_roof | {"last_sale_date": AS_OF}) == 80.0
    assert {factor.feature for factor in version_2} >= {"wind_mph", "days_since_wind", "hail_inches"}


@pytest.mark.django_db
def test_after_migrating_each_default_trade_runs_version_2_and_version_1_is_retired_unchanged():
    for slug in TRADES:
        active = ScoringModel.objects.get(trade__slug=slug, status=ScoringModel.Status.ACTIVE)
        assert (active.version, active.notes) == (2, V2.NOTES)
        factors = list(active.factors.order_by("position"))
        assert [(f.feature, f.transform, f.params, f.weight, f.reason, f.reason_fallback) for f in factors] == [
            tuple(factor) for factor in V2.DEFAULT_MODELS_V2[slug]
        ]
        # As strict as for a draft: every text written out, none lent by the frozen-version rule.
        check_factors([factor_spec(factor) for factor in factors], FEATURES, DETAILS)
        assert scoring_model_check(model=active)

        retired = ScoringModel.objects.get(trade__slug=slug, version=1)
        assert retired.status == ScoringModel.Status.RETIRED
        assert list(retired.factors.order_by("position").values_list("reason", "reason_fallback")) == [
            (V1_STORM_TEXTS.get(reason, reason), "") for *_, reason in V1.DEFAULT_MODELS[slug]
        ]


@pytest.mark.django_db
def test_version_2_replaces_only_an_untouched_default_version_1_once():
    for slug, name in TRADES.items():
        Trade.objects.get_or_create(slug=slug, defaults={"name": name})
    ScoringModel.objects.all().delete()
    V1.create_default_models(django_apps, None)
    # Staff run their own model for solar, and drafted a version 2 of windows.
    solar = ScoringModel.objects.get(trade__slug="solar", version=1)
    ScoringModel.objects.filter(pk=solar.pk).update(notes="Tuned by staff")
    draft = ScoringModel.objects.create(trade=Trade.objects.get(slug="windows"), version=2, notes="Staff draft")

    V2.create_version_2(django_apps, None)
    V2.create_version_2(django_apps, None)

    assert sorted(ScoringModel.objects.values_list("trade__slug", "version", "status")) == [
        ("hvac", 1, "retired"),
        ("hvac", 2, "active"),
        ("roofing", 1, "retired"),
        ("roofing", 2, "active"),
        ("solar", 1, "active"),
        ("windows", 1, "retired"),
        ("windows", 2, "draft"),
        ("windows", 3, "active"),
    ]
    assert ScoringModel.objects.get(pk=draft.pk).notes == "Staff draft"
    assert Factor.objects.filter(model__version=3, model__trade__slug="windows").count() == len(
        V2.DEFAULT_MODELS_V2["windows"]
    )


@pytest.mark.django_db
def test_a_draft_with_a_reason_but_no_fallback_text_is_not_activated():
    trade = Trade.objects.get(slug="roofing")
    draft = ScoringModel.objects.create(trade=trade, version=9)
    Factor.objects.create(model=draft, position=0, feature="roof_age", transform="ramp", params={"low": 10, "high": 25},
                          weight=1, reason="Roof is {value:.0f} years old")  # fmt: skip

    with pytest.raises(ValidationError, match="where roof_year is missing, roof_age falls back to another fact"):
        scoring_model_activate(model=draft)

    Factor.objects.filter(model=draft).update(reason_fallback="No roof replacement on record; built {year_built:.0f}")
    assert scoring_model_activate(model=draft).status == ScoringModel.Status.ACTIVE


@pytest.mark.django_db
def test_a_frozen_version_without_fallback_texts_shows_the_generic_one_where_the_record_is_missing():
    """A version activated before fallback texts existed keeps scoring, and never presents a fallback
    as a record."""
    retired = ScoringModel.objects.get(trade__slug="hvac", version=1)
    (permit,) = [spec for spec in scoring_model_check(model=retired) if spec.feature == "years_since_trade_permit"]

    assert permit.reason == "HVAC last permitted {value:.0f} years ago"  # as version 1 wrote it
    assert permit.reason_fallback == REASON_TEMPLATES["years_since_trade_permit"][1]
    assert reason_text(permit, 52, {"trade_permit_date": None, "year_built": 1974.0}) == (
        "No permit of the trade on record; home built in 1974"
    )
    assert reason_text(permit, 16, {"trade_permit_date": dt.date(2010, 5, 1), "year_built": 1974.0}) == (
        "HVAC last permitted 16 years ago"
    )
