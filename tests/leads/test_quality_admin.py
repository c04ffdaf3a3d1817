"""Lead quality in the admin: a scoring model's page with its evaluations, the active version against a
challenger (with the plain statement of whether the difference is beyond the intervals), and the
read-only list of evaluation runs."""

import datetime as dt
import re

import pytest
from django.utils import timezone

from leads.services.quality import models_evaluate
from scoring.models import EvaluationRun, ScoringModel
from scoring.selectors import evaluation_comparison
from tests.admin_pages import page_of
from tests.leads.factories import active_model, owner, tiny_set

TODAY = dt.date(2026, 6, 30)
FIRST = TODAY - dt.timedelta(days=89)


@pytest.fixture
def evaluated(roofing):
    model = active_model(roofing)
    tiny_set(roofing, model, owner(roofing, "80202"), generated_on=TODAY)
    (run,) = models_evaluate(today=TODAY)
    return model, run


def evaluation(model, *, auc, low, high, first=FIRST, last=TODAY, outcomes=500) -> EvaluationRun:
    """A recorded run with these figures, as models_evaluate leaves one (figures beyond the AUC empty)."""
    return EvaluationRun.objects.create(
        trade=model.trade, model=model, first_day=first, last_day=last, outcomes=outcomes, conversions=50,
        conversion_rate=0.1, auc=auc, auc_low=low, auc_high=high, top_decile_lift=2.0, figures={"missing": {}},
    )  # fmt: skip


@pytest.fixture
def challenger(roofing):
    return ScoringModel.objects.create(trade=roofing, version=5, status=ScoringModel.Status.CHALLENGER)


def test_a_scoring_models_page_shows_its_latest_figures_trend_and_tables(staff_client, evaluated):
    model, run = evaluated

    page = page_of(staff_client.get(f"/admin/scoring/scoringmodel/{model.pk}/change/"))

    assert (
        f"Latest evaluation ({timezone.localtime(run.created_at):%Y-%m-%d %H:%M}), leads generated 2026-04-02 to "
        "2026-06-30: 10 with a known outcome (1 exploration), 4 converted (57.1%), "
        f"AUC {run.auc:.3f} [{run.auc_low:.3f}, {run.auc_high:.3f}], top-decile lift 1.75x."
    ) in " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert f'aria-label="AUC of Roofing v{model.version} (Active) over its evaluation runs"' in page
    assert f'aria-label="Conversion and return rate by score decile of Roofing v{model.version} (Active)"' in page
    assert "<title>1: 100% (converted)</title>" in page  # decile 1: the 95 converted
    assert "<td>2</td><td>2</td><td>1</td><td>50.0%</td><td>50.0%</td><td>85-90</td>" in page  # decile 2
    assert "<td>30-40</td><td>1</td><td>30.0</td><td>100.0%</td><td>1</td>" in page  # calibration: exploration
    assert "<td>home_age</td><td>4</td><td>2</td><td>75.0%</td><td>1.31x</td>" in page  # per reason
    assert f'<a href="/admin/scoring/evaluationrun/{run.pk}/change/">{run.pk}</a>' in page
    assert "evaluation-comparison" not in page  # no challenger
    assert evaluation_comparison(trade_id=model.trade_id) is None


def test_a_version_never_evaluated_says_how_figures_appear(staff_client, roofing):
    model = active_model(roofing)

    page = page_of(staff_client.get(f"/admin/scoring/scoringmodel/{model.pk}/change/"))

    assert "No evaluation of this version yet." in page
    assert "manage.py evaluate_models" in page


def test_a_challenger_beyond_the_intervals_is_said_to_rank_better_on_both_pages(staff_client, roofing, challenger):
    active = active_model(roofing)
    evaluation(active, auc=0.70, low=0.60, high=0.80, first=FIRST - dt.timedelta(days=1))  # another period
    evaluation(active, auc=0.62, low=0.59, high=0.65)
    evaluation(challenger, auc=0.74, low=0.70, high=0.78)

    comparison = evaluation_comparison(trade_id=roofing.pk)

    statement = (
        f"The challenger, v5, ranks its leads better than the active version, v{active.version}: "
        "AUC 0.740 [0.700, 0.780] "
        "against AUC 0.620 [0.590, 0.650], a difference beyond both 95% intervals."
    )
    assert (comparison.apart, comparison.statement) == (True, statement)
    assert (comparison.active_run.auc, comparison.challenger_run.auc) == (0.62, 0.74)  # the same period's
    for model in (active, challenger):
        page = page_of(staff_client.get(f"/admin/scoring/scoringmodel/{model.pk}/change/"))
        assert statement in page
        assert "<td>0.620 [0.590, 0.650]</td>" in page
        assert "<td>0.740 [0.700, 0.780]</td>" in page


def test_overlapping_intervals_are_said_not_to_tell_the_versions_apart(roofing, challenger):
    active = active_model(roofing)
    evaluation(active, auc=0.70, low=0.65, high=0.75)
    evaluation(challenger, auc=0.66, low=0.60, high=0.72)

    comparison = evaluation_comparison(trade_id=roofing.pk)

    assert comparison.apart is False
    assert comparison.statement == (
        f"The challenger, v5, and the active version, v{active.version}, differ within their 95% intervals "
        "(AUC 0.660 [0.600, 0.720] against AUC 0.700 [0.650, 0.750]): they cannot be told apart yet."
    )


def test_without_runs_over_the_same_period_or_an_auc_there_is_nothing_to_compare(roofing, challenger):
    active = active_model(roofing)
    assert evaluation_comparison(trade_id=roofing.pk).statement == (
        "No evaluation of the challenger, v5, yet: nothing to compare."
    )
    evaluation(challenger, auc=0.66, low=0.60, high=0.72)
    evaluation(active, auc=0.70, low=0.65, high=0.75, first=FIRST + dt.timedelta(days=1))
    assert evaluation_comparison(trade_id=roofing.pk).statement == (
        f"No evaluation of the active version, v{active.version}, over the challenger's period "
        "(2026-04-02 to 2026-06-30) yet: "
        "nothing to compare."
    )
    EvaluationRun.objects.create(
        trade=roofing, model=active, first_day=FIRST, last_day=TODAY, figures={"missing": {"auc": "no conversion yet"}}
    )
    comparison = evaluation_comparison(trade_id=roofing.pk)
    assert (comparison.apart, comparison.statement) == (
        None,
        f"Not comparable yet: no AUC for v{active.version} (no conversion yet).",
    )


def test_evaluation_runs_are_listed_read_only_with_their_figures(staff_client, evaluated):
    model, run = evaluated

    listing = page_of(staff_client.get("/admin/scoring/evaluationrun/"))
    detail = page_of(staff_client.get(f"/admin/scoring/evaluationrun/{run.pk}/change/"))

    row = " ".join(listing.split())
    for shown in (f"v{model.version} (active)", "2026-04-02 to 2026-06-30",
                  f"{run.auc:.3f} [{run.auc_low:.3f}, {run.auc_high:.3f}]", "57.1%", "1.75x"):  # fmt: skip
        assert shown in row
    assert "<td>roof_age</td><td>5</td><td>1</td><td>20.0%</td><td>0.35x</td>" in detail
    assert staff_client.get("/admin/scoring/evaluationrun/add/").status_code == 403
    assert 'name="_save"' not in detail
    assert staff_client.post(f"/admin/scoring/evaluationrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert EvaluationRun.objects.get() == run


def test_a_run_without_conversions_says_why_its_figures_are_missing(staff_client, roofing):
    model = active_model(roofing)
    run = EvaluationRun.objects.create(
        trade=roofing, model=model, first_day=TODAY, last_day=TODAY, outcomes=3,
        figures={"missing": {"auc": "no conversion yet", "deciles": "fewer than 10 leads with a known outcome"}},
    )  # fmt: skip

    detail = page_of(staff_client.get(f"/admin/scoring/evaluationrun/{run.pk}/change/"))

    assert "none: no conversion yet" in detail
    assert "No AUC: no conversion yet." in detail
    assert "No decile table: fewer than 10 leads with a known outcome." in detail
