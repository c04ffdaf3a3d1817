"""Lead quality evaluation: the figures of a tiny set worked out by hand, the leads that count, the runs
recorded per version, the figures a thin set cannot support, and `manage.py evaluate_models`."""

import datetime as dt
import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from leads.errors import EvaluationRefused
from leads.models import Lead
from leads.services.quality import (
    ALL_CONVERTED,
    NO_CONVERSION,
    NO_OUTCOME,
    TOO_FEW_FOR_DECILES,
    evaluation_figures,
    model_evaluate,
    models_evaluate,
)
from scoring.models import EvaluationRun, ScoringModel
from tests.leads.factories import active_model, outcome_lead, owner, tiny_set

TODAY = dt.date(2026, 6, 30)


@pytest.fixture
def evaluated(roofing):
    """The trade's active version with the ten leads of TINY_SET, and its contractor."""
    model = active_model(roofing)
    acme = owner(roofing, "80202")
    tiny_set(roofing, model, acme, generated_on=TODAY - dt.timedelta(days=3))
    return model, acme


def test_the_tiny_sets_figures_are_the_ones_worked_out_by_hand(roofing, evaluated):
    model, _ = evaluated

    run = model_evaluate(model=model, first_day=TODAY - dt.timedelta(days=89), last_day=TODAY)

    # Weights: nine leads picked best first weigh 1, the exploration lead (30, converted) weighs 5: 14 in all.
    # Converted: 95, 85, 70 and 30, weighing 1 + 1 + 1 + 5 = 8; rate 8 / 14.
    assert (run.outcomes, run.conversions, run.exploration_outcomes) == (10, 4, 1)
    assert run.conversion_rate == pytest.approx(8 / 14)
    # AUC: each converting lead's weight times the weight of other leads scoring below it, over 8 x 6:
    # 95 is above all six others (6), 85 above 80, 75, 65, 60, 55 (5), 70 above 65, 60, 55 (3), the
    # exploration lead at 30 above none (5 x 0): 14 / 48. Unweighted it would be 14 / 24.
    assert run.auc == pytest.approx(14 / 48)
    assert run.auc_low <= run.auc <= run.auc_high
    assert 0 <= run.auc_low < run.auc_high <= 1
    # Deciles: shares of 1.4 of the weight, best first; a lead goes where the midpoint of its weight falls:
    # midpoints 0.5, 1.5, 2.5, ..., 8.5 for the nine, 11.5 for the exploration lead; / 1.4 rounded down:
    # 0, 1, 1, 2, 3, 3, 4, 5, 6 and 8. So decile 1 holds 95, 2 holds 90 and 85, 3 holds 80, 4 holds 75 and
    # 70, 5 holds 65, 6 holds 60, 7 holds 55, 9 the exploration lead; 8 and 10 hold none.
    deciles = [
        (d["number"], d["leads"], d["weight"], d["conversions"], d["conversion_rate"], d["return_rate"])
        for d in run.figures["deciles"]
    ]
    assert deciles == [
        (1, 1, 1.0, 1, 1.0, 0.0),
        (2, 2, 2.0, 1, 0.5, 0.5),  # 85 converted, 90 returned
        (3, 1, 1.0, 0, 0.0, 0.0),
        (4, 2, 2.0, 1, 0.5, 0.0),
        (5, 1, 1.0, 0, 0.0, 1.0),
        (6, 1, 1.0, 0, 0.0, 0.0),
        (7, 1, 1.0, 0, 0.0, 0.0),
        (8, 0, 0.0, 0, None, None),
        (9, 1, 5.0, 1, 1.0, 0.0),
        (10, 0, 0.0, 0, None, None),
    ]
    # Top-decile lift: decile 1's rate (1) over the whole rate (8 / 14).
    assert run.top_decile_lift == pytest.approx(14 / 8)
    # Calibration, per 10-point band, best first: leads, weight, conversions, mean score, observed rate.
    calibration = [
        (b["low"], b["high"], b["leads"], b["weight"], b["conversions"], b["mean_score"], b["conversion_rate"])
        for b in run.figures["calibration"]
    ]
    assert calibration == [
        (90.0, 100.0, 2, 2.0, 1, 92.5, 0.5),
        (80.0, 90.0, 2, 2.0, 1, 82.5, 0.5),
        (70.0, 80.0, 2, 2.0, 1, 72.5, 0.5),
        (60.0, 70.0, 2, 2.0, 0, 62.5, 0.0),
        (50.0, 60.0, 1, 1.0, 0, 55.0, 0.0),
        (30.0, 40.0, 1, 5.0, 1, 30.0, 1.0),
    ]
    # Per reason, most leads first: roof_age on 95, 90, 80, 75, 60 (one conversion of 5: 0.2); home_age on
    # 70, 65, 55 and the exploration lead (converted: 1 + 5 of 8 = 0.75); hail_recent on 95, 85, 75 (2 of 3).
    # Lift: the rate over 8 / 14.
    reasons = [(r["feature"], r["leads"], r["weight"], r["conversions"]) for r in run.figures["reasons"]]
    assert reasons == [("roof_age", 5, 5.0, 1), ("home_age", 4, 8.0, 2), ("hail_recent", 3, 3.0, 2)]
    rates = [value for r in run.figures["reasons"] for value in (r["conversion_rate"], r["lift"])]
    assert rates == pytest.approx([0.2, 0.2 * 14 / 8, 0.75, 0.75 * 14 / 8, 2 / 3, 2 / 3 * 14 / 8])
    # Returns: 90 and 65, weighing 2 of 14. Best first and exploration apart.
    assert (run.figures["returns"], run.figures["return_rate"]) == (2, pytest.approx(2 / 14))
    assert run.figures["best_first"] == {"outcomes": 9, "conversions": 3, "weight": 9.0, "conversion_rate": 1 / 3}
    assert run.figures["exploration"] == {"outcomes": 1, "conversions": 1, "weight": 5.0, "conversion_rate": 1.0}
    assert run.figures["missing"] == {}
    assert EvaluationRun.objects.get() == run
    assert (run.trade, run.model, run.first_day, run.last_day) == (roofing, model, dt.date(2026, 4, 2), TODAY)


def test_open_withdrawn_and_never_assigned_leads_and_other_versions_and_days_do_not_count(roofing, evaluated):
    model, acme = evaluated
    before = TODAY - dt.timedelta(days=90)
    outcome_lead(roofing, model, acme, score=99, state="accepted")  # still open
    outcome_lead(roofing, model, acme, score=99, state="withdrawn")  # taken back by staff
    outcome_lead(roofing, model, None, score=99, state="expired")  # expired in the pool, never assigned
    outcome_lead(roofing, model, acme, score=10, state="converted", generated_on=before)  # before the period
    older = ScoringModel.objects.create(trade=roofing, version=7, status=ScoringModel.Status.RETIRED)
    outcome_lead(roofing, older, acme, score=10, state="converted", generated_on=TODAY)  # another version

    run = model_evaluate(model=model, first_day=TODAY - dt.timedelta(days=89), last_day=TODAY)

    assert (run.outcomes, run.conversions, run.auc) == (10, 4, pytest.approx(14 / 48))


def test_every_version_with_outcomes_in_the_period_gets_a_run_over_the_same_period(roofing, evaluated):
    model, acme = evaluated
    retired = ScoringModel.objects.create(trade=roofing, version=7, status=ScoringModel.Status.RETIRED)
    for score, state in ((90, "converted"), (40, "returned")):
        outcome_lead(
            roofing, retired, acme, score=score, state=state, reasons=("roof_age",),
            generated_on=TODAY - dt.timedelta(days=20),
        )  # fmt: skip
    ScoringModel.objects.create(trade=roofing, version=8, status=ScoringModel.Status.CHALLENGER)  # no leads yet

    runs = models_evaluate(days=30, today=TODAY)

    assert [(run.model, run.first_day, run.last_day, run.outcomes) for run in runs] == [
        (model, dt.date(2026, 6, 1), TODAY, 10),
        (retired, dt.date(2026, 6, 1), TODAY, 2),
    ]
    assert runs[1].auc == 1.0  # its converted lead scores above its returned one
    assert runs[1].figures["missing"] == {"deciles": TOO_FEW_FOR_DECILES, "top_decile_lift": TOO_FEW_FOR_DECILES}
    assert EvaluationRun.objects.count() == 2
    assert models_evaluate(days=3, today=TODAY) == []  # the tiny set was generated 3 days before today


def test_a_version_without_conversions_records_its_run_and_says_why_figures_are_missing(roofing):
    model, acme = active_model(roofing), owner(roofing, "80202")
    for score in range(50, 100, 4):  # 13 leads, none converted
        outcome_lead(roofing, model, acme, score=score, state="returned", reasons=("roof_age",), generated_on=TODAY)

    run = model_evaluate(model=model, first_day=TODAY, last_day=TODAY)

    assert (run.outcomes, run.conversions, run.conversion_rate) == (13, 0, 0.0)
    assert (run.auc, run.auc_low, run.auc_high, run.top_decile_lift) == (None, None, None, None)
    assert run.figures["missing"] == {
        "auc": NO_CONVERSION, "top_decile_lift": NO_CONVERSION, "reason_lift": NO_CONVERSION,
    }  # fmt: skip
    # Thirteen leads of weight 1, best first: the i-th goes to decile (i + 0.5) / 13 x 10, rounded down.
    assert [d["leads"] for d in run.figures["deciles"]] == [1, 2, 1, 1, 1, 2, 1, 1, 2, 1]
    assert run.figures["reasons"] == [
        {"feature": "roof_age", "leads": 13, "weight": 13.0, "conversions": 0, "conversion_rate": 0.0, "lift": None}
    ]


def test_no_outcome_in_the_period_is_a_run_with_every_figure_missing(roofing):
    model = active_model(roofing)

    run = model_evaluate(model=model, first_day=TODAY, last_day=TODAY)

    assert (run.outcomes, run.conversion_rate, run.auc, run.top_decile_lift) == (0, None, None, None)
    assert (run.figures["deciles"], run.figures["calibration"], run.figures["reasons"]) == (None, None, None)
    assert run.figures["missing"] == dict.fromkeys(
        ["auc", "deciles", "top_decile_lift", "calibration", "reasons"], NO_OUTCOME
    )


def test_every_lead_converted_leaves_the_auc_out():
    outcomes = pd.DataFrame({
        "score": [80.0, 60.0], "converted": [1, 1], "returned": [0, 0], "sampling_weight": [1.0, 1.0],
        "exploration": [False, False], "reason_features": [[], []],
    })  # fmt: skip

    figures = evaluation_figures(outcomes=outcomes)

    assert (figures.auc, figures.conversion_rate, figures.figures["missing"]["auc"]) == (None, 1.0, ALL_CONVERTED)
    assert figures.figures["missing"]["reasons"] == "no lead carries a reason"


def test_a_period_that_ends_before_it_starts_is_refused_and_nothing_recorded(roofing):
    model = active_model(roofing)

    with pytest.raises(EvaluationRefused, match=r"The period ends \(2026-06-29\) before it starts \(2026-06-30\)"):
        model_evaluate(model=model, first_day=TODAY, last_day=TODAY - dt.timedelta(days=1))
    with pytest.raises(EvaluationRefused, match="at least one day, not 0"):
        models_evaluate(days=0)

    assert not EvaluationRun.objects.exists()


def test_the_command_records_runs_and_prints_figures_and_decile_table(roofing):
    model = active_model(roofing)
    tiny_set(roofing, model, owner(roofing, "80202"))  # generated today
    out = io.StringIO()

    call_command("evaluate_models", "--trade", "roofing", "--days", "30", stdout=out)

    run = EvaluationRun.objects.get()
    lines = out.getvalue().splitlines()
    today = timezone.localdate()
    assert (run.first_day, run.last_day) == (today - dt.timedelta(days=29), today)
    assert lines[0] == (
        f"Roofing v{model.version} (active), {run.first_day} to {today}: 10 outcomes (1 exploration), "
        f"4 conversions, rate 57.1%, AUC 0.292 [{run.auc_low:.3f}, {run.auc_high:.3f}], top-decile lift 1.75x "
        f"(evaluation run {run.pk})"
    )
    assert lines[1].split() == ["decile", "leads", "conversions", "conv.", "rate", "return", "rate", "scores"]
    assert lines[2].split() == ["1", "1", "1", "100.0%", "0.0%", "95-95"]
    assert lines[3].split() == ["2", "2", "1", "50.0%", "50.0%", "85-90"]
    assert lines[9].split() == ["8", "0", "0", "-", "-", "-"]
    assert lines[10].split() == ["9", "1", "1", "100.0%", "0.0%", "30-30"]
    assert lines[12:] == ["total: 1 evaluation run"]


def test_the_command_says_when_there_is_nothing_to_evaluate_and_refuses_bad_arguments(roofing):
    out = io.StringIO()

    call_command("evaluate_models", stdout=out)

    assert (
        out.getvalue()
        == "No lead with a known outcome in the last 90 days: nothing to evaluate.\ntotal: 0 evaluation runs\n"
    )
    with pytest.raises(CommandError, match="at least one day, not -1"):
        call_command("evaluate_models", "--days", "-1")
    with pytest.raises(CommandError, match="nowhere"):
        call_command("evaluate_models", "--trade", "nowhere")
    assert not EvaluationRun.objects.exists()


@pytest.mark.parametrize("weight", [0.0, 0.5, float("nan"), float("inf")])
def test_the_database_refuses_a_sampling_weight_evaluation_and_learning_could_not_use(roofing, weight):
    """A weight is 1 (best first) or a pool over its draws (at least 1), and finite: the check constraint
    leads_lead_sampling_weight_range holds it, NaN included (PostgreSQL sorts NaN above Infinity)."""
    model = active_model(roofing)
    lead = outcome_lead(roofing, model, owner(roofing), score=50, state="converted", sampling_weight=1.0)

    with pytest.raises(IntegrityError, match="sampling_weight_range"), transaction.atomic():
        Lead.objects.filter(pk=lead.pk).update(sampling_weight=weight)
    assert Lead.objects.get(pk=lead.pk).sampling_weight == 1.0
