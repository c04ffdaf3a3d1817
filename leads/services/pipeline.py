"""The daily run: score every trade, generate its leads, route the pool, expire what is overdue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from core.retry import db_retry
from leads.services.generation import GenerationSummary, leads_generate_all
from leads.services.lifecycle import ExpirySummary, leads_expire
from leads.services.routing import RoutingSummary, leads_route
from scoring.errors import ScoringError
from scoring.models import ScoringModel, ScoringRun, Trade
from scoring.services import runs


@dataclass
class PipelineSummary:
    scoring: list[ScoringRun] = field(default_factory=list)
    scoring_errors: list[str] = field(default_factory=list)  # trades that could not be scored, and why
    generation: list[GenerationSummary] = field(default_factory=list)
    routing: RoutingSummary | None = None
    expiry: ExpirySummary | None = None

    @property
    def ok(self) -> bool:
        return not self.scoring_errors and all(run.status == ScoringRun.Status.SUCCEEDED for run in self.scoring)

    def lines(self) -> list[str]:
        return [
            *(run.summary() for run in self.scoring),
            *self.scoring_errors,
            *(str(summary) for summary in self.generation),
            f"routing: {self.routing}",
            f"expiry: {self.expiry}",
        ]


def pipeline_run(
    *, trades: list[Trade] | None = None, as_of: dt.date | None = None, now: dt.datetime | None = None
) -> PipelineSummary:
    """Score, generate, route, expire. A trade whose scoring fails or is busy still gets leads from its
    current scores (the error is in the summary): one bad run does not stop the day's leads. Generation,
    routing and expiry are idempotent, so each rides out a lost database connection (a restart) by being
    done again on a new one (db_retry, DB_RETRY_SECONDS); scoring rides it out in its partitions."""
    now = now or timezone.now()
    if trades is None:
        trades = db_retry(
            lambda: list(Trade.objects.filter(scoring_models__status=ScoringModel.Status.ACTIVE).order_by("slug")),
            what="reading the trades to run",
        )
    summary = PipelineSummary()
    for trade in trades:
        try:
            summary.scoring.append(runs.trade_score(trade=trade, as_of=as_of or timezone.localdate(now)))
        except ScoringError as error:
            summary.scoring_errors.append(f"{trade.slug}: {error}")
    summary.generation = db_retry(lambda: leads_generate_all(trades=trades, now=now), what="lead generation")
    trade_ids = [trade.pk for trade in trades]
    summary.routing = db_retry(lambda: leads_route(trade_ids=trade_ids, now=now), what="lead routing")
    summary.expiry = db_retry(lambda: leads_expire(now=now), what="lead expiry")
    return summary
