"""Learning a trade's scoring model from its leads' outcomes (leads.services.learning): leads with outcomes
drawn from a known logistic of known factors, the features read as of each lead's day, the draft, its
backtest on a time split, and the activation rule; the learn_model command and the admin's action."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from leads.errors import LearningRefused, NotEnoughOutcomes
from leads.models import Lead
from leads.selectors import lead_outcomes_known
from leads.services import learning
from leads.services.learning import model_learn, outcome_features
from scoring import engine, quality
from scoring.learning import WEIGHT_CAP, backtest_beats_active
from scoring.models import Factor, Permit, Property, ScoringModel, StormEvent, Trade
from scoring.services.scoring_models import scoring_model_activate, scoring_model_check
from tests.admin_pages import messages_of, page_of
from tests.leads.factories import filters, owner

FIRST_DAY = dt.date(2026, 3, 2)
NOW = dt.datetime(2026, 4, 1, 12, tzinfo=dt.UTC)
ROOF = {
    "feature": "roof_age",
    "transform": "step",
    "params": {"threshold": 20},
    "reason": "Roof is {value:.0f} years old",
    "reason_fallback": "No roof replacement on record; home built in {year_built:.0f}",
}
OWNER = {"feature": "owner_occupied", "transform": "flag", "params": {}, "reason": "Owner-occupied"}
CONDO = {"feature": "property_type", "transform": "lookup", "params": {"values": {"condo": 1}}, "reason": "A {value}"}
VALUE = {"feature": "market_value", "transform": "ramp", "params": {"low": 100_000, "high": 900_000}, "reason": "Worth"}


def version(trade: Trade, *factors: dict, weights: tuple[float, ...] | None = None) -> ScoringModel:
    """A new active version of the trade's model with these factors (weight 1 each unless given)."""
    last = ScoringModel.objects.filter(trade=trade).order_by("-version").first()
    model = ScoringModel.objects.create(trade=trade, version=(last.version if last else 0) + 1)
    for position, factor in enumerate(factors):
        weight = weights[position] if weights else 1.0
        Factor.objects.create(model=model, position=position, weight=weight, **factor)
    return scoring_model_activate(model=model)


def market(
    trade: Trade,
    model: ScoringModel,
    *,
    homes: int = 400,
    days: int = 20,
    betas: tuple[float, float, float] = (2.4, 0.8, 0.0),
    intercept: float = -2.5,
    seed: int = 1,
) -> list[Property]:
    """`homes` homes with controlled features (roof year, owner-occupied, condo or not, value), each a lead
    of the trade on each of `days` days from FIRST_DAY, converted with the chance of the logistic of
    betas x (roof 20 years or older, owner-occupied, condo) + intercept; the others rejected."""
    rng = np.random.default_rng(seed)
    contractor = owner(trade)
    roof_year = rng.integers(1980, 2021, homes)
    occupied = rng.random(homes) < 0.6
    condo = rng.random(homes) < 0.4
    value = rng.integers(100_000, 900_000, homes)
    properties = Property.objects.bulk_create(
        Property(
            parcel_id=f"L-{seed}-{number:05d}",
            address=f"{number} Learning St",
            city="Denver",
            state="CO",
            zip_code_id="80202",
            year_built=int(roof_year[number]) - 5,
            roof_year=int(roof_year[number]),
            owner_occupied=bool(occupied[number]),
            property_type="condo" if condo[number] else "single_family",
            market_value=int(value[number]),
        )
        for number in range(homes)
    )
    values = np.column_stack([(2026 - roof_year) >= 20, occupied, condo]).astype(float)
    chance = 1 / (1 + np.exp(-(intercept + values @ np.array(betas))))
    leads = []
    for day in range(days):
        generated_on = FIRST_DAY + dt.timedelta(days=day)
        at = dt.datetime.combine(generated_on, dt.time(9), tzinfo=dt.UTC)
        converted = rng.random(homes) < chance
        leads.extend(
            Lead(
                property=home,
                trade=trade,
                zip_code="80202",
                state=Lead.State.CONVERTED if converted[number] else Lead.State.REJECTED,
                contractor=contractor,
                score=50,
                urgency=0,
                priority=50,
                model=model,
                model_version=model.version,
                generated_on=generated_on,
                created_at=at,
                assigned_at=at,
                closed_at=at + dt.timedelta(days=3),
            )
            for number, home in enumerate(properties)
        )
    Lead.objects.bulk_create(leads, batch_size=5000)
    return properties


def weights_of(model: ScoringModel) -> dict[str, float]:
    return {factor.feature: factor.weight for factor in model.factors.all()}


# --- what is learned ------------------------------------------------------------------------------


def test_learning_recovers_the_weights_outcomes_were_simulated_with(roofing, zip_codes):
    """Outcomes drawn with roof 2.4 : owner-occupied 0.8 : condo 0 learn a draft with the roof weighing
    3x the owner (within 25%), the condo factor dropped, and the active version's reason texts."""
    active = version(roofing, ROOF, OWNER, CONDO)
    market(roofing, active)

    learned = model_learn(trade=roofing, now=NOW, basis=False)

    draft = learned.model
    assert draft is not None
    assert draft.status == ScoringModel.Status.DRAFT
    assert draft.version == active.version + 1
    weights = weights_of(draft)
    assert set(weights) == {"roof_age", "owner_occupied"}
    assert weights["roof_age"] / weights["owner_occupied"] == pytest.approx(3.0, rel=0.25)
    assert sum(weights.values()) == pytest.approx(100, abs=0.02)
    assert [factor.feature for factor in draft.factors.order_by("position")] == ["roof_age", "owner_occupied"]
    roof = draft.factors.get(feature="roof_age")
    assert (roof.transform, roof.params, roof.reason) == ("step", {"threshold": 20}, ROOF["reason"])
    # Roof age falls back to the home's age: the learned factor says so when it does.
    assert roof.reason_fallback == "No roof replacement on record; home built in {year_built:.0f}"
    assert draft.storm_window_days == active.storm_window_days
    assert "Learned from 8,000 leads with a known outcome" in draft.notes
    assert draft.backtest == learned.backtest
    assert learned.activated is False
    assert ScoringModel.objects.get(trade=roofing, status=ScoringModel.Status.ACTIVE) == active


def test_with_the_catalogues_basis_every_weight_is_positive_and_the_draft_ranks_like_the_truth(roofing, zip_codes):
    """The active version scores the home's value, which says nothing; the basis finds the roof and the owner."""
    active = version(roofing, VALUE)
    market(roofing, active, homes=300, days=12, seed=2)

    learned = model_learn(trade=roofing, now=NOW)

    draft = learned.model
    assert draft is not None
    factors = list(draft.factors.order_by("position"))
    assert all(factor.weight > 0 for factor in factors)
    assert sum(factor.weight for factor in factors) == pytest.approx(100, abs=0.05)
    # Most of the weight on age (the basis' steps and ramp approximating the roof's step at 20 years; every
    # home here was built 5 years before its roof, so the home's age says the same), the owner's flag kept,
    # little on the value the outcomes were drawn without.
    by_feature: dict[str, float] = {}
    for factor in factors:
        by_feature[factor.feature] = by_feature.get(factor.feature, 0) + factor.weight
    assert by_feature.get("roof_age", 0) + by_feature.get("home_age", 0) > 60
    assert by_feature["owner_occupied"] > 5
    assert by_feature.get("market_value", 0) < 10
    assert learned.backtest["candidates"] > 20
    candidate, previous = learned.backtest["candidate"], learned.backtest["active"]
    assert candidate["auc"] > 0.65
    assert previous["auc_low"] < 0.5 < previous["auc_high"] + 0.02
    assert backtest_beats_active(learned.backtest)
    assert candidate["lift"] > previous["lift"]


def test_the_backtest_trains_only_on_the_days_before_the_split_and_tests_on_the_rest(roofing, zip_codes, monkeypatch):
    active = version(roofing, ROOF, OWNER, CONDO)
    market(roofing, active, homes=100, days=8, seed=3)
    fits = []
    real_fit = learning.fit_nonnegative

    def recorded(X, y, weight):
        fits.append((len(y), int(np.sum(y))))
        return real_fit(X, y, weight)

    monkeypatch.setattr(learning, "fit_nonnegative", recorded)
    learned = model_learn(trade=roofing, now=NOW, test_share=0.25, basis=False)

    # 8 days: the older 6 train, the newer 2 test.
    split_day = FIRST_DAY + dt.timedelta(days=6)
    backtest = learned.backtest
    assert backtest["split_day"] == split_day.isoformat()
    before = Lead.objects.filter(trade=roofing, generated_on__lt=split_day)
    after = Lead.objects.filter(trade=roofing, generated_on__gte=split_day)
    assert backtest["train"] == {"outcomes": 600, "conversions": before.filter(state="converted").count()}
    assert backtest["test"] == {"outcomes": 200, "conversions": after.filter(state="converted").count()}
    # The first fit saw exactly the training days' leads; the draft's fit saw all of them.
    assert fits[0] == (600, backtest["train"]["conversions"])
    assert fits[1] == (800, backtest["conversions"])
    assert backtest["first_day"] == FIRST_DAY.isoformat()
    assert backtest["last_day"] == (FIRST_DAY + dt.timedelta(days=7)).isoformat()
    assert backtest["learned_at"] == NOW.isoformat()


def test_learning_can_be_limited_to_the_newest_outcomes_up_to_a_day(roofing, zip_codes, settings):
    settings.LEARN_MIN_OUTCOMES = 100
    active = version(roofing, ROOF, OWNER, CONDO)
    market(roofing, active, homes=100, days=8, seed=3)

    learned = model_learn(trade=roofing, now=NOW, last_day=FIRST_DAY + dt.timedelta(days=5), most_outcomes=250)

    # Days 1-6 hold 600 outcomes; the newest 250 are day 6's 100, day 5's 100 and 50 of day 4's.
    backtest = learned.backtest
    assert backtest["outcomes"] == 250
    assert backtest["first_day"] == (FIRST_DAY + dt.timedelta(days=3)).isoformat()
    assert backtest["last_day"] == (FIRST_DAY + dt.timedelta(days=5)).isoformat()
    with pytest.raises(LearningRefused, match="at least one outcome"):
        model_learn(trade=roofing, now=NOW, most_outcomes=0)


def test_exploration_leads_weigh_their_sampling_weight_in_the_fit(roofing, zip_codes):
    """Among homes with a roof younger than 20 years (the ones below the old model's floor, where exploration
    leads come from), owner-occupancy decides who converts. Weighted as the many homes they stand for, those
    leads make the owner's factor weigh more than with every lead counted once."""
    active = version(roofing, ROOF, OWNER)
    homes = market(roofing, active, homes=300, days=10, betas=(2.4, 0.4, 0.0), seed=4)
    young = [home for home in homes if 2026 - home.roof_year < 20]
    rng = np.random.default_rng(4)
    for home in young:
        chance = 0.5 if home.owner_occupied else 0.03
        for lead in Lead.objects.filter(property=home):
            converted = rng.random() < chance
            lead.state = Lead.State.CONVERTED if converted else Lead.State.REJECTED
            lead.save(update_fields=["state"])
    plain = weights_of(model_learn(trade=roofing, now=NOW, basis=False).model)

    Lead.objects.filter(property__in=young).update(exploration=True, sampling_weight=8.0)
    weighted = weights_of(model_learn(trade=roofing, now=NOW, basis=False).model)

    assert lead_outcomes_known(trade_id=roofing.pk)["sampling_weight"].max() == 8.0
    assert weighted["owner_occupied"] > plain["owner_occupied"] + 5  # points of 100


def test_a_few_exploration_leads_of_a_huge_pool_do_not_outvote_every_other_lead(roofing, zip_codes):
    """Eight converted exploration leads drawn from a pool of 2,000 homes each, all young roofs of landlords
    (the homes the market's other 3,000 leads say convert least): at their full sampling weight they would
    outweigh every other lead five times over; capped (scoring.learning.WEIGHT_CAP), the draft stays the
    one the 3,000 leads teach, within a few points of 100."""
    active = version(roofing, ROOF, OWNER)
    homes = market(roofing, active, homes=300, days=10, betas=(2.4, 0.8, 0.0), seed=6)
    plain = weights_of(model_learn(trade=roofing, now=NOW, basis=False).model)
    unlikely = [home.pk for home in homes if 2026 - home.roof_year < 20 and not home.owner_occupied][:8]
    picked = [Lead.objects.filter(property_id=home).order_by("generated_on").first().pk for home in unlikely]
    Lead.objects.filter(pk__in=picked).update(state=Lead.State.CONVERTED, exploration=True, sampling_weight=2000.0)

    outlived = weights_of(model_learn(trade=roofing, now=NOW, basis=False).model)

    assert len(picked) == 8
    assert lead_outcomes_known(trade_id=roofing.pk)["sampling_weight"].sum() == 3000 - 8 + 8 * 2000
    assert plain["roof_age"] > plain["owner_occupied"]
    assert abs(outlived["roof_age"] - plain["roof_age"]) < 5


def test_the_backtest_weighs_the_held_out_leads_as_the_fit_does(roofing, zip_codes):
    """One converted exploration lead of a pool of 3,000 among the held-out days' leads, on a home the
    active version scores low: the active version's held-out AUC is the one with that lead weighing 5
    (WEIGHT_CAP), not 3,000, where it alone would outweigh every other held-out lead."""
    active = version(roofing, ROOF, OWNER)
    market(roofing, active, homes=100, days=8, seed=7)
    split_day = FIRST_DAY + dt.timedelta(days=6)
    held_out = Lead.objects.filter(trade=roofing, generated_on__gte=split_day, state=Lead.State.REJECTED)
    low = min(held_out.select_related("property"), key=lambda lead: (2026 - lead.property.roof_year, lead.pk))
    Lead.objects.filter(pk=low.pk).update(state=Lead.State.CONVERTED, exploration=True, sampling_weight=3000.0)

    backtest = model_learn(trade=roofing, now=NOW, test_share=0.25, basis=False).backtest

    test = lead_outcomes_known(trade_id=roofing.pk, first_day=split_day)
    features = outcome_features(trade_id=roofing.pk, outcomes=test, storm_window_days=active.storm_window_days)
    score = engine.score_frame(features, scoring_model_check(model=active))["score"].to_numpy()
    label, weight = test["converted"].to_numpy(dtype=float), test["sampling_weight"].to_numpy(dtype=float)
    capped, full = quality.auc(score, label, np.minimum(weight, WEIGHT_CAP)), quality.auc(score, label, weight)
    assert backtest["active"]["auc"] == pytest.approx(capped)
    assert abs(capped - full) > 0.05


def test_features_are_read_as_they_stood_on_each_leads_day(roofing, zip_codes):
    """A roofing permit issued and a hailstorm on day 3: the leads of days 1-2 see neither, day 4's both."""
    active = version(roofing, ROOF)
    (home,) = market(roofing, active, homes=1, days=4, intercept=0.0, seed=5)
    day = FIRST_DAY + dt.timedelta(days=2)
    Permit.objects.create(property=home, permit_number="R-1", issued_date=day, permit_type="Reroof", trade=roofing)
    StormEvent.objects.create(event_id="H-1", event_date=day, kind="hail", magnitude=1.5, zip_code_id="80202")
    outcomes = lead_outcomes_known(trade_id=roofing.pk)

    features = outcome_features(trade_id=roofing.pk, outcomes=outcomes, storm_window_days=90)

    home_age = 2026 - home.year_built
    assert features["years_since_trade_permit"].tolist() == [home_age, home_age, 0.0, 0.0]
    assert features["trade_permit_date"].tolist()[1:3] == [None, day]
    assert features["days_since_hail"].fillna(-1).tolist() == [-1, -1, 0, 1]
    assert features["hail_inches"].fillna(0).tolist() == [0, 0, 1.5, 1.5]


# --- refusals and activation ----------------------------------------------------------------------


def test_too_few_outcomes_are_refused_and_nothing_is_made(roofing, zip_codes, settings):
    active = version(roofing, ROOF, OWNER)
    market(roofing, active, homes=50, days=4, seed=6)
    settings.LEARN_MIN_OUTCOMES = 201
    versions = ScoringModel.objects.filter(trade=roofing).count()

    with pytest.raises(NotEnoughOutcomes, match="has 200 leads with a known outcome; learning needs at least 201"):
        model_learn(trade=roofing, now=NOW)

    Lead.objects.filter(trade=roofing).update(state=Lead.State.REJECTED)
    settings.LEARN_MIN_OUTCOMES = 100
    with pytest.raises(NotEnoughOutcomes, match="all unconverted"):
        model_learn(trade=roofing, now=NOW)
    assert ScoringModel.objects.filter(trade=roofing).count() == versions


def test_a_trade_without_an_active_version_or_with_a_single_day_is_refused(roofing, zip_codes, settings):
    settings.LEARN_MIN_OUTCOMES = 10
    active = version(roofing, ROOF, OWNER)
    market(roofing, active, homes=60, days=1, intercept=0.0, seed=7)
    with pytest.raises(LearningRefused, match="all of 2026-03-02"):
        model_learn(trade=roofing, now=NOW)
    with pytest.raises(LearningRefused, match="between 0 and 1"):
        model_learn(trade=roofing, now=NOW, test_share=1.0)
    ScoringModel.objects.filter(pk=active.pk).update(status=ScoringModel.Status.RETIRED)
    with pytest.raises(LearningRefused, match="no active scoring model version"):
        model_learn(trade=roofing, now=NOW)


def test_a_better_draft_is_not_activated_without_the_setting(roofing, zip_codes, settings):
    settings.LEARN_AUTO_ACTIVATE = False
    active = version(roofing, VALUE)
    market(roofing, active, homes=300, days=12, seed=2)

    learned = model_learn(trade=roofing, now=NOW)

    assert backtest_beats_active(learned.backtest)
    assert learned.activated is False
    assert learned.model.status == ScoringModel.Status.DRAFT
    assert "unless LEARN_AUTO_ACTIVATE is on" in learned.why
    assert ScoringModel.objects.get(trade=roofing, status=ScoringModel.Status.ACTIVE) == active


def test_with_the_setting_a_draft_beating_the_active_interval_is_activated(roofing, zip_codes, settings):
    settings.LEARN_AUTO_ACTIVATE = True
    active = version(roofing, VALUE)
    market(roofing, active, homes=300, days=12, seed=2)

    learned = model_learn(trade=roofing, now=NOW)

    assert learned.activated is True
    assert learned.model.status == ScoringModel.Status.ACTIVE
    active.refresh_from_db()
    assert active.status == ScoringModel.Status.RETIRED
    assert f"above v{active.version}'s interval" in learned.why


def test_with_the_setting_a_draft_within_the_active_interval_stays_a_draft(roofing, zip_codes, settings):
    settings.LEARN_AUTO_ACTIVATE = False
    active = version(roofing, ROOF, OWNER, weights=(3.0, 1.0))
    market(roofing, active, homes=300, days=12, seed=2)

    learned = model_learn(trade=roofing, now=NOW, activate_if_better=True)

    assert not backtest_beats_active(learned.backtest)
    assert learned.activated is False
    assert learned.model.status == ScoringModel.Status.DRAFT
    assert f"not above v{active.version}'s interval" in learned.why
    assert ScoringModel.objects.get(trade=roofing, status=ScoringModel.Status.ACTIVE) == active


# --- the command and the admin --------------------------------------------------------------------


def test_learn_model_prints_the_comparison_and_the_drafts_factors(roofing, zip_codes):
    active = version(roofing, ROOF, OWNER, CONDO)
    market(roofing, active, homes=200, days=8, seed=8)
    out = io.StringIO()

    call_command("learn_model", "--trade", "roofing", "--test-share", "0.25", stdout=out)

    draft = ScoringModel.objects.get(trade=roofing, status=ScoringModel.Status.DRAFT)
    lines = out.getvalue().splitlines()
    conversions = draft.backtest["conversions"]
    head = f"Roofing: draft v{draft.version} learned from 1,600 outcomes ({conversions:,} converted)"
    assert lines[0] == f"{head}, 2026-03-02..2026-03-09"
    assert lines[1].startswith("Backtest: trained on 1,200 outcomes")
    assert lines[2].startswith("Held-out AUC: candidate 0.")
    assert f"active v{active.version} 0." in lines[2]
    assert lines[3].startswith("Held-out top-decile lift: candidate ")
    assert lines[5].startswith("Activated: no (")
    assert lines[6] == "Factors (weight, feature, transform, params, reason):"
    factors = list(draft.factors.order_by("position"))
    assert len(lines) == 7 + len(factors)
    assert lines[7].split()[:2] == [f"{factors[0].weight:.2f}", factors[0].feature]


def test_learn_model_shows_a_refusal_and_an_unknown_trade_as_errors(roofing, zip_codes):
    version(roofing, ROOF)
    with pytest.raises(CommandError, match="has 0 leads with a known outcome"):
        call_command("learn_model", "--trade", "roofing", stdout=io.StringIO())
    with pytest.raises(CommandError, match="unknown trade gutters"):
        call_command("learn_model", "--trade", "gutters", stdout=io.StringIO())
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("learn_model", "--trade", "roofing", "--test-share", "0", stdout=io.StringIO())


def test_the_filters_admin_learns_a_draft_per_trade_and_its_preview_shows_the_backtest(
    roofing, zip_codes, staff_client, trades, settings
):
    active = version(roofing, VALUE)
    market(roofing, active, homes=200, days=8, seed=9)
    selected = [filters(roofing).pk, filters(trades["hvac"]).pk]  # HVAC: no outcome yet

    response = staff_client.post(
        "/admin/leads/leadfilter/",
        {"action": "learn_model", "_selected_action": selected},
        follow=True,
    )

    draft = ScoringModel.objects.get(trade=roofing, status=ScoringModel.Status.DRAFT)
    shown = {text.split(":")[0]: (level, text) for level, text in messages_of(response)}
    minimum = settings.LEARN_MIN_OUTCOMES
    refusal = f"HVAC: HVAC has 0 leads with a known outcome; learning needs at least {minimum:,} (LEARN_MIN_OUTCOMES)"
    assert shown["HVAC"] == ("error", refusal)
    level, text = shown["Roofing"]
    assert level == "success"
    assert text.startswith(f"Roofing: draft v{draft.version} learned from 1,600 outcomes")
    assert "Compare it with the active version." in text
    assert "Activated: no (" in text
    preview = page_of(staff_client.get(f"/admin/scoring/scoringmodel/{draft.pk}/preview/"))
    backtest = draft.backtest
    assert "Backtest on outcomes" in preview
    assert f"Active v{active.version} when learned" in preview
    candidate = backtest["candidate"]
    assert f"{candidate['auc']:.3f} [{candidate['auc_low']:.3f}, {candidate['auc_high']:.3f}]" in preview
    assert f"{backtest['test']['outcomes']:,} ({backtest['test']['conversions']:,} converted)" in preview
    assert f"before {backtest['split_day']}" in preview


def test_learning_needs_the_permission_to_add_scoring_model_versions(roofing, zip_codes, client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("filters", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_leadfilter", "change_leadfilter"]))
    client.force_login(user)
    page = page_of(client.get("/admin/leads/leadfilter/"))
    assert "Learn a new scoring model version from outcomes" not in page
    user.user_permissions.add(Permission.objects.get(codename="add_scoringmodel"))
    page = page_of(client.get("/admin/leads/leadfilter/"))
    assert "Learn a new scoring model version from outcomes" in page
