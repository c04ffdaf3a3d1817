"""Celery tasks of leads: thin wrappers around leads/services."""

from celery import shared_task

from leads.services.webhooks import leads_webhook_deliver


@shared_task(name="leads.deliver_webhooks", acks_late=True, soft_time_limit=1_800, time_limit=1_860)
def deliver_webhooks(limit: int = 100) -> str:
    """POST the due leads to their contractors' webhooks. Safe to run twice at once or after a killed run:
    claims are exclusive, and an attempt left in flight is retried with the same Idempotency-Key."""
    return str(leads_webhook_deliver(limit=limit))
