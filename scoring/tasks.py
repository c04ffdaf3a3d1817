"""Celery tasks of the scoring app: thin wrappers around scoring/services/runs.py and imports/uploads.py."""

import logging
import uuid

from celery import shared_task
from django.conf import settings

from scoring.services import runs
from scoring.services.imports import uploads

logger = logging.getLogger(__name__)

# A try that could not reach the database (each of its steps already waited DB_RETRY_SECONDS) comes back
# after 5, 10, 20, 40, then 60 s, up to SCORING_PARTITION_ATTEMPTS tries in all, as in a run scored in one
# process (read when the task runs, so the setting of the worker's deployment holds): with the default 3 and
# DB_RETRY_SECONDS 60, the tries span over three minutes of outage. Only the broker is needed to schedule
# one. Past the last, the recovery sweep sends the partition again.
LONGEST_COUNTDOWN_SECONDS = 60


# Time limits: a partition of 100,000 properties takes 3 to 6 s; each of its database steps may wait out
# an outage for DB_RETRY_SECONDS (60 s), so 600 s leaves room for a slow machine and several outages,
# and still ends a task stuck for good (the soft limit records the failure, the hard limit 60 s later
# kills the pool process; its silent lease is then taken over by the recovery sweep).
@shared_task(
    name="scoring.score_partition",
    bind=True,
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def score_partition(self, partition_id: int) -> None:
    """Score one partition of a run under a lease of this task's id (kept across its retries); a
    partition held by another live task, or done, is left alone. The last partition to end closes the run."""
    lease = self.request.id or f"task-{uuid.uuid4().hex}"
    if not runs.scoring_partition_attempt(partition_id=partition_id, lease=lease):
        return
    retries = settings.SCORING_PARTITION_ATTEMPTS - 1
    if self.request.retries >= retries:
        logger.error("scoring partition %s: no tries left; the recovery sweep sends it again", partition_id)
        return
    raise self.retry(countdown=min(5 * 2**self.request.retries, LONGEST_COUNTDOWN_SECONDS), max_retries=retries)


# Time limits: an import reads about 120,000 rows a second (README, Speed), so half an hour (the jobs' limits,
# under the broker's visibility timeout) imports files of well over a hundred million rows, with room for the
# import's own waits on a lost database (DB_RETRY_SECONDS per try). Past the soft limit the import stops and
# its run is recorded failed with the reason (nothing written: the import is one transaction); the hard
# limit kills a pool process that did not stop, and its silent run is closed as abandoned.
IMPORT_SOFT_TIME_LIMIT = 1_800
IMPORT_TIME_LIMIT = 1_860


@shared_task(
    name="scoring.import_run_start",
    acks_late=True,
    soft_time_limit=IMPORT_SOFT_TIME_LIMIT,
    time_limit=IMPORT_TIME_LIMIT,
)
def import_run_start(run_id: int) -> str:
    """Import the file of a run queued from the admin; returns its status. A run no longer queued (another
    delivery of this task has it) is left alone: no retries, the recovery sweep sends a lost run again."""
    run = uploads.import_run_start(run_id=run_id)
    return run.status if run is not None else "not queued"
