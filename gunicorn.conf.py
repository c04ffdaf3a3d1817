"""Gunicorn's settings file: gunicorn reads ./gunicorn.conf.py from its working directory unless told otherwise, so
the Procfile's web line uses it as it is; its command-line flags win over anything set here.

With PROMETHEUS_MULTIPROC_DIR set, every worker process keeps its request figures in files there and /metrics adds
them up (prometheus-client's multiprocess mode; README, "Metrics"). The directory is emptied when the server starts,
so that figures of a previous server are not added to this one's (a restart starts the counts from zero, as
Prometheus expects of a counter), and a worker that ends has its live gauges' files removed.

Its own lines (the master's "Booting worker", a worker's timeout) go through LeadEngine's logging (core/logs.py):
once, on stderr, in LOG_FORMAT, at LOG_LEVEL, like every other line."""

import os
from pathlib import Path

from core.logs import logging_config

logconfig_dict = logging_config(os.environ)


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # only prometheus-client's files, whatever else the directory holds
        stale.unlink()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
