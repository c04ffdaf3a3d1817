from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from core.text import counted
from leads.services.quality import EVALUATION_DAYS, models_evaluate
from scoring.models import EvaluationRun
from scoring.quality_display import missing_figures
from scoring.selectors import trades_named


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def run_lines(run: EvaluationRun) -> list[str]:
    """The run's figures as the command prints them: a summary line, then its decile table."""
    auc = "-" if run.auc is None else f"{run.auc:.3f}"
    if run.auc_low is not None and run.auc_high is not None:
        auc += f" [{run.auc_low:.3f}, {run.auc_high:.3f}]"
    lift = "-" if run.top_decile_lift is None else f"{run.top_decile_lift:.2f}x"
    summary = (
        f"{run.trade.name} v{run.model.version} ({run.model.get_status_display().lower()}), {run.first_day} to "
        f"{run.last_day}: {counted(run.outcomes, 'outcome')} ({run.exploration_outcomes:,} exploration), "
        f"{counted(run.conversions, 'conversion')}, rate {_percent(run.conversion_rate)}, AUC {auc}, "
        f"top-decile lift {lift} (evaluation run {run.pk})"
    )
    lines = [summary]
    deciles = run.figures.get("deciles")
    if deciles:
        lines.append(f"  {'decile':>6} {'leads':>7} {'conversions':>11} {'conv. rate':>10} {'return rate':>11}  scores")
        for decile in deciles:
            scores = (
                f"{decile['lowest_score']:g}-{decile['highest_score']:g}" if decile["lowest_score"] is not None else "-"
            )
            lines.append(
                f"  {decile['number']:>6} {decile['leads']:>7,} {decile['conversions']:>11,} "
                f"{_percent(decile['conversion_rate']):>10} {_percent(decile['return_rate']):>11}  {scores}"
            )
    for figure, why in missing_figures(run):
        lines.append(f"  no {figure}: {why}")
    return lines


class Command(BaseCommand):
    help = (
        "Evaluate lead quality: per trade and scoring model version with known outcomes among the leads of the "
        "last N days, record an evaluation run and print its figures (outcomes, conversions, rate, AUC with its "
        "95% interval, top-decile lift, decile table)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--trade", action="append", default=[], metavar="SLUG", help="A trade (repeatable).")
        parser.add_argument(
            "--days",
            type=int,
            default=EVALUATION_DAYS,
            help=f"Leads generated in the last N days (default {EVALUATION_DAYS}).",
        )

    def handle(self, *args, trade, days, **options):
        try:
            trades = trades_named(trade) if trade else None
            runs = models_evaluate(trades=trades, days=days)
        except (ValueError, DomainError) as error:
            raise CommandError(str(error)) from None
        for run in runs:
            self.stdout.write("\n".join(run_lines(run)))
        if not runs:
            self.stdout.write(f"No lead with a known outcome in the last {counted(days, 'day')}: nothing to evaluate.")
        self.stdout.write(f"total: {counted(len(runs), 'evaluation run')}")
