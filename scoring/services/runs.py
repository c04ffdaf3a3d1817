"""Scoring runs: every property scored for a trade with its active model, partition by partition.

A run is cut into partitions of consecutive property ids. A partition reads its properties through
COPY (scoring/selectors.py), computes features (scoring/features.py) and scores (scoring/engine.py)
with no ORM inside, and writes its scores in one transaction: staged through COPY, then upserted by
(property, trade) with every column taken from the same computation, so a current score is always a
whole row written by one model version. A partition that fails rolls back, records its error and
leaves the others alone; the run then ends failed, and resuming it scores only what is left. A
partition's counts are set, never added to, so retries never count a property twice.

Two runs of a trade never overlap: the run row is the lock (a partial unique constraint allows one
running run per trade, whichever process or machine started it). A run that stopped giving signs of
life for SCORING_RUN_STALE_SECONDS (its process died) is marked failed by the next start.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from scoring import engine, features, selectors
from scoring.bulk import copy_rows
from scoring.engine import FactorSpec
from scoring.models import Property, Score, ScoringModel, ScoringPartition, ScoringRun, Trade
from scoring.services.scoring_models import scoring_model_check

logger = logging.getLogger(__name__)

HISTOGRAM_BINS = 1001  # 0.1-point bins: 0.0-0.1, ..., 99.9-100.0, and 100.0 itself
PERCENTILES = (5, 10, 25, 50, 75, 90, 95, 99)


class ScoringError(Exception):
    """A scoring run that cannot start or go on; the message says why."""


class ScoringRunBusy(ScoringError):
    """Another run of the trade is under way."""


@dataclass(frozen=True)
class PartitionScores:
    """What a partition computed: one row per property (property_id, score, urgency, reasons as JSON
    text, digest) and which of them differ from the stored scores."""

    rows: pd.DataFrame
    changed: np.ndarray  # bool per row

    @property
    def histogram(self) -> list[int]:
        bins = np.minimum((self.rows["score"].to_numpy() * 10 + 1e-9).astype(np.int64), HISTOGRAM_BINS - 1)
        return np.bincount(bins, minlength=HISTOGRAM_BINS).tolist()


def score_properties(
    properties: pd.DataFrame, storms: pd.DataFrame, factors: Sequence[FactorSpec], *, as_of: dt.date, model_id: int
) -> PartitionScores:
    """Pure: property rows (with their stored digests) and storms in, score rows out; the same function
    for a run and a rescore."""
    frame = features.property_features(properties, storms, as_of=as_of)
    scored = engine.score_frame(frame, factors)
    rows = pd.DataFrame(
        {
            "property_id": frame.index.to_numpy(),
            "score": scored["score"].to_numpy(),
            "urgency": scored["urgency"].to_numpy(),
            "reasons": engine.reasons_json(scored, factors, frame),
        }
    )
    rows["digest"] = pd.util.hash_pandas_object(
        rows[["score", "urgency", "reasons"]].assign(model=model_id), index=False
    )
    rows["digest"] = rows["digest"].to_numpy().view(np.int64)
    stored = properties["digest"].to_numpy(dtype=np.int64)
    changed = ~properties["scored"].to_numpy(dtype=bool) | (rows["digest"].to_numpy() != stored)
    return PartitionScores(rows=rows, changed=changed)


def scores_write(*, scores: PartitionScores, trade_id: int, model_id: int, scored_at: dt.datetime) -> int:
    """Write the scores that changed, whole rows, in the caller's transaction; returns how many.

    They are staged through COPY with the reasons as text, which PostgreSQL parses to jsonb once, for
    the rows written."""
    changed = scores.rows[scores.changed]
    if changed.empty:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS score_stage (property_id bigint, score double precision, "
            "urgency double precision, reasons text, digest bigint) ON COMMIT DELETE ROWS"
        )
        copy_rows(cursor, "score_stage", changed)
        cursor.execute(
            f"""
            INSERT INTO {Score._meta.db_table} AS t
                (property_id, trade_id, model_id, score, urgency, reasons, digest, scored_at)
            SELECT property_id, %s, %s, score, urgency, reasons::jsonb, digest, %s FROM score_stage
            ON CONFLICT (property_id, trade_id) DO UPDATE SET
                model_id = EXCLUDED.model_id, score = EXCLUDED.score, urgency = EXCLUDED.urgency,
                reasons = EXCLUDED.reasons, digest = EXCLUDED.digest, scored_at = EXCLUDED.scored_at
            """,
            [trade_id, model_id, scored_at],
        )
        cursor.execute("TRUNCATE score_stage")
    return len(changed)


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
    stale = timezone.now() - dt.timedelta(seconds=settings.SCORING_RUN_STALE_SECONDS)
    for run in ScoringRun.objects.filter(trade=trade, status=ScoringRun.Status.RUNNING, heartbeat_at__lt=stale):
        seconds = settings.SCORING_RUN_STALE_SECONDS
        ScoringRun.objects.filter(pk=run.pk, status=ScoringRun.Status.RUNNING).update(
            status=ScoringRun.Status.FAILED,
            finished_at=timezone.now(),
            error=f"abandoned: no progress for {seconds} s (its process stopped); resume it to finish",
        )


def scoring_partition_run(*, partition_id: int, storms: pd.DataFrame | None = None) -> ScoringPartition:
    """Score one partition in one transaction and record the outcome on the partition.

    A partition already done is left as it is, so a repeated task changes nothing. An error rolls the
    partition's writes back, is recorded on the partition (failed), and is raised again."""
    partition = ScoringPartition.objects.select_related("run", "run__model").get(pk=partition_id)
    run = partition.run
    if partition.status == ScoringPartition.Status.SUCCEEDED:
        return partition
    ScoringPartition.objects.filter(pk=partition.pk).update(attempts=partition.attempts + 1)
    ScoringRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
    try:
        factors = scoring_model_check(model=run.model)
        if storms is None:
            storms = selectors.scoring_storms(as_of=run.as_of, window_days=run.model.storm_window_days)
        with _snapshot():
            properties = selectors.scoring_properties(
                trade_id=run.trade_id, first_id=partition.first_id, last_id=partition.last_id, as_of=run.as_of
            )
            scores = score_properties(properties, storms, factors, as_of=run.as_of, model_id=run.model_id)
            changed = scores_write(
                scores=scores, trade_id=run.trade_id, model_id=run.model_id, scored_at=timezone.now()
            )
            ScoringPartition.objects.filter(pk=partition.pk).update(
                status=ScoringPartition.Status.SUCCEEDED,
                properties_scored=len(scores.rows),
                scores_changed=changed,
                score_sum=float(scores.rows["score"].sum()),
                urgency_sum=float(scores.rows["urgency"].sum()),
                histogram=scores.histogram,
                error="",
                finished_at=timezone.now(),
            )
    except Exception as error:
        ScoringPartition.objects.filter(pk=partition.pk).update(
            status=ScoringPartition.Status.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
        )
        raise
    finally:
        ScoringRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
    partition.refresh_from_db()
    return partition


@contextmanager
def _snapshot():
    """A transaction that reads one snapshot and refuses to overwrite a score written after it (a
    rescore of a property whose data changed): PostgreSQL raises a serialization failure, an
    OperationalError, and the partition is tried again on fresh data. Inside an outer transaction
    (tests), that one's isolation applies."""
    outer = connection.in_atomic_block
    with transaction.atomic():
        if not outer:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


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
    return run


def distribution_summary(partitions: Sequence[ScoringPartition]) -> dict:
    """Mean score and urgency, percentiles (to the 0.1 point) and a 10-point histogram of the scores."""
    count = sum(p.properties_scored for p in partitions)
    if not count:
        return {"count": 0}
    histogram = np.sum([np.asarray(p.histogram, dtype=np.int64) for p in partitions if p.histogram], axis=0)
    cumulative = np.cumsum(histogram)
    percentiles = {
        f"p{q}": round(float(np.searchsorted(cumulative, q / 100 * count, side="left")) / 10, 1) for q in PERCENTILES
    }
    tens = [int(histogram[start : start + 100].sum()) for start in range(0, 1000, 100)]
    tens[-1] += int(histogram[1000])
    return {
        "count": count,
        "mean_score": round(sum(p.score_sum for p in partitions) / count, 2),
        "mean_urgency": round(sum(p.urgency_sum for p in partitions) / count, 2),
        **percentiles,
        "histogram": {f"{10 * i}-{10 * i + 10}": n for i, n in enumerate(tens)},
    }


def scoring_run_execute(*, run: ScoringRun, progress: Callable[[ScoringPartition], None] | None = None) -> ScoringRun:
    """Run the pending partitions of `run` here, in this process, one after the other; the last one
    closes the run. The storms of the window are read once for all of them."""
    try:
        storms = selectors.scoring_storms(as_of=run.as_of, window_days=run.model.storm_window_days)
    except Exception as error:
        ScoringRun.objects.filter(pk=run.pk).update(
            status=ScoringRun.Status.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
        )
        raise
    attempts = settings.SCORING_PARTITION_ATTEMPTS
    for partition in run.partition_set.filter(status=ScoringPartition.Status.PENDING).order_by("number"):
        for attempt in range(1, attempts + 1):
            if not scoring_partition_attempt(
                partition_id=partition.pk, last_attempt=attempt == attempts, storms=storms
            ):
                break
        if progress is not None:
            partition.refresh_from_db()
            progress(partition)
    run.refresh_from_db()
    return run


def scoring_run_dispatch(*, run: ScoringRun) -> int:
    """Send the pending partitions of `run` to the Celery workers (once the run is committed); each
    worker reads the storms itself, and the last partition to finish closes the run. Returns how many."""
    from scoring.tasks import score_partition

    pending = list(run.partition_set.filter(status=ScoringPartition.Status.PENDING).values_list("pk", flat=True))
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


def trade_score(
    *, trade: Trade, as_of: dt.date | None = None, partition_rows: int | None = None, progress=None
) -> ScoringRun:
    """Score every property for `trade` here, in this process, and return the closed run."""
    run = scoring_run_start(trade=trade, as_of=as_of, partition_rows=partition_rows)
    return scoring_run_execute(run=run, progress=progress)


@transaction.atomic
def property_rescore(*, property_id: int, as_of: dt.date | None = None) -> list[Score]:
    """Score one property again for every trade with an active model, as a full run on the same day
    would (the same reads, the same function); for a property whose data just changed."""
    as_of = as_of or timezone.localdate()
    home = Property.objects.select_related("zip_code").get(pk=property_id)
    latitude = home.latitude if home.latitude is not None else home.zip_code.latitude
    longitude = home.longitude if home.longitude is not None else home.zip_code.longitude
    now = timezone.now()
    for model in ScoringModel.objects.filter(status=ScoringModel.Status.ACTIVE).select_related("trade"):
        factors = scoring_model_check(model=model)
        storms = selectors.scoring_storms(
            as_of=as_of, window_days=model.storm_window_days, near=(latitude, longitude, home.zip_code_id)
        )
        properties = selectors.scoring_properties(
            trade_id=model.trade_id, first_id=property_id, last_id=property_id, as_of=as_of
        )
        scores = score_properties(properties, storms, factors, as_of=as_of, model_id=model.pk)
        scores_write(scores=scores, trade_id=model.trade_id, model_id=model.pk, scored_at=now)
    return list(Score.objects.filter(property_id=property_id).select_related("trade", "model"))
