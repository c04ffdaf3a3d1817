"""Scoring runs: every property scored for a trade with its active model, partition by partition.

A run is cut into partitions of consecutive property ids. A partition reads its properties (and the
digests of their current scores) through COPY (scoring/selectors.py), computes their scores with the
pure function of scoring/services/scores.py, and writes the scores that changed in one transaction,
whole rows from one computation, so a current score is always a row written by one model version.
A score rewritten since the partition read it (a property rescored on fresher data) is left alone.
A partition that fails rolls back, records its error and leaves the others alone; the run then ends
failed, and resuming it scores only what is left. A partition's counts are set, never added to, so
retries never count a property twice.

Two runs of a trade never overlap: the run row is the lock (a partial unique constraint allows one
running run per trade, whichever process or machine started it). A run that stopped giving signs of
life for SCORING_RUN_STALE_SECONDS (its process died) is marked failed by the next start.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from contextlib import contextmanager

import pandas as pd
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from leadengine.cache import SCORES, generation_bump
from scoring import selectors
from scoring.models import ScoringModel, ScoringPartition, ScoringRun, Trade
from scoring.services.scores import PartitionScores, distribution_summary, score_properties, scores_write
from scoring.services.scoring_models import scoring_model_check

logger = logging.getLogger(__name__)

# PostgreSQL writing a partition's scores takes twice as long as Python computing them: two writers,
# each on its own connection, let it use the second core whenever Python waits.
PIPELINE_WRITERS = 2


class ScoringError(Exception):
    """A scoring run that cannot start or go on; the message says why."""


class ScoringRunBusy(ScoringError):
    """Another run of the trade is under way."""


def scoring_run_start(
    *, trade: Trade, as_of: dt.date | None = None, partition_rows: int | None = None, distributed: bool = False
) -> ScoringRun:
    """Open a run of `trade` with its active model, cut into partitions; ScoringRunBusy if one is running."""
    model = ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.ACTIVE).first()
    if model is None:
        raise ScoringError(f"{trade} has no active scoring model; activate one in the admin first")
    scoring_model_check(model=model)
    _abandoned_runs_close(trade=trade)
    ranges = selectors.property_id_ranges(rows=partition_rows or settings.SCORING_PARTITION_ROWS)
    try:
        with transaction.atomic():
            run = ScoringRun.objects.create(
                trade=trade,
                model=model,
                as_of=as_of or timezone.localdate(),
                distributed=distributed,
                partitions=len(ranges),
            )
            ScoringPartition.objects.bulk_create(
                ScoringPartition(run=run, number=number, first_id=first, last_id=last)
                for number, (first, last) in enumerate(ranges, start=1)
            )
    except IntegrityError:
        running = ScoringRun.objects.filter(trade=trade, status=ScoringRun.Status.RUNNING).first()
        raise ScoringRunBusy(
            f"a scoring run of {trade} is already running" + (f" (run {running.pk})" if running else "")
        ) from None
    return run


def _abandoned_runs_close(*, trade: Trade) -> None:
    seconds = settings.SCORING_RUN_STALE_SECONDS
    ScoringRun.objects.filter(
        trade=trade, status=ScoringRun.Status.RUNNING, heartbeat_at__lt=timezone.now() - dt.timedelta(seconds=seconds)
    ).update(
        status=ScoringRun.Status.FAILED,
        finished_at=timezone.now(),
        error=f"abandoned: no progress for {seconds} s (its process stopped); resume it to finish",
    )


def scoring_partition_run(*, partition_id: int, storms: pd.DataFrame | None = None) -> ScoringPartition:
    """Score one partition (read, compute, write) and record the outcome on the partition; the error of a
    failed partition is recorded and raised again. A partition already done is left as it is, so a
    repeated task changes nothing."""
    partition = ScoringPartition.objects.select_related("run", "run__model").get(pk=partition_id)
    if partition.status == ScoringPartition.Status.SUCCEEDED:
        return partition
    run = partition.run
    _partition_begin(partition)
    try:
        factors = scoring_model_check(model=run.model)
        if storms is None:
            storms = selectors.scoring_storms(as_of=run.as_of, window_days=run.model.storm_window_days)
        scores = _partition_compute(run, factors, storms, _partition_read(run, partition))
        _partition_write(partition, scores)
    except Exception as error:
        _partition_fail(partition, error)
        raise
    partition.refresh_from_db()
    return partition


def _partition_begin(partition: ScoringPartition) -> None:
    ScoringPartition.objects.filter(pk=partition.pk).update(attempts=F("attempts") + 1)
    ScoringRun.objects.filter(pk=partition.run_id).update(heartbeat_at=timezone.now())


def _partition_read(run: ScoringRun, partition: ScoringPartition) -> pd.DataFrame:
    return selectors.scoring_properties(
        trade_id=run.trade_id, first_id=partition.first_id, last_id=partition.last_id, as_of=run.as_of
    )


def _partition_compute(run: ScoringRun, factors, storms: pd.DataFrame, properties: pd.DataFrame) -> PartitionScores:
    return score_properties(properties, storms, factors, as_of=run.as_of, model_id=run.model_id)


@transaction.atomic
def _partition_write(partition: ScoringPartition, scores: PartitionScores) -> None:
    """The partition's changed scores and its success, in one transaction."""
    run = partition.run
    written = scores_write(scores=scores, trade_id=run.trade_id, model_id=run.model_id, scored_at=timezone.now())
    ScoringPartition.objects.filter(pk=partition.pk).update(
        status=ScoringPartition.Status.SUCCEEDED,
        properties_scored=scores.properties_scored,
        scores_changed=written,
        score_sum=scores.score_sum,
        urgency_sum=scores.urgency_sum,
        histogram=scores.histogram,
        error="",
        finished_at=timezone.now(),
    )
    ScoringRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())


def _partition_fail(partition: ScoringPartition, error: BaseException) -> None:
    ScoringPartition.objects.filter(pk=partition.pk).update(
        status=ScoringPartition.Status.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
    )
    ScoringRun.objects.filter(pk=partition.run_id).update(heartbeat_at=timezone.now())


def scoring_partition_attempt(*, partition_id: int, last_attempt: bool, storms: pd.DataFrame | None = None) -> bool:
    """One try at a partition, as a worker or the in-process loop makes it. Returns True when it should be
    tried again: the connection was lost (OperationalError) and tries are left; the partition then waits
    as pending. Any other error is final. After a final outcome, the run is closed if it was the last
    partition to finish: the run's callback, whichever process runs it."""
    try:
        scoring_partition_run(partition_id=partition_id, storms=storms)
    except OperationalError as error:
        logger.warning("scoring partition %s lost its connection: %s", partition_id, error)
        connection.close()
        if not last_attempt:
            ScoringPartition.objects.filter(pk=partition_id).update(status=ScoringPartition.Status.PENDING)
            return True
    except Exception:
        logger.exception("scoring partition %s failed", partition_id)
    run_id = ScoringPartition.objects.values_list("run_id", flat=True).get(pk=partition_id)
    scoring_run_close_if_complete(run_id=run_id)
    return False


def scoring_run_close_if_complete(*, run_id: int) -> ScoringRun | None:
    """Close a running run when none of its partitions is pending; None while some are."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        pending = run.partition_set.filter(status=ScoringPartition.Status.PENDING).exists()
        if run.status != ScoringRun.Status.RUNNING or pending:
            return None
        return scoring_run_finish(run_id=run_id)


def scoring_run_finish(*, run_id: int) -> ScoringRun:
    """Close a run from its partitions: succeeded when every partition did, else failed with their errors;
    the counts and the score distribution are summed from the partitions."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        partitions = list(run.partition_set.order_by("number"))
        done = [p for p in partitions if p.status == ScoringPartition.Status.SUCCEEDED]
        failed = [p for p in partitions if p.status != ScoringPartition.Status.SUCCEEDED]
        run.properties_scored = sum(p.properties_scored for p in done)
        run.scores_changed = sum(p.scores_changed for p in done)
        run.distribution = distribution_summary(done)
        if failed:
            run.status = ScoringRun.Status.FAILED
            run.error = "\n".join(
                f"partition {p.number} (properties {p.first_id}-{p.last_id}): {p.error or 'not run'}" for p in failed
            )
        else:
            run.status = ScoringRun.Status.SUCCEEDED
            run.error = ""
        run.finished_at = timezone.now()
        run.save(
            update_fields=["properties_scored", "scores_changed", "distribution", "status", "error", "finished_at"]
        )
        generation_bump(SCORES)  # answers built on the trade's scores (demand) are stale now
    return run


def scoring_run_execute(*, run: ScoringRun) -> ScoringRun:
    """Run the pending partitions of `run` here, in this process, and close it.

    The partitions flow through three stages at once: a reader thread reads the next partition's
    properties while this thread computes the current one and a writer thread writes the one before,
    each thread on its own connection; PostgreSQL's reading and writing then overlap with the
    computing, on separate cores. A partition that fails at any stage is recorded as failed and the
    others go on; those that failed on a lost connection are tried again, one by one, up to
    SCORING_PARTITION_ATTEMPTS tries in all. The storms of the window are read once for all partitions.
    """
    try:
        factors = scoring_model_check(model=run.model)
        storms = selectors.scoring_storms(as_of=run.as_of, window_days=run.model.storm_window_days)
    except Exception as error:
        ScoringRun.objects.filter(pk=run.pk).update(
            status=ScoringRun.Status.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
        )
        raise
    partitions = list(run.partition_set.filter(status=ScoringPartition.Status.PENDING).order_by("number"))
    for partition in partitions:
        partition.run = run

    def read(partition: ScoringPartition) -> pd.DataFrame:
        _partition_begin(partition)
        with _timed("read", partition):
            return _partition_read(run, partition)

    def compute(partition: ScoringPartition, properties: pd.DataFrame) -> PartitionScores:
        with _timed("computed", partition):
            return _partition_compute(run, factors, storms, properties)

    def write(partition: ScoringPartition, scores: PartitionScores) -> None:
        with _timed("written", partition):
            _partition_write(partition, scores)

    _pipeline(partitions, read=read, compute=compute, write=write, fail=_partition_fail)
    # Lost connections are tried again; a fault of the data or the code would give the same error.
    attempts = settings.SCORING_PARTITION_ATTEMPTS
    retry = list(
        run.partition_set.filter(
            status=ScoringPartition.Status.FAILED, error__startswith="OperationalError", attempts__lt=attempts
        ).order_by("number")
    )
    ScoringPartition.objects.filter(pk__in=[p.pk for p in retry]).update(status=ScoringPartition.Status.PENDING)
    for partition in retry:
        for attempt in range(partition.attempts + 1, attempts + 1):
            last = attempt == attempts
            if not scoring_partition_attempt(partition_id=partition.pk, last_attempt=last, storms=storms):
                break
    scoring_run_close_if_complete(run_id=run.pk)
    run.refresh_from_db()
    return run


@contextmanager
def _timed(stage: str, partition: ScoringPartition):
    started = time.monotonic()
    yield
    logger.debug("partition %s %s in %.2f s", partition.number, stage, time.monotonic() - started)


def _pipeline(items: list, *, read, compute, write, fail, writers: int = PIPELINE_WRITERS) -> None:
    """read(item) on a reader thread, compute(item, read result) on this one, write(item, computed) on
    `writers` writer threads; fail(item, error) for an item that raised at any stage, which then goes no
    further. Within a transaction, all three in turn on this thread."""
    if connection.in_atomic_block:
        # Inside the caller's transaction, other connections could not see its uncommitted rows.
        for item in items:
            try:
                write(item, compute(item, read(item)))
            except Exception as error:
                logger.error("scoring partition %s failed: %s", item, error, exc_info=error)
                fail(item, error)
        return
    to_compute: queue.Queue = queue.Queue(maxsize=1)
    to_write: queue.Queue = queue.Queue(maxsize=writers)
    done = object()
    stop = threading.Event()  # this thread stopped early: the reader must not wait for it

    def hand_on(entry) -> None:
        while not stop.is_set():
            try:
                to_compute.put(entry, timeout=0.5)
                return
            except queue.Full:
                continue

    def reader() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                try:
                    hand_on((item, read(item), None))
                except Exception as error:
                    hand_on((item, None, error))
        finally:
            hand_on(done)
            connection.close()

    def writer() -> None:
        try:
            while (entry := to_write.get()) is not done:
                item, computed = entry
                try:
                    write(item, computed)
                except Exception as error:
                    logger.exception("writing scoring partition %s failed", item)
                    fail(item, error)
        finally:
            connection.close()

    threads = [threading.Thread(target=reader, daemon=True)]
    threads += [threading.Thread(target=writer, daemon=True) for _ in range(writers)]
    for thread in threads:
        thread.start()
    try:
        while (entry := to_compute.get()) is not done:
            item, properties, error = entry
            if error is None:
                try:
                    to_write.put((item, compute(item, properties)))
                    continue
                except Exception as compute_error:
                    error = compute_error
            logger.error("scoring partition %s failed: %s", item, error, exc_info=error)
            fail(item, error)
    finally:
        stop.set()
        for _ in range(writers):
            to_write.put(done)
        for thread in threads:
            thread.join()


def scoring_run_dispatch(*, run: ScoringRun) -> int:
    """Send the pending partitions of `run` to the Celery workers (once the run is committed); each
    worker reads the storms itself, and the last partition to finish closes the run. Returns how many."""
    from scoring.tasks import score_partition

    pending = list(run.partition_set.filter(status=ScoringPartition.Status.PENDING).values_list("pk", flat=True))
    if not pending:  # no properties: no partition would close the run
        scoring_run_close_if_complete(run_id=run.pk)
        return 0
    transaction.on_commit(lambda: [score_partition.delay(partition_id) for partition_id in pending])
    return len(pending)


def scoring_run_resume(*, run: ScoringRun) -> ScoringRun:
    """Take a failed run up again, with its model version and day: its failed partitions are pending
    again and the run is running (ScoringRunBusy if another run of the trade is)."""
    if run.status == ScoringRun.Status.SUCCEEDED:
        raise ScoringError(f"run {run.pk} succeeded; there is nothing to resume")
    _abandoned_runs_close(trade=run.trade)
    try:
        with transaction.atomic():
            ScoringRun.objects.filter(pk=run.pk).update(
                status=ScoringRun.Status.RUNNING, error="", finished_at=None, heartbeat_at=timezone.now()
            )
            run.partition_set.filter(status=ScoringPartition.Status.FAILED).update(
                status=ScoringPartition.Status.PENDING
            )
    except IntegrityError:
        raise ScoringRunBusy(f"another scoring run of {run.trade} is running; resume run {run.pk} after it") from None
    run.refresh_from_db()
    return run


def trade_score(*, trade: Trade, as_of: dt.date | None = None, partition_rows: int | None = None) -> ScoringRun:
    """Score every property for `trade` here, in this process, and return the closed run."""
    run = scoring_run_start(trade=trade, as_of=as_of, partition_rows=partition_rows)
    return scoring_run_execute(run=run)
