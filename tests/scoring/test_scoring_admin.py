"""Scoring models, runs and scores in the admin: preview of a draft, read-only runs and scores."""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command

from scoring.admin import market as market_admin
from scoring.models import Factor, Property, Score, ScoringModel, ScoringRun, Trade
from scoring.services import runs
from scoring.services.preview import scoring_model_preview
from tests.admin_pages import messages_of
from tests.scoring.test_scoring_runs import AS_OF, home, model_version, storm


@pytest.fixture
def market(zip_codes):
    from scoring.models import Trade

    trade, _ = Trade.objects.get_or_create(slug="roofing", defaults={"name": "Roofing"})
    ScoringModel.objects.filter(trade=trade).delete()
    active = model_version(trade, 1)
    homes = [home(f"P-{n}", year_built=1990 + 5 * n) for n in range(5)]  # roofs of 36, 31, ... 16 years
    storm("P-H1", 1.5, AS_OF - dt.timedelta(days=30))
    draft = ScoringModel.objects.create(trade=trade, version=2, notes="Roof age alone")
    Factor.objects.create(model=draft, position=0, feature="roof_age", transform="ramp", params={"low": 10, "high": 40},
                          weight=1, reason="Roof is {value:.0f} years old",
                          reason_fallback="No roof replacement on record; home built in {year_built:.0f}")  # fmt: skip
    return trade, active, draft, homes


def test_a_draft_is_previewed_beside_the_active_version_on_the_same_sample(market):
    _trade, active, draft, _homes = market

    preview = scoring_model_preview(model=draft, as_of=AS_OF)

    assert (preview.active, preview.sample_size) == (active, 5)
    # Roof ages 36, 31, 26, 21, 16 on a 10-40 ramp.
    assert [(row["property"].parcel_id, row["score"]) for row in preview.top] == [
        ("P-0", 86.67), ("P-1", 70.0), ("P-2", 53.33), ("P-3", 36.67), ("P-4", 20.0),
    ]  # fmt: skip
    # No roof year on record: the reason says what is on record.
    assert preview.top[0]["reasons"] == ["No roof replacement on record; home built in 1990"]
    # The active version adds the hail: 1.5 in, 30 days ago (30 + 20 x 0.5 points) to every roof.
    assert [row["active_score"] for row in preview.top] == [90.0, 90.0, 80.0, 67.5, 55.0]
    assert (preview.distribution["count"], preview.distribution["p50"]) == (5, 53.3)
    assert preview.active_distribution["p50"] == 80.0
    assert ScoringRun.objects.count() == 0  # nothing written


def test_the_admin_preview_page_shows_the_distribution_chart_and_the_best_properties(staff_client, market):
    _, active, draft, _ = market
    page = staff_client.get(f"/admin/scoring/scoringmodel/{draft.pk}/preview/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "<svg" in text
    assert "Histogram of scores" in text
    assert "No roof replacement on record; home built in 1990" in text
    assert str(active) in text
    change = staff_client.get(f"/admin/scoring/scoringmodel/{draft.pk}/change/").content.decode()
    assert f"/admin/scoring/scoringmodel/{draft.pk}/preview/" in change


def test_a_draft_that_cannot_be_computed_is_not_previewed_and_says_why(staff_client, market):
    _, _, draft, _ = market
    Factor.objects.create(model=draft, position=1, feature="days_since_hail", transform="decay",
                          params={"half_life_days": -5}, weight=1)  # fmt: skip

    page = staff_client.get(f"/admin/scoring/scoringmodel/{draft.pk}/preview/", follow=True)

    assert page.redirect_chain[-1][0] == f"/admin/scoring/scoringmodel/{draft.pk}/change/"
    assert "This version cannot be previewed yet" in page.content.decode()
    assert "the half-life must be positive (got -5 days)" in page.content.decode()


def test_a_bad_definition_saved_in_the_admin_is_kept_as_a_draft_with_a_warning(staff_client, market):
    trade, active, _, _ = market
    form = {
        "trade": trade.pk, "version": 3, "notes": "", "storm_window_days": 90, "challenger_share": 0.1,
        "factors-TOTAL_FORMS": 1, "factors-INITIAL_FORMS": 0, "factors-MIN_NUM_FORMS": 0, "factors-MAX_NUM_FORMS": 1000,
        "factors-0-position": 0, "factors-0-feature": "roof_age", "factors-0-transform": "ramp",
        "factors-0-params": '{"low": 30, "high": 10}', "factors-0-weight": 1, "factors-0-reason": "",
    }  # fmt: skip
    page = staff_client.post("/admin/scoring/scoringmodel/add/", form, follow=True)

    assert "Saved as a draft that cannot be activated yet" in page.content.decode()
    assert "a ramp needs low &lt; high (got low 30, high 10)" in page.content.decode()
    assert ScoringModel.objects.get(trade=trade, version=3).status == ScoringModel.Status.DRAFT
    assert ScoringModel.objects.get(pk=active.pk).status == ScoringModel.Status.ACTIVE


def test_runs_and_scores_are_listed_read_only(staff_client, market):
    trade, _, _, _ = market
    run = runs.trade_score(trade=trade, as_of=AS_OF)

    runs_page = staff_client.get("/admin/scoring/scoringrun/").content.decode()
    assert f"/admin/scoring/scoringrun/{run.pk}/change/" in runs_page
    run_page = staff_client.get(f"/admin/scoring/scoringrun/{run.pk}/change/").content.decode()
    assert "partition" in run_page.lower()
    assert "Save" not in run_page
    scores_page = staff_client.get(f"/admin/scoring/score/?trade__id__exact={trade.pk}").content.decode()
    assert "No roof replacement on record; home built in 1990; 1.50 in hail" in scores_page
    assert staff_client.get("/admin/scoring/score/add/").status_code == 403


@pytest.fixture
def new_roofs(zip_codes):
    """Two 1950 houses whose roofs were replaced in 2020, scored for roofing today: roofs too young for
    points (the model's ramp starts at 10 years), and no storm."""
    trade, _ = Trade.objects.get_or_create(slug="roofing", defaults={"name": "Roofing"})
    ScoringModel.objects.filter(trade=trade).delete()
    model_version(trade, 1)
    homes = [home(parcel, year_built=1950, roof_year=2020) for parcel in ("R-1", "R-2")]
    runs.trade_score(trade=trade)
    return trade, homes


def roofing_scores(trade) -> dict[str, float]:
    return dict(Score.objects.filter(trade=trade).values_list("property__parcel_id", "score"))


def active_trade_names() -> list[str]:
    return sorted(ScoringModel.objects.filter(status="active").values_list("trade__name", flat=True))


def test_rescoring_the_selected_properties_writes_the_scores_of_their_edited_data(staff_client, new_roofs):
    trade, (edited, untouched) = new_roofs
    assert roofing_scores(trade) == {"R-1": 0.0, "R-2": 0.0}
    # The roof was never replaced after all: it is as old as the house, 76 years and more.
    Property.objects.filter(pk__in=[edited.pk, untouched.pk]).update(roof_year=None)

    response = staff_client.post(
        "/admin/scoring/property/", {"action": "rescore", "_selected_action": [edited.pk]}, follow=True
    )

    assert messages_of(response) == [("success", f"1 property rescored for {', '.join(active_trade_names())}.")]
    assert roofing_scores(trade) == {"R-1": 50.0, "R-2": 0.0}
    score = Score.objects.get(trade=trade, property=edited)
    # Its roof year is no longer on record: the reason no longer says how old the roof is.
    assert (score.model.version, [reason["text"] for reason in score.reasons]) == (
        1, ["No roof replacement on record; home built in 1950"]
    )  # fmt: skip


def test_rescoring_more_properties_than_an_action_takes_is_refused(staff_client, new_roofs, monkeypatch):
    trade, homes = new_roofs
    Property.objects.filter(pk__in=[h.pk for h in homes]).update(roof_year=None)
    monkeypatch.setattr(market_admin, "RESCORE_MAX", 1)

    response = staff_client.post(
        "/admin/scoring/property/", {"action": "rescore", "_selected_action": [h.pk for h in homes]}, follow=True
    )

    assert messages_of(response) == [
        (
            "error",
            (
                "Rescore at most 1 properties at a time; nothing was rescored. "
                "Score a whole trade with its scoring job (or manage.py score)."
            ),
        )
    ]
    assert roofing_scores(trade) == {"R-1": 0.0, "R-2": 0.0}


def test_the_score_command_rescores_the_properties_named(new_roofs):
    trade, (edited, untouched) = new_roofs
    Property.objects.filter(pk__in=[edited.pk, untouched.pk]).update(roof_year=None)
    out = io.StringIO()

    call_command("score", "--property", str(edited.pk), stdout=out)

    assert roofing_scores(trade) == {"R-1": 50.0, "R-2": 0.0}
    scores = Score.objects.filter(property=edited).select_related("trade").order_by("trade__slug")
    listed = [f"{s.trade.slug} {s.score:.1f}" + (f" ({'; '.join(r['text'] for r in s.reasons)})" if s.reasons else "")
              for s in scores]  # fmt: skip
    assert out.getvalue() == f"{edited.pk} R-1: {', '.join(listed)}\n"
    assert "roofing 50.0 (No roof replacement on record; home built in 1950)" in out.getvalue()


def test_the_score_command_refuses_a_property_with_a_trade_or_an_unknown_property(new_roofs):
    _trade, (edited, _) = new_roofs
    with pytest.raises(CommandError, match="--property goes with --as-of only"):
        call_command("score", "--property", str(edited.pk), "--trade", "roofing")
    with pytest.raises(CommandError, match="no property with id 0"):
        call_command("score", "--property", "0")
