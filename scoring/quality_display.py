"""Lead quality as pages show it, from evaluation runs: the charts (core.charts: a version's AUC over its
runs with the 95% interval, one run's conversion and return rate by score decile) and a run's tables
with their figures as text. The scoring model's admin page, the evaluation run's page and the dashboard
show the same ones."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone
from django.utils.safestring import SafeString

from core import charts
from scoring.models import EvaluationRun


def _day(run: EvaluationRun) -> str:
    at = timezone.localtime(run.created_at)
    return f"{at:%b} {at.day}"


def auc_trend_chart(runs: Sequence[EvaluationRun], *, label: str, width: int = 420, height: int = 170) -> SafeString:
    """The AUC of each run that has one, oldest first, between the ends of its 95% interval."""
    shown = [run for run in runs if run.auc is not None]
    return charts.line_chart(
        label,
        [_day(run) for run in shown],
        [
            ("AUC", [round(run.auc, 3) for run in shown]),
            ("95% low", [round(run.auc if run.auc_low is None else run.auc_low, 3) for run in shown]),
            ("95% high", [round(run.auc if run.auc_high is None else run.auc_high, 3) for run in shown]),
        ],
        width=width,
        height=height,
        decimals=3,
    )


AUC_TREND_LEGEND = ("AUC", "95% interval, low", "95% interval, high")


def decile_chart(run: EvaluationRun, *, label: str, width: int = 420, height: int = 170) -> SafeString:
    """The run's conversion and return rate (%) per score decile, best decile first."""
    deciles = run.figures.get("deciles") or []
    return charts.bar_chart(
        label,
        [str(decile["number"]) for decile in deciles],
        [
            ("converted", [round(100 * (decile["conversion_rate"] or 0), 1) for decile in deciles]),
            ("returned", [round(100 * (decile["return_rate"] or 0), 1) for decile in deciles]),
        ],
        unit="%",
        width=width,
        height=height,
    )


DECILE_LEGEND = ("converted", "returned")


# The figures an evaluation run may lack (its figures' "missing": figure -> why), as pages name them.
FIGURE_NAMES = {
    "auc": "AUC",
    "deciles": "decile table",
    "top_decile_lift": "top-decile lift",
    "calibration": "calibration table",
    "reasons": "conversion per reason",
    "reason_lift": "lift per reason",
}


def missing_figures(run: EvaluationRun) -> list[tuple[str, str]]:
    """(figure name, why) of each figure the run lacks."""
    return [(FIGURE_NAMES.get(name, name), why) for name, why in run.figures.get("missing", {}).items()]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def auc_text(run: EvaluationRun) -> str:
    """ "0.712 [0.680, 0.744]", or why there is no AUC."""
    if run.auc is None:
        return "none: " + run.figures.get("missing", {}).get("auc", "not computed")
    if run.auc_low is None or run.auc_high is None:
        return f"{run.auc:.3f}"
    return f"{run.auc:.3f} [{run.auc_low:.3f}, {run.auc_high:.3f}]"


def lift_text(run: EvaluationRun) -> str:
    if run.top_decile_lift is None:
        return "none: " + run.figures.get("missing", {}).get("top_decile_lift", "not computed")
    return f"{run.top_decile_lift:.2f}x"


def _scores(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{low:g}-{high:g}"


def run_tables(run: EvaluationRun) -> dict:
    """The run's decile, calibration and per-reason tables as rows of text, and the figures it lacks with
    why (figure name, reason)."""
    figures = run.figures
    deciles = [
        [d["number"], f"{d['leads']:,}", f"{d['conversions']:,}", percent(d["conversion_rate"]),
         percent(d["return_rate"]), _scores(d["lowest_score"], d["highest_score"])]
        for d in figures.get("deciles") or []
    ]  # fmt: skip
    calibration = [
        [f"{b['low']:g}-{b['high']:g}", f"{b['leads']:,}", f"{b['mean_score']:.1f}", percent(b["conversion_rate"]),
         f"{b['conversions']:,}"]
        for b in figures.get("calibration") or []
    ]  # fmt: skip
    reasons = [
        [r["feature"], f"{r['leads']:,}", f"{r['conversions']:,}", percent(r["conversion_rate"]),
         "-" if r["lift"] is None else f"{r['lift']:.2f}x"]
        for r in figures.get("reasons") or []
    ]  # fmt: skip
    return {"deciles": deciles, "calibration": calibration, "reasons": reasons, "missing": missing_figures(run)}
