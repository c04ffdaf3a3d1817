"""Lead quality in the admin: evaluation runs (read only; recorded by the daily evaluation job and
`manage.py evaluate_models`), and the evaluation part of a scoring model's page: its latest figures, its
AUC trend and decile table, and its trade's active version against the challenger."""

from django.contrib import admin
from django.urls import reverse

from core.charts import legend
from scoring import quality_display
from scoring.models import EvaluationRun, ScoringModel
from scoring.selectors import EvaluationComparison, evaluation_comparison, evaluation_runs_of

RECENT_RUNS = 10  # runs listed on a scoring model's page, newest first


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    """Read only: every evaluation is a new run, so the figures keep their history."""

    list_display = ["created_at", "trade", "version", "period", "outcomes", "conversions", "rate", "auc_shown",
                    "lift"]  # fmt: skip
    list_filter = ["trade", "model__status", "model"]
    list_select_related = ["trade", "model", "model__trade"]
    date_hierarchy = "created_at"
    fields = ["trade", "model", "first_day", "last_day", "outcomes", "conversions", "exploration_outcomes", "rate",
              "auc_shown", "lift", "created_at"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Version", ordering="model__version")
    def version(self, run: EvaluationRun) -> str:
        return f"v{run.model.version} ({run.model.get_status_display().lower()})"

    @admin.display(description="Period", ordering="first_day")
    def period(self, run: EvaluationRun) -> str:
        return f"{run.first_day:%Y-%m-%d} to {run.last_day:%Y-%m-%d}"

    @admin.display(description="Conversion rate", ordering="conversion_rate")
    def rate(self, run: EvaluationRun) -> str:
        return quality_display.percent(run.conversion_rate)

    @admin.display(description="AUC [95% interval]", ordering="auc")
    def auc_shown(self, run: EvaluationRun) -> str:
        return quality_display.auc_text(run)

    @admin.display(description="Top-decile lift", ordering="top_decile_lift")
    def lift(self, run: EvaluationRun) -> str:
        return quality_display.lift_text(run)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = {"evaluation_tables": quality_display.run_tables(run)} if run is not None else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _run_row(run: EvaluationRun) -> dict:
    return {
        "run": run,
        "url": reverse("admin:scoring_evaluationrun_change", args=[run.pk]),
        "rate": quality_display.percent(run.conversion_rate),
        "auc": quality_display.auc_text(run),
        "lift": quality_display.lift_text(run),
    }


def model_evaluation_context(model: ScoringModel) -> dict:
    """What the scoring model's page shows of its evaluations: the latest run's figures and tables, the AUC
    over its runs, its recent runs, and (for its trade's active version and challenger) the two compared."""
    runs = evaluation_runs_of(model_id=model.pk)
    latest = runs[-1] if runs else None
    comparison = evaluation_comparison(trade_id=model.trade_id)
    if comparison is not None and model.pk not in (comparison.active.pk, comparison.challenger.pk):
        comparison = None
    return {
        "latest": _run_row(latest) if latest else None,
        "tables": quality_display.run_tables(latest) if latest else None,
        "trend_chart": quality_display.auc_trend_chart(runs, label=f"AUC of {model} over its evaluation runs"),
        "trend_legend": legend(quality_display.AUC_TREND_LEGEND),
        "decile_chart": (
            quality_display.decile_chart(latest, label=f"Conversion and return rate by score decile of {model}")
            if latest
            else None
        ),
        "decile_legend": legend(quality_display.DECILE_LEGEND),
        "recent": [_run_row(run) for run in runs[::-1][:RECENT_RUNS]],
        "runs_url": reverse("admin:scoring_evaluationrun_changelist") + f"?model__id__exact={model.pk}",
        "comparison": comparison,
        "compared": _compared_rows(comparison) if comparison else None,
    }


def _compared_rows(comparison: EvaluationComparison) -> list[tuple]:
    """(role, its run's row or None, the version) of the active version, then the challenger."""
    return [
        (label, _run_row(run) if run else None, version)
        for label, run, version in (
            ("Active", comparison.active_run, comparison.active),
            ("Challenger", comparison.challenger_run, comparison.challenger),
        )
    ]
