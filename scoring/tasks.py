"""Celery tasks of the scoring app: thin wrappers around scoring/services/runs.py."""

from celery import shared_task

from scoring.services import runs

PARTITION_RETRIES = 3


@shared_task(
    name="scoring.score_partition",
    bind=True,
    acks_late=True,
    max_retries=PARTITION_RETRIES,
    soft_time_limit=600,
    time_limit=660,
)
def score_partition(self, partition_id: int) -> None:
    """Score one partition of a run; a lost database connection is retried with backoff, and the last
    partition to finish closes the run."""
    last_attempt = self.request.retries >= PARTITION_RETRIES
    if runs.scoring_partition_attempt(partition_id=partition_id, last_attempt=last_attempt):
        raise self.retry(countdown=2**self.request.retries)
