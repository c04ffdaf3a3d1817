"""What a scrape reads at the moment Prometheus asks: job runs and leads from PostgreSQL, queue lengths from the
broker (Redis). Each source that cannot be read is said so (leadengine_database_up, leadengine_broker_up 0) and
its families are left out; the scrape still answers, with the rest."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.api.errors import database_unavailable
from leadengine.models import JobRun
from leadengine.selectors import job_run_groups
from leads.models import Lead
from leads.selectors import lead_counts_by_state

log = logging.getLogger(__name__)

# The job runs counted: those queued in this window before the scrape, and those still queued or running.
JOB_RUNS_WINDOW = dt.timedelta(hours=24)
# The leads counted by state and trade are at most this old: a full count of the table at every scrape would
# cost a sequential scan of millions of rows (README, "Metrics").
LEAD_COUNTS_CACHE_SECONDS = 60


def _seconds(moment: dt.datetime) -> float:
    return moment.timestamp()


def job_families(now: dt.datetime) -> list[Metric]:
    """The job runs' families, from one grouped query (job_run_groups)."""
    groups = job_run_groups(since=now - JOB_RUNS_WINDOW)
    runs = GaugeMetricFamily(
        "leadengine_job_runs",
        f"Job runs queued in the last {JOB_RUNS_WINDOW.total_seconds() / 3600:g} hours, and runs still queued or "
        "running, by job, trade (empty: a job of every trade) and status",
        labels=["job", "trade", "status"],
    )
    duration = GaugeMetricFamily(
        "leadengine_job_last_run_duration_seconds",
        "Duration of the job's latest run that started and ended (in the window), by job and trade",
        labels=["job", "trade"],
    )
    finished = GaugeMetricFamily(
        "leadengine_job_last_run_finished_timestamp_seconds",
        "When that run ended (Unix time), by job, trade and its status (succeeded, failed or skipped)",
        labels=["job", "trade", "status"],
    )
    succeeded = GaugeMetricFamily(
        "leadengine_job_last_success_timestamp_seconds",
        "When the job's latest successful run (in the window) ended (Unix time), by job and trade",
        labels=["job", "trade"],
    )
    latest: dict[tuple[str, str], tuple[dt.datetime, dt.timedelta, str]] = {}
    for group in groups:
        trade = group.trade or ""
        runs.add_metric([group.job, trade, group.status], group.runs)
        if group.last_finished_at is None or group.last_duration is None:
            continue
        key = (group.job, trade)
        if key not in latest or group.last_finished_at > latest[key][0]:
            latest[key] = (group.last_finished_at, group.last_duration, group.status)
        if group.status == JobRun.Status.SUCCEEDED:
            succeeded.add_metric([group.job, trade], _seconds(group.last_finished_at))
    for (job, trade), (at, took, status) in sorted(latest.items()):
        duration.add_metric([job, trade], took.total_seconds())
        finished.add_metric([job, trade, status], _seconds(at))
    return [runs, duration, finished, succeeded]


def lead_families() -> list[Metric]:
    counts = lead_counts_by_state(cache_seconds=LEAD_COUNTS_CACHE_SECONDS)
    leads = GaugeMetricFamily(
        "leadengine_leads",
        f"Leads by trade and state (counted at most {LEAD_COUNTS_CACHE_SECONDS} s before the scrape); every state "
        "of a trade that has leads, zeros included",
        labels=["trade", "state"],
    )
    for trade in sorted({trade for trade, _state in counts}):
        for state in Lead.State.values:
            leads.add_metric([trade, state], counts.get((trade, state), 0))
    return [leads]


def broker_queue_lengths() -> dict[str, int]:
    """Messages waiting in each of Celery's queues (the default queue and any configured), counted in the broker
    (Redis LLEN, over kombu's priority sub-queues), in one round trip. One connection attempt, within the broker's
    timeouts (BROKER_TIMEOUT_SECONDS); raises when the broker cannot be read."""
    from leadengine.celery import app

    names = sorted({app.conf.task_default_queue, *(queue.name for queue in app.conf.task_queues or ())})
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=0)
        channel = connection.default_channel
        # The keys kombu's Redis channel keeps a queue's messages under, one per priority step (its own _size does
        # the same, one queue per round trip).
        keys = [(name, channel._q_for_pri(name, priority)) for name in names for priority in channel.priority_steps]
        with channel.client.pipeline(transaction=False) as pipeline:
            for _name, key in keys:
                pipeline.llen(key)
            lengths = pipeline.execute()
    totals = dict.fromkeys(names, 0)
    for (name, _key), length in zip(keys, lengths, strict=True):
        totals[name] += length
    return totals


def broker_families() -> list[Metric]:
    up = GaugeMetricFamily(
        "leadengine_broker_up", "1 when the scrape read the broker's queues (Redis), 0 when it could not"
    )
    try:
        lengths = broker_queue_lengths()
    except Exception as error:  # any failure: the queues are unknown, said so, and the rest still answers
        log.warning("metrics: the broker could not be read: %s: %s", type(error).__name__, error)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    queued = GaugeMetricFamily(
        "leadengine_broker_queue_messages", "Messages waiting in the broker for a worker, by Celery queue",
        labels=["queue"],
    )  # fmt: skip
    for name, length in lengths.items():
        queued.add_metric([name], length)
    return [up, queued]


def database_families(now: dt.datetime) -> list[Metric]:
    up = GaugeMetricFamily(
        "leadengine_database_up", "1 when the scrape read job runs and leads from PostgreSQL, 0 when it could not"
    )
    try:
        families = [*job_families(now), *lead_families()]
    except DatabaseError as error:
        if not database_unavailable(error):
            raise
        log.warning("metrics: the database could not be read: %s", error)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    return [up, *families]


class OperationsCollector(Collector):
    """Job runs, leads and the broker's queues, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from database_families(timezone.now())
        yield from broker_families()
