"""Scoring runs: every property scored for a trade with its active model, partition by partition.

A run is cut into partitions of consecutive property ids. A partition reads its properties (and the
digests of their current scores) through COPY (scoring/selectors.py), computes their scores with the
pure function of scoring/services/scores.py, and writes the scores that changed in one transaction,
whole rows from one computation, so a current score is always a row written by one model version.
A score rewritten since the partition read it (a property rescored on fresher data) is left alone.
A partition that fails rolls back, records its error and leaves the others alone; the run then ends
failed, and resuming it scores only what is left. A partition's counts are set, never added to, so
retries never count a property twice.

When the trade runs a challenger version, the run keeps the one it started with: it scores every
property with both versions, writes the challenger's score for the properties in its share and the
active version's for the others (score_properties), and records both versions' distributions over
every property (ScoringRun.shadow_distribution).

Two runs of a trade never overlap: the run row is the lock (a partial unique constraint allows one
running run per trade, whichever process or machine started it). A run shows it is alive by its
heartbeat, refreshed every sixth of SCORING_RUN_STALE_SECONDS by a thread of the process running it,
or of the worker task scoring one of its partitions. A run silent for SCORING_RUN_STALE_SECONDS has
lost its process or workers: the next start closes it as abandoned, a resume takes it over, and the
recovery sweep (scoring_runs_recover) closes it or, for a distributed run, sends its lost partitions
to the workers again.

A partition is claimed before it is scored: running, with a lease (the token of its task or process)
and a heartbeat. Only a pending partition, or one whose lease went silent, can be claimed, so a
duplicate task or a resume never scores a partition that a live holder has; only the lease holder
records the outcome. Every unit of database work (claiming, reading, writing, recording a failure,
closing the run) rides out a lost connection with core.retry.db_retry (DB_RETRY_SECONDS).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from core.cache import SCORES, generation_bump
from core.heartbeat import Heartbeat
from core.retry import db_retry, is_transient
from scoring import selectors
from scoring.errors import ScoringError, ScoringRunBusy, ScoringRunInterrupted
from scoring.models import ScoringModel, ScoringPartition, ScoringRun, Trade
from scoring.services.scores import (
    Challenger,
    PartitionScores,
    ScoreFigures,
    Version,
    challenger_of,
    distribution_summary,
    score_properties,
    scores_write,
    version_of,
)
from scoring.services.scoring_models import scoring_model_check

logger = logging.getLogger(__name__)

# PostgreSQL writing a partition's scores takes twice as long as Python computing them: two writers,
# each on its own connection, let it use the second core whenever Python waits.
PIPELINE_WRITERS = 2
# How long a pipeline thread waits on a queue before it looks again whether the run was stopped or the
# thread at the other end is gone.
QUEUE_WAIT_SECONDS = 0.5
# Heartbeats per SCORING_RUN_STALE_SECONDS: a live run misses several before it counts as stopped.
BEATS_PER_STALE_PERIOD = 6

Status = ScoringRun.Status
PartitionStatus = ScoringPartition.Status


class PartitionLeaseLost(Exception):
    """Another holder claimed the partition (this one's lease went silent) while this one scored it."""


def heartbeat_seconds() -> float:
    """How often a live run and a partition's lease holder show they are alive."""
    return max(settings.SCORING_RUN_STALE_SECONDS / BEATS_PER_STALE_PERIOD, 0.1)


def _stale_before(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(seconds=settings.SCORING_RUN_STALE_SECONDS)


def _trade_name(run: ScoringRun) -> str:
    # Never a query: this names the run in messages written while the database may be away.
    return run.trade.slug if ScoringRun.trade.is_cached(run) else f"trade {run.trade_id}"


def scoring_run_start(
    *, trade: Trade, as_of: dt.date | None = None, partition_rows: int | None = None, distributed: bool = False
) -> ScoringRun:
    """Open a run of `trade` with its active model (and its challenger, if it runs one: the run keeps it to
    the end, whatever happens to it meanwhile), cut into partitions; ScoringRunBusy if one is running with
    a live heartbeat (a silent one is closed as abandoned first)."""
    what = f"starting a scoring run of {trade.slug}"
    model = db_retry(
        lambda: ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.ACTIVE).first(), what=what
    )
    if model is None:
        raise ScoringError(f"{trade} has no active scoring model; activate one in the admin first")
    db_retry(lambda: scoring_model_check(model=model), what=what)
    challenger = db_retry(lambda: selectors.trade_challenger(trade_id=trade.pk), what=what)
    if challenger is not None:
        db_retry(lambda: scoring_model_check(model=challenger), what=what)
    db_retry(lambda: _abandoned_runs_close(trade=trade), what=what)
    ranges = db_retry(
        lambda: selectors.property_id_ranges(rows=partition_rows or settings.SCORING_PARTITION_ROWS), what=what
    )

    @transaction.atomic
    def create() -> ScoringRun:
        run = ScoringRun.objects.create(
            trade=trade,
            model=model,
            challenger=challenger,
            as_of=as_of or timezone.localdate(),
            distributed=distributed,
            partitions=len(ranges),
        )
        ScoringPartition.objects.bulk_create(
            ScoringPartition(run=run, number=number, first_id=first, last_id=last)
            for number, (first, last) in enumerate(ranges, start=1)
        )
        return run

    try:
        return db_retry(create, what=what)
    except IntegrityError:
        running = ScoringRun.objects.filter(trade=trade, status=Status.RUNNING, kind=ScoringRun.Kind.FULL).first()
        raise ScoringRunBusy(_busy_message(trade, running)) from None


def _busy_message(trade: Trade, running: ScoringRun | None) -> str:
    if running is None:
        return f"a scoring run of {trade} is already running"
    age = (timezone.now() - running.heartbeat_at).total_seconds()
    return (
        f"a scoring run of {trade} is already running (run {running.pk}), its last heartbeat {age:.0f} s ago; "
        f"a run silent for {settings.SCORING_RUN_STALE_SECONDS} s is taken as stopped"
    )


def _abandoned_runs_close(
    *, trade: Trade | None = None, distributed: bool | None = None, now: dt.datetime | None = None
) -> int:
    """Close the running runs (of `trade`, of one kind) whose heartbeat is stale as failed; how many."""
    seconds = settings.SCORING_RUN_STALE_SECONDS
    silent = ScoringRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=_stale_before(now))
    if trade is not None:
        silent = silent.filter(trade=trade)
    if distributed is not None:
        silent = silent.filter(distributed=distributed)
    return silent.update(
        status=Status.FAILED,
        finished_at=now or timezone.now(),
        error=f"abandoned: no progress for {seconds} s (its process or workers stopped); resume it to finish",
    )


def _partition_claim(partition: ScoringPartition, lease: str) -> bool:
    """Claim `partition` for the holder of `lease`: False when it is done, when a live lease holds it, or
    when its run is no longer running. One conditional UPDATE of the partition's own row, so of two
    holders racing for it exactly one wins (the loser's UPDATE re-reads the row the winner wrote)."""
    now = timezone.now()
    if not ScoringRun.objects.filter(pk=partition.run_id, status=Status.RUNNING).exists():
        return False
    running = Q(status=PartitionStatus.RUNNING)
    claimable = Q(status=PartitionStatus.PENDING) | running & (Q(lease=lease) | Q(heartbeat_at__lt=_stale_before(now)))
    claimed = ScoringPartition.objects.filter(claimable, pk=partition.pk).update(
        status=PartitionStatus.RUNNING, lease=lease, heartbeat_at=now, attempts=F("attempts") + 1, finished_at=None
    )
    if claimed:
        ScoringRun.objects.filter(pk=partition.run_id, status=Status.RUNNING).update(heartbeat_at=now)
    return bool(claimed)


def _partition_read(run: ScoringRun, partition: ScoringPartition) -> pd.DataFrame:
    return selectors.scoring_properties(
        trade_id=run.trade_id, first_id=partition.first_id, last_id=partition.last_id, as_of=run.as_of
    )


def _run_versions(run: ScoringRun, storms: pd.DataFrame | None = None) -> tuple[Version, Challenger | None]:
    """The run's active version and challenger as score_properties runs them (the storms of each one's
    window read once; `storms`: the active version's, read already)."""
    active = version_of(run.model, as_of=run.as_of, storms=storms)
    challenger = run.challenger if run.challenger_id is not None else None
    return active, challenger_of(challenger, active=run.model, active_version=active, as_of=run.as_of)


def _partition_compute(
    run: ScoringRun, versions: tuple[Version, Challenger | None], properties: pd.DataFrame
) -> PartitionScores:
    active, challenger = versions
    return score_properties(
        properties, active.storms, active.factors, as_of=run.as_of, model_id=run.model_id, challenger=challenger
    )


@transaction.atomic
def _partition_write(partition: ScoringPartition, scores: PartitionScores, lease: str, read_at: dt.datetime) -> None:
    """The partition's changed scores and its success, in one transaction, by the holder of `lease` only
    (PartitionLeaseLost otherwise, and nothing is written); `read_at`: when the storms they were computed
    with were read (see scores_write). Safe to run again after a lost connection: a write that reached the
    database before the connection went is not made twice."""
    held = ScoringPartition.objects.filter(pk=partition.pk).values_list("status", "lease").first()
    if held == (PartitionStatus.SUCCEEDED, lease):
        return
    if held != (PartitionStatus.RUNNING, lease):
        raise PartitionLeaseLost(f"{partition} was claimed by another holder")
    run = partition.run
    written = scores_write(scores=scores, trade_id=run.trade_id, scored_at=read_at)
    # Conditional again: a holder that claimed the partition meanwhile makes this UPDATE find no row,
    # and the scores above roll back with it.
    recorded = ScoringPartition.objects.filter(pk=partition.pk, status=PartitionStatus.RUNNING, lease=lease).update(
        status=PartitionStatus.SUCCEEDED,
        properties_scored=scores.properties_scored,
        scores_changed=written,
        score_sum=scores.score_sum,
        urgency_sum=scores.urgency_sum,
        histogram=scores.histogram,
        shadow={name: figures.as_json() for name, figures in (scores.shadow or {}).items()},
        error="",
        heartbeat_at=timezone.now(),
        finished_at=timezone.now(),
    )
    if not recorded:
        raise PartitionLeaseLost(f"{partition} was claimed by another holder")


def _partitions_fail(partitions: QuerySet[ScoringPartition], error: BaseException) -> None:
    """Record `error` on the partitions given (a queryset): pending again when the connection was lost and
    tries are left (SCORING_PARTITION_ATTEMPTS), else failed."""
    message = f"{type(error).__name__}: {error}".strip()
    now = timezone.now()
    with transaction.atomic():
        if is_transient(error):
            partitions.filter(attempts__lt=settings.SCORING_PARTITION_ATTEMPTS).update(
                status=PartitionStatus.PENDING, lease="", heartbeat_at=None, error=message
            )
        partitions.filter(status=PartitionStatus.RUNNING).update(
            status=PartitionStatus.FAILED, error=message, finished_at=now
        )


def _partition_fail(partition: ScoringPartition, error: BaseException, lease: str) -> str | None:
    """Record the failure of the holder of `lease`; the partition's status then (None: not its holder)."""
    if isinstance(error, PartitionLeaseLost):
        return None
    held = ScoringPartition.objects.filter(pk=partition.pk, status=PartitionStatus.RUNNING, lease=lease)
    _partitions_fail(held, error)
    ScoringRun.objects.filter(pk=partition.run_id, status=Status.RUNNING).update(heartbeat_at=timezone.now())
    return (
        ScoringPartition.objects.filter(pk=partition.pk, lease__in=[lease, ""]).values_list("status", flat=True).first()
    )


def _heartbeat(*, run_id: int, partition_id: int | None = None, lease: str = "") -> AbstractContextManager[object]:
    """While the block runs, the run's heartbeat and, given a lease, that of the partitions it holds (or of
    the one partition given) are refreshed every heartbeat_seconds() from a thread of their own. Inside a
    transaction, nothing: another connection could not see the uncommitted run."""
    if connection.in_atomic_block:
        return nullcontext()

    def beat() -> None:
        now = timezone.now()
        ScoringRun.objects.filter(pk=run_id, status=Status.RUNNING).update(heartbeat_at=now)
        if lease:
            held = ScoringPartition.objects.filter(run_id=run_id, status=PartitionStatus.RUNNING, lease=lease)
            if partition_id is not None:
                held = held.filter(pk=partition_id)
            held.update(heartbeat_at=now)

    return Heartbeat(beat, every=heartbeat_seconds(), name=f"scoring run {run_id}")


def scoring_partition_attempt(*, partition_id: int, lease: str, storms: pd.DataFrame | None = None) -> bool:
    """One try at a partition by the holder of `lease` (a worker's task id), which claims it first and does
    nothing if it cannot (done, or held by a live lease). Returns True when it should be tried again
    later: the database stayed unreachable for longer than DB_RETRY_SECONDS, or the connection was lost
    and the partition is pending again with tries left (SCORING_PARTITION_ATTEMPTS). Any other error is
    final. After a final outcome the run is closed if it was the last partition to end: the run's
    callback, whichever process runs it."""
    what = f"scoring partition {partition_id}"

    def claim() -> ScoringPartition | None:
        partition = ScoringPartition.objects.select_related("run", "run__model", "run__challenger", "run__trade").get(
            pk=partition_id
        )
        return partition if _partition_claim(partition, lease) else None

    try:
        partition = db_retry(claim, what=what)
    except Exception as error:
        if not is_transient(error):
            raise
        logger.warning("%s: the database stayed unreachable; it is tried again later: %s", what, error)
        return True
    if partition is None:
        logger.info("%s: done, or held by another live task; nothing to do", what)
        return False
    with _heartbeat(run_id=partition.run_id, partition_id=partition.pk, lease=lease):
        try:
            _partition_score(partition, lease=lease, storms=storms)
        except PartitionLeaseLost as lost:
            logger.warning("%s: %s; its scores are left to that holder", what, lost)
            return False
        except Exception as error:
            if is_transient(error):
                logger.warning("%s lost its database connection: %s", what, error)
            else:
                logger.exception("%s failed", what)
            try:
                status = db_retry(functools.partial(_partition_fail, partition, error, lease), what=what)
            except Exception as record_error:
                if not is_transient(record_error):
                    raise
                # Its lease lets this task claim it again; if the task is lost, the recovery sweep resends it.
                logger.error("%s: its failure could not be recorded; it is tried again later: %s", what, record_error)
                return True
            if status == PartitionStatus.PENDING:
                return True
    try:
        db_retry(lambda: scoring_run_close_if_complete(run_id=partition.run_id), what=what)
    except Exception as error:
        if not is_transient(error):
            raise
        logger.error("%s: its run could not be closed; the recovery sweep closes it: %s", what, error)
    return False


def _partition_score(partition: ScoringPartition, *, lease: str, storms: pd.DataFrame | None = None) -> None:
    """Read, compute and write a claimed partition, each stage riding out a lost connection."""
    run = partition.run
    what = f"scoring partition {partition.number} of run {run.pk}"
    read_at = timezone.now()
    versions = db_retry(lambda: _run_versions(run, storms), what=what)
    properties = db_retry(lambda: _partition_read(run, partition), what=what)
    scores = _partition_compute(run, versions, properties)
    db_retry(lambda: _partition_write(partition, scores, lease, read_at), what=what)


def scoring_run_close_if_complete(*, run_id: int) -> ScoringRun | None:
    """Close a running run when none of its partitions is pending or running; None while some are."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        open_ = run.partition_set.filter(status__in=[PartitionStatus.PENDING, PartitionStatus.RUNNING]).exists()
        if run.status != Status.RUNNING or open_:
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
        # With a challenger, both versions over every property: the same properties, side by side.
        versions = ("active", "challenger") if run.challenger_id is not None else ()
        run.shadow_distribution = {
            name: distribution_summary([ScoreFigures(**p.shadow[name]) for p in done if name in p.shadow])
            for name in versions
        }
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
            update_fields=[
                *("properties_scored", "scores_changed", "distribution", "shadow_distribution", "status", "error"),
                "finished_at",
            ]
        )
        generation_bump(SCORES)  # answers built on the trade's scores (demand) are stale now
        if run.distributed:
            transaction.on_commit(functools.partial(_run_ended_send, run.pk))
    return run


def _run_ended_send(run_id: int) -> None:
    """Tell whoever waits for the distributed run that it closed: the task SCORING_RUN_ENDED_TASK, sent by
    name (what waits, the operations' jobs, sits above scoring). A run scored in one process is closed by
    its caller, which needs no message. A broker that refuses is logged: the waiter's own sweep looks."""
    from celery import current_app

    task = getattr(settings, "SCORING_RUN_ENDED_TASK", "")
    if not task:
        return
    try:
        current_app.send_task(task, args=[run_id])
    except Exception as error:
        logger.warning("scoring run %s closed; %s was not sent (%s): the recovery sweep sees it", run_id, task, error)


def scoring_run_execute(*, run: ScoringRun) -> ScoringRun:
    """Run the pending partitions of `run` here, in this process, and close it.

    The partitions flow through three stages at once: a reader thread claims and reads the next
    partition's properties while this thread computes the current one and a writer thread writes the one
    before, each thread on its own connection; PostgreSQL's reading and writing then overlap with the
    computing, on separate cores. A heartbeat thread shows the run is alive. Every stage's database work
    rides out a lost connection (DB_RETRY_SECONDS). A partition that fails at any stage is recorded and
    the others go on; those that failed on a lost connection are pending again and go through the stages
    once more, up to SCORING_PARTITION_ATTEMPTS tries in all. The storms of the window are read once.

    ScoringRunInterrupted when the database stayed away so long that even the failure could not be
    recorded: the run is then left silent, closed as abandoned later, and finished by a resume.
    """
    what = f"scoring run {run.pk} of {_trade_name(run)}"
    lease = f"process-{uuid.uuid4().hex}"
    read_at = timezone.now()  # before the storms are read: the scores' scored_at (see scores_write)
    try:
        versions = db_retry(lambda: _run_versions(run), what=what)
    except Exception as error:
        _run_fail(run, error, what=what)
        raise

    def read(partition: ScoringPartition) -> pd.DataFrame | None:
        if not db_retry(lambda: _partition_claim(partition, lease), what=what):
            return None
        with _timed("read", partition):
            return db_retry(lambda: _partition_read(run, partition), what=what)

    def compute(partition: ScoringPartition, properties: pd.DataFrame) -> PartitionScores:
        with _timed("computed", partition):
            return _partition_compute(run, versions, properties)

    def write(partition: ScoringPartition, scores: PartitionScores) -> None:
        with _timed("written", partition):
            db_retry(lambda: _partition_write(partition, scores, lease, read_at), what=what)

    def fail(partition: ScoringPartition, error: BaseException) -> None:
        db_retry(lambda: _partition_fail(partition, error, lease), what=what)

    def pending() -> list[ScoringPartition]:
        return list(run.partition_set.filter(status=PartitionStatus.PENDING).order_by("number"))

    try:
        with _heartbeat(run_id=run.pk, lease=lease):
            for _ in range(settings.SCORING_PARTITION_ATTEMPTS):
                partitions = db_retry(pending, what=what)
                if not partitions:
                    break
                for partition in partitions:
                    partition.run = run
                try:
                    _pipeline(partitions, read=read, compute=compute, write=write, fail=fail)
                except Exception as error:
                    if not is_transient(error):
                        raise
                    # Partitions this process claimed and could not record: pending again, or failed.
                    claimed = run.partition_set.filter(status=PartitionStatus.RUNNING, lease=lease)
                    db_retry(functools.partial(_partitions_fail, claimed, error), what=what)
            # Left pending after every round (the database kept failing): failed, so that the run ends.
            db_retry(
                lambda: run.partition_set.filter(status=PartitionStatus.PENDING).update(
                    status=PartitionStatus.FAILED,
                    error="not run: the database kept failing while this run tried it",
                    finished_at=timezone.now(),
                ),
                what=what,
            )
            db_retry(lambda: scoring_run_close_if_complete(run_id=run.pk), what=what)
            db_retry(run.refresh_from_db, what=what)
    except Exception as error:
        _run_fail(run, error, what=what)  # a fault of the code: the run ends failed with it
        raise
    return run


def _run_fail(run: ScoringRun, error: BaseException, *, what: str) -> None:
    """Close `run` as failed with `error`; ScoringRunInterrupted when the database is away."""
    if is_transient(error):
        raise _interrupted(run, error) from error
    try:
        db_retry(
            lambda: ScoringRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
                status=Status.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
            ),
            what=what,
        )
    except Exception as record_error:
        if not is_transient(record_error):
            raise
        raise _interrupted(run, record_error) from error


def _interrupted(run: ScoringRun, error: BaseException) -> ScoringRunInterrupted:
    logger.error("scoring run %s stopped: the database stayed unreachable: %s", run.pk, error)
    return ScoringRunInterrupted(
        f"{_trade_name(run)}: run {run.pk} stopped: the database stayed unreachable for more than "
        f"{settings.DB_RETRY_SECONDS} s ({type(error).__name__}: {str(error).strip()}); it is closed as abandoned "
        f"{settings.SCORING_RUN_STALE_SECONDS} s after its last heartbeat, and `score --resume {run.pk}` finishes it"
    )


Item = TypeVar("Item")
Read = TypeVar("Read")
Computed = TypeVar("Computed")


@contextmanager
def _timed(stage: str, partition: ScoringPartition) -> Iterator[None]:
    started = time.monotonic()
    yield
    logger.debug("partition %s %s in %.2f s", partition.number, stage, time.monotonic() - started)


def _pipeline(
    items: Sequence[Item],
    *,
    read: Callable[[Item], Read | None],
    compute: Callable[[Item, Read], Computed],
    write: Callable[[Item, Computed], None],
    fail: Callable[[Item, BaseException], None],
    writers: int = PIPELINE_WRITERS,
) -> None:
    """read(item) on a reader thread, compute(item, read result) on this one, write(item, computed) on
    `writers` writer threads; read returning None drops the item (another holder has it); fail(item,
    error) for an item that raised at any stage, which then goes no further. Within a transaction, all
    three in turn on this thread.

    Nothing waits for ever: every wait on a queue is short and then looks whether the pipeline stopped
    or the thread at the other end is gone. When fail itself raises (the failure could not be recorded:
    the database stayed away), the pipeline stops: each thread drops what it holds and ends, and that
    error is raised here once they have ended (waiting at most DB_RETRY_SECONDS + 30 s for a thread in
    the middle of its database work)."""
    if connection.in_atomic_block:
        # Inside the caller's transaction, other connections could not see its uncommitted rows.
        for item in items:
            try:
                properties = read(item)
                if properties is not None:
                    write(item, compute(item, properties))
            except Exception as error:
                logger.error("scoring partition %s failed: %s", item, error, exc_info=error)
                fail(item, error)
        return
    # Entries of either stage, and `done` after the last.
    to_compute: queue.Queue[Any] = queue.Queue(maxsize=1)
    to_write: queue.Queue[Any] = queue.Queue(maxsize=writers)
    done = object()
    stop = threading.Event()  # the pipeline stopped early: every thread drops what it holds and ends
    broken: list[BaseException] = []

    def halt(error: BaseException) -> None:
        broken.append(error)
        stop.set()

    def record(item: Item, error: BaseException) -> None:
        if isinstance(error, PartitionLeaseLost):
            logger.warning("scoring partition %s: %s; left to that holder", item, error)
        else:
            logger.error("scoring partition %s failed: %s", item, error, exc_info=error)
        try:
            fail(item, error)
        except Exception as fail_error:
            logger.error("scoring partition %s: its failure could not be recorded: %s", item, fail_error)
            halt(fail_error)

    def put(to: queue.Queue[Any], entry: object, others_alive: Callable[[], bool]) -> bool:
        while not stop.is_set():
            try:
                to.put(entry, timeout=QUEUE_WAIT_SECONDS)
            except queue.Full:
                if not others_alive():
                    halt(RuntimeError("the threads taking from the queue ended"))
            else:
                return True
        return False

    def get(source: queue.Queue[Any], others_alive: Callable[[], bool]) -> Any:
        while not stop.is_set():
            try:
                return source.get(timeout=QUEUE_WAIT_SECONDS)
            except queue.Empty:
                if not others_alive() and source.empty():
                    halt(RuntimeError("the thread feeding the queue ended"))
        return done

    def reader() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                try:
                    properties = read(item)
                    if properties is not None:
                        put(to_compute, (item, properties, None), lambda: True)
                except Exception as error:
                    put(to_compute, (item, None, error), lambda: True)
        finally:
            put(to_compute, done, lambda: True)
            connection.close()

    def writer() -> None:
        try:
            while (entry := get(to_write, lambda: True)) is not done:
                item, computed = entry
                try:
                    write(item, computed)
                except Exception as error:
                    record(item, error)
        finally:
            connection.close()

    read_thread = threading.Thread(target=reader, daemon=True, name="scoring-reader")
    write_threads = [threading.Thread(target=writer, daemon=True, name="scoring-writer") for _ in range(writers)]
    threads = [read_thread, *write_threads]
    for thread in threads:
        thread.start()

    def writers_alive() -> bool:
        return any(thread.is_alive() for thread in write_threads)

    try:
        while (entry := get(to_compute, read_thread.is_alive)) is not done:
            item, properties, failure = entry
            if failure is None:
                try:
                    put(to_write, (item, compute(item, properties)), writers_alive)
                    continue
                except Exception as compute_error:
                    failure = compute_error
            record(item, failure)
    except BaseException as error:
        halt(error)
        raise
    finally:
        for _ in write_threads:
            put(to_write, done, writers_alive)
        grace = time.monotonic() + settings.DB_RETRY_SECONDS + 30
        for thread in threads:
            while thread.is_alive() and not (stop.is_set() and time.monotonic() > grace):
                thread.join(timeout=QUEUE_WAIT_SECONDS)
            if thread.is_alive():
                logger.error("scoring pipeline: %s still busy after the pipeline stopped; left behind", thread.name)
    if broken:
        raise broken[0]


def scoring_run_dispatch(*, run: ScoringRun) -> int:
    """Send the pending partitions of `run` to the Celery workers (once the run is committed); each
    worker reads the storms itself, and the last partition to finish closes the run. Returns how many.
    A message the broker did not take is sent again by the recovery sweep (scoring_runs_recover)."""

    @transaction.atomic
    def mark() -> list[int]:
        now = timezone.now()
        ScoringRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(distributed=True, heartbeat_at=now)
        pending = list(run.partition_set.filter(status=PartitionStatus.PENDING).values_list("pk", flat=True))
        ScoringPartition.objects.filter(pk__in=pending).update(dispatched_at=now, dispatches=F("dispatches") + 1)
        transaction.on_commit(lambda: _partitions_send(pending))
        return pending

    pending = db_retry(mark, what=f"sending scoring run {run.pk} to the workers")
    run.distributed = True
    if not pending:  # no properties: no partition would close the run
        db_retry(lambda: scoring_run_close_if_complete(run_id=run.pk), what=f"closing scoring run {run.pk}")
    return len(pending)


def _partitions_send(partition_ids: list[int]) -> None:
    from scoring.tasks import score_partition

    for partition_id in partition_ids:
        try:
            score_partition.delay(partition_id)
        except Exception as error:  # the broker is away: the recovery sweep sends it once the run falls silent
            logger.error("scoring partition %s could not be sent to the workers: %s", partition_id, error)


def scoring_runs_recover(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Take up what stopped runs left behind (the periodic recovery sweep, and a waiting `score
    --distributed`). Silent means no heartbeat for SCORING_RUN_STALE_SECONDS.

    - An in-process run whose heartbeat is silent (its process died) is closed as failed ("abandoned").
    - A distributed run's partition held by a silent lease (its worker died, or lost the database while
      recording) is sent to the workers again, and so is a pending one of a silent run sent that long
      ago (its message was lost); a partition that used its SCORING_PARTITION_ATTEMPTS tries, or was
      sent that many times without a worker taking it, is failed instead, so that the run ends.
    - A distributed run whose partitions have all ended is closed (its last task could not close it).

    Safe to run from several places at once: a partition is locked (SKIP LOCKED) while it is decided on.
    Returns the counts: runs_abandoned, partitions_resent, partitions_failed, runs_closed."""
    now = now or timezone.now()
    stale = _stale_before(now)
    tries = settings.SCORING_PARTITION_ATTEMPTS
    seconds = settings.SCORING_RUN_STALE_SECONDS
    counts = {"runs_abandoned": 0, "partitions_resent": 0, "partitions_failed": 0, "runs_closed": 0}
    counts["runs_abandoned"] = _abandoned_runs_close(distributed=False, now=now)
    running = ScoringRun.objects.filter(status=Status.RUNNING, distributed=True)
    run_ids = list(running.values_list("pk", flat=True))
    silent_runs = list(running.filter(heartbeat_at__lt=stale).values_list("pk", flat=True))
    with transaction.atomic():
        lost = (
            ScoringPartition.objects.filter(run_id__in=run_ids)
            .filter(
                Q(status=PartitionStatus.RUNNING, heartbeat_at__lt=stale)
                | Q(status=PartitionStatus.PENDING, run_id__in=silent_runs)
                & (Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
            )
            .select_for_update(skip_locked=True)
            .order_by("pk")
        )
        resend, fail = [], {}
        for partition in lost:
            if partition.status == PartitionStatus.RUNNING and partition.attempts >= tries:
                fail[partition.pk] = (
                    f"lost: its worker stopped or lost the database during try {partition.attempts} of {tries}"
                    + (f" ({partition.error})" if partition.error else "")
                )
            elif partition.status == PartitionStatus.PENDING and partition.dispatches >= tries:
                fail[partition.pk] = (
                    f"not run: sent to the workers {partition.dispatches} times, and none took it within {seconds} s"
                )
            else:
                resend.append(partition.pk)
        for pk, error in fail.items():
            ScoringPartition.objects.filter(pk=pk).update(status=PartitionStatus.FAILED, error=error, finished_at=now)
        ScoringPartition.objects.filter(pk__in=resend).update(
            status=PartitionStatus.PENDING,
            lease="",
            heartbeat_at=None,
            dispatched_at=now,
            dispatches=F("dispatches") + 1,
        )
        transaction.on_commit(lambda: _partitions_send(resend))
    for pk in resend:
        logger.warning("scoring partition %s was lost; sent to the workers again", pk)
    counts["partitions_resent"], counts["partitions_failed"] = len(resend), len(fail)
    ended = ScoringRun.objects.filter(pk__in=run_ids).annotate(
        open_partitions=Count(
            "partition_set", filter=Q(partition_set__status__in=[PartitionStatus.PENDING, PartitionStatus.RUNNING])
        )
    )
    for run_id in ended.filter(open_partitions=0).values_list("pk", flat=True):
        if scoring_run_close_if_complete(run_id=run_id) is not None:
            counts["runs_closed"] += 1
    return counts


def scoring_run_progress(*, run_id: int) -> tuple[str, int, int]:
    """(the run's status, its partitions that ended, its partitions)."""
    run = ScoringRun.objects.filter(pk=run_id).annotate(
        ended=Count(
            "partition_set",
            filter=Q(partition_set__status__in=[PartitionStatus.SUCCEEDED, PartitionStatus.FAILED]),
        )
    )
    status, ended, partitions = run.values_list("status", "ended", "partitions").get()
    return status, ended, partitions


def scoring_run_resume(*, run: ScoringRun) -> ScoringRun:
    """Take a run up again, with its model version and day: a failed one, or a running one whose heartbeat
    is silent (its process or workers stopped), which is taken over. Its unfinished partitions are pending
    again and the run is running. ScoringRunBusy while it, or another run of the trade, is alive."""
    if run.status == Status.SUCCEEDED:
        raise ScoringError(f"run {run.pk} succeeded; there is nothing to resume")
    if run.kind == ScoringRun.Kind.INCREMENTAL:
        raise ScoringError(
            f"run {run.pk} is incremental: it is not resumed; the rescoring of its imports is tried again by itself"
        )
    what = f"resuming scoring run {run.pk}"

    @transaction.atomic
    def take_over() -> int:
        _abandoned_runs_close(trade=run.trade)  # a silent run, this one or another, is failed first
        taken = ScoringRun.objects.filter(pk=run.pk, status=Status.FAILED).update(
            status=Status.RUNNING, error="", finished_at=None, heartbeat_at=timezone.now()
        )
        if taken:
            run.partition_set.exclude(status=PartitionStatus.SUCCEEDED).update(
                status=PartitionStatus.PENDING, lease="", heartbeat_at=None, dispatched_at=None, dispatches=0
            )
        return taken

    try:
        taken = db_retry(take_over, what=what)
    except IntegrityError:
        raise ScoringRunBusy(f"another scoring run of {run.trade} is running; resume run {run.pk} after it") from None
    db_retry(run.refresh_from_db, what=what)
    if not taken:
        if run.status == Status.SUCCEEDED:
            raise ScoringError(f"run {run.pk} succeeded; there is nothing to resume")
        age = (timezone.now() - run.heartbeat_at).total_seconds()
        raise ScoringRunBusy(
            f"run {run.pk} of {run.trade} is still running, its last heartbeat {age:.0f} s ago; it can be resumed "
            f"once it has been silent for {settings.SCORING_RUN_STALE_SECONDS} s (its process or workers stopped)"
        )
    return run


def trade_score(*, trade: Trade, as_of: dt.date | None = None, partition_rows: int | None = None) -> ScoringRun:
    """Score every property for `trade` here, in this process, and return the closed run."""
    run = scoring_run_start(trade=trade, as_of=as_of, partition_rows=partition_rows)
    return scoring_run_execute(run=run)


@dataclass(frozen=True)
class Rescored:
    """An incremental run and the properties whose score it changed (the ones a signal's leads may come from)."""

    run: ScoringRun
    changed: list[int]


def scoring_run_incremental(
    *, trade: Trade, property_ids: Sequence[int], as_of: dt.date | None = None, cause: str = ""
) -> Rescored:
    """Score only `property_ids` for `trade` (those a storm, a permit or a sale just imported reached), as a
    full run of the same day would score them (the same reads, the same function, the same version or
    challenger), and return the closed run (kind incremental) with the properties whose score changed.

    It does not wait for a full run of the trade under way, nor hold one back (the partial unique constraint
    covers full runs only): a storm's leads must not wait for the night. The two cannot undo each other's
    work: each score carries when its data was read, and scores_write never lets older data replace it. One
    transaction: a run that fails wrote nothing and is recorded failed with its error; one whose process
    died is closed as abandoned by the next start, like any silent run."""
    what = f"rescoring {len(property_ids):,} properties for {trade.slug}"
    ids = sorted({int(pk) for pk in property_ids})
    model = db_retry(
        lambda: ScoringModel.objects.filter(trade=trade, status=ScoringModel.Status.ACTIVE).first(), what=what
    )
    if model is None:
        raise ScoringError(f"{trade} has no active scoring model; activate one in the admin first")
    run = db_retry(
        lambda: ScoringRun.objects.create(
            trade=trade,
            model=model,
            challenger=selectors.trade_challenger(trade_id=trade.pk),
            as_of=as_of or timezone.localdate(),
            kind=ScoringRun.Kind.INCREMENTAL,
            cause=cause[:200],
        ),
        what=what,
    )

    @transaction.atomic
    def score() -> tuple[PartitionScores, int]:
        read_at = timezone.now()  # before anything is read: the scores' scored_at (see scores_write)
        versions = _run_versions(run)
        properties = selectors.scoring_properties_of(trade_id=trade.pk, property_ids=ids, as_of=run.as_of)
        scores = _partition_compute(run, versions, properties)
        return scores, scores_write(scores=scores, trade_id=trade.pk, scored_at=read_at, guard=False)

    try:
        with _heartbeat(run_id=run.pk):
            scores, written = db_retry(score, what=what)
    except Exception as error:
        _run_fail(run, error, what=what)
        raise
    run.properties_scored, run.scores_changed = scores.properties_scored, written
    run.distribution = distribution_summary([scores])
    run.status, run.finished_at = Status.SUCCEEDED, timezone.now()
    db_retry(
        lambda: run.save(
            update_fields=["properties_scored", "scores_changed", "distribution", "status", "finished_at"]
        ),
        what=what,
    )
    if written:
        generation_bump(SCORES)
    changed = scores.rows["property_id"].to_numpy()[scores.changed]
    return Rescored(run=run, changed=sorted(int(pk) for pk in changed))
