import datetime as dt
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from core.retry import connection_reset, db_retry, is_transient
from scoring.errors import ScoringError
from scoring.models import Property, Score, ScoringModel, ScoringRun, Trade
from scoring.selectors import trades_named, trades_with_active_model
from scoring.services import runs
from scoring.services.scores import property_rescore

# A waiting --distributed run looks at its run this often, and every PROGRESS_SECONDS reports its progress
# and takes up partitions whose task was lost (runs.scoring_runs_recover), so it finishes without beat.
POLL_SECONDS = 0.5
PROGRESS_SECONDS = 10


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
        parser.add_argument(
            "--property",
            dest="properties",
            type=int,
            action="append",
            default=[],
            metavar="ID",
            help="Rescore only this property (repeatable), for every trade with an active model; with --as-of only.",
        )

    def handle(self, *args, trade, distributed, no_wait, partition_rows, as_of, resume, properties, **options):
        if partition_rows is not None and partition_rows < 1:
            raise CommandError("--partition-rows must be at least 1")
        if properties:
            if trade or distributed or no_wait or partition_rows is not None or resume is not None:
                raise CommandError("--property goes with --as-of only")
            self.rescore(properties, as_of=as_of)
            return
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
            except ScoringError as error:
                self.stderr.write(str(error))
                continue
            started += 1
            try:
                run = self.run(run, distributed=distributed or run.distributed, wait=not no_wait)
            except ScoringError as error:  # the database stayed away: the message says what becomes of it
                failed += 1
                self.stderr.write(str(error))
                continue
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

    def rescore(self, property_ids: list[int], *, as_of: dt.date | None) -> None:
        """Each property's new scores with their reasons, a line each:
        "123 A-1: roofing 90.0 (Roof replaced in 2001, 25 years ago; ...), solar 41.5 (...)"."""
        parcels = dict(Property.objects.filter(pk__in=property_ids).values_list("pk", "parcel_id"))
        missing = [str(pk) for pk in property_ids if pk not in parcels]
        if missing:
            raise CommandError(f"no property with id {', '.join(missing)}")
        for property_id in property_ids:
            scores = property_rescore(property_id=property_id, as_of=as_of)
            active = sorted(
                (score for score in scores if score.model.status == ScoringModel.Status.ACTIVE),
                key=lambda score: score.trade.slug,
            )
            listed = ", ".join(_score_line(score) for score in active) or "no active model"
            self.stdout.write(f"{property_id} {parcels[property_id]}: {listed}")

    def trades(self, slugs: list[str]) -> list[Trade]:
        if not slugs:
            return list(trades_with_active_model())
        try:
            return trades_named(slugs)
        except ValueError as error:
            raise CommandError(str(error)) from None

    def run(self, run: ScoringRun, *, distributed: bool, wait: bool) -> ScoringRun:
        if not distributed:
            return runs.scoring_run_execute(run=run)
        sent = runs.scoring_run_dispatch(run=run)
        if not wait:
            return run
        self.stderr.write(
            f"{run.trade.slug}: run {run.pk}, {sent} partitions sent to the Celery workers; waiting for them "
            "(Ctrl-C stops waiting, not the run)"
        )
        return self.wait(run)

    def wait(self, run: ScoringRun) -> ScoringRun:
        """Until the run ends: its progress on stderr every PROGRESS_SECONDS, with lost partitions sent
        again; a database that went away is one line, and the waiting goes on."""
        name = f"{run.trade.slug}: run {run.pk}"
        report_at = time.monotonic() + PROGRESS_SECONDS
        away = False
        while True:
            try:
                status, ended, partitions = runs.scoring_run_progress(run_id=run.pk)
                if away:
                    self.stderr.write(f"{name}: the database is back")
                    away = False
                if status != ScoringRun.Status.RUNNING:
                    break
                if time.monotonic() >= report_at:
                    report_at = time.monotonic() + PROGRESS_SECONDS
                    recovered = runs.scoring_runs_recover()
                    line = f"{name}, {ended}/{partitions} partitions done"
                    if recovered["partitions_resent"] or recovered["partitions_failed"]:
                        line += (
                            f" ({recovered['partitions_resent']} lost partitions sent again, "
                            f"{recovered['partitions_failed']} given up)"
                        )
                    self.stderr.write(line)
            except (OperationalError, InterfaceError) as error:
                if not is_transient(error):
                    raise
                if not away:
                    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    self.stderr.write(f"{name}: the database is unreachable ({reason}); waiting for it")
                    away = True
                connection_reset()
            time.sleep(POLL_SECONDS)
        db_retry(run.refresh_from_db, what=f"reading scoring run {run.pk}")
        return run


def _score_line(score: Score) -> str:
    reasons = "; ".join(reason["text"] for reason in score.reasons)
    return f"{score.trade.slug} {score.score:.1f}" + (f" ({reasons})" if reasons else "")
