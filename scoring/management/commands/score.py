import datetime as dt
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from scoring.models import ScoringModel, ScoringRun, Trade
from scoring.selectors import trades_named
from scoring.services import runs


class Command(BaseCommand):
    help = (
        "Score every property for every trade (or those named) with the trade's active model. "
        "Exit code 0: every run succeeded; 1: a run failed (resume it with --resume RUN); 2: nothing could start."
    )

    def add_arguments(self, parser):
        parser.add_argument("--trade", action="append", default=[], metavar="SLUG", help="A trade (repeatable).")
        parser.add_argument(
            "--distributed",
            action="store_true",
            help="Send the partitions to the Celery workers (make worker) instead of scoring them here.",
        )
        parser.add_argument("--no-wait", action="store_true", help="With --distributed, return once sent.")
        parser.add_argument("--partition-rows", type=int, default=None, help="Properties per partition.")
        parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="Day to score as (YYYY-MM-DD).")
        parser.add_argument("--resume", type=int, metavar="RUN", help="Finish a failed run (its trade, model and day).")

    def handle(self, *args, trade, distributed, no_wait, partition_rows, as_of, resume, **options):
        if partition_rows is not None and partition_rows < 1:
            raise CommandError("--partition-rows must be at least 1")
        if resume is not None:
            run = ScoringRun.objects.filter(pk=resume).select_related("trade", "model").first()
            if run is None:
                raise CommandError(f"there is no scoring run {resume}")
            starts = [lambda run=run: runs.scoring_run_resume(run=run)]
        else:
            trades = self.trades(trade)
            starts = [
                lambda t=t: runs.scoring_run_start(
                    trade=t, as_of=as_of, partition_rows=partition_rows, distributed=distributed
                )
                for t in trades
            ]
        failed = started = 0
        for start in starts:
            try:
                run = start()
            except runs.ScoringError as error:
                self.stderr.write(str(error))
                continue
            started += 1
            run = self.run(run, distributed=distributed or run.distributed, wait=not no_wait)
            if run.status == ScoringRun.Status.RUNNING:
                self.stdout.write(f"{run.trade.slug}: run {run.pk} sent to the workers, {run.partitions} partitions")
            elif run.status == ScoringRun.Status.SUCCEEDED:
                self.stdout.write(run.summary())
            else:
                failed += 1
                self.stderr.write(run.summary())
        if not started:
            sys.exit(2)
        if failed:
            sys.exit(1)

    def trades(self, slugs: list[str]) -> list[Trade]:
        active = Trade.objects.filter(scoring_models__status=ScoringModel.Status.ACTIVE).order_by("slug")
        if not slugs:
            return list(active)
        try:
            return trades_named(slugs)
        except ValueError as error:
            raise CommandError(str(error)) from None

    def run(self, run: ScoringRun, *, distributed: bool, wait: bool) -> ScoringRun:
        if not distributed:
            return runs.scoring_run_execute(run=run)
        sent = runs.scoring_run_dispatch(run=run)
        if wait:
            self.stderr.write(
                f"{run.trade.slug}: run {run.pk}, {sent} partitions sent to the Celery workers; waiting for them "
                "(Ctrl-C stops waiting, not the run)"
            )
        while wait:
            run.refresh_from_db()
            if run.status != ScoringRun.Status.RUNNING:
                break
            time.sleep(0.5)
        return run
