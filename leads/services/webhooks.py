"""Webhook delivery: an assigned lead of a contractor with a webhook URL is POSTed there as JSON, the
event `lead.assigned` (header X-LeadEngine-Event, and the body's "event") with the lead's API detail
(leads.representation), signed with the contractor's secret. The signed POST itself, the target check
and what an answer means are contractors.services.webhook_posts, shared with the contractors' other
events (contractors.services.events, posted by the same job run). A 2xx answer
delivers it (lifecycle.leads_deliver, via "webhook"); timeouts, connection errors, 408, 429 and 5xx are
retried with exponential backoff and jitter up to WEBHOOK_MAX_ATTEMPTS, then given up; any other answer
(3xx, 4xx) is refused and not retried. Given up and refused leads stay assigned and are flagged for
staff (Lead.objects.webhook_failed()). Every attempt is a WebhookAttempt row.

The URL is checked again before every POST (contractors.services.webhook_targets: https, public
addresses, as the settings say now) and the POST connects to the very addresses that check resolved and
allowed, so neither a URL saved under other settings nor a name that resolves inside the network a
moment later (DNS rebinding) reaches an internal address. A target refused then is a refused attempt,
with the reason, posted nowhere; a name that does not resolve is retried like a connection error.

Never twice per assignment. A delivery run claims a few due leads at a time in a short transaction:
it locks their rows with SELECT ... FOR UPDATE SKIP LOCKED (a second run skips them instead of
waiting) and inserts the next attempt of each, "in flight", with INSERT ... ON CONFLICT DO NOTHING on
the unique (lead, assigned_at, number): a run whose snapshot predates another's commit loses the insert
and does not post. The claim commits before the POST, so no transaction is held open across the
network; while an attempt is in flight, the lead is not due. An attempt still in flight after
IN_FLIGHT_STALE is a worker that died between its POST and recording the answer: the next run
records it as failed and posts again with the same Idempotency-Key (one per lead and assignment), so
a receiver that keeps the keys it has seen takes the lead once. The 2xx is recorded by locking the
lead and delivering it only if it still has the assignment that was posted (a lead reassigned during
the POST is delivered to the new contractor by its own attempts).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from contractors.models import Contractor
from contractors.services.webhook_posts import (
    DeliveryCounts,
    DeliveryRun,
    WebhookAnswer,
    backoff,
    webhook_headers,
    webhook_posts,
)
from contractors.services.webhook_posts import in_flight_stale as posts_in_flight_stale
from core.retry import db_retry
from leads.models import Lead, WebhookAttempt
from leads.representation import leads_represented
from leads.services.lifecycle import leads_deliver

Outcome = WebhookAttempt.Outcome
# Leads claimed per transaction, posted WEBHOOK_CONCURRENCY at a time: a storm's thousands of leads go out
# in a few seconds (bench/storm.py), and a claim is held at most a few timeouts (in_flight_stale).
CLAIM_BATCH = 100
EVENT = "lead.assigned"  # the X-LeadEngine-Event of a lead's POST, and its body's "event"


def in_flight_stale() -> dt.timedelta:
    """How long an attempt may stay in flight before it is taken as a dead worker's: longer than a
    whole claimed batch can take to post."""
    return posts_in_flight_stale(CLAIM_BATCH)


class WebhookSummary(DeliveryCounts):
    def __str__(self) -> str:
        return (
            f"{self.delivered:,} leads delivered by webhook, {self.retried:,} to retry, "
            f"{self.gave_up:,} given up, {self.refused:,} refused"
        )


@dataclass(frozen=True)
class _Claim:
    attempt_id: int
    lead_id: int
    assigned_at: dt.datetime
    number: int
    url: str
    secret: str


def webhook_body(lead_ids: list[int]) -> dict[int, bytes]:
    """The body posted for each lead: its API detail, as JSON bytes, with the event's type first (a field
    the API's lead does not have, so a receiver of several event types tells them apart by the body too)."""
    return {
        lead["id"]: json.dumps({"event": EVENT, **lead}, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
        for lead in leads_represented(lead_ids)
    }


def idempotency_key(*, lead_id: int, assigned_at: dt.datetime) -> str:
    """The same for every attempt of one assignment of a lead, new for a reassignment."""
    return f"{lead_id}-{int(assigned_at.timestamp() * 1_000_000)}"


# Due: assigned leads of contractors with a webhook URL whose current assignment has no attempt yet, a
# failed one whose next_at has come, or one in flight past the stale limit; nothing final.
DUE_SQL = f"""
    SELECT l.id, l.assigned_at, c.webhook_url, c.webhook_secret, a.id, a.number, a.outcome
    FROM {Lead._meta.db_table} l
    JOIN {Contractor._meta.db_table} c ON c.id = l.contractor_id
    LEFT JOIN LATERAL (
        SELECT w.id, w.number, w.outcome, w.at, w.next_at FROM {WebhookAttempt._meta.db_table} w
        WHERE w.lead_id = l.id AND w.assigned_at = l.assigned_at
        ORDER BY w.number DESC LIMIT 1
    ) a ON true
    WHERE l.state = 'assigned' AND c.webhook_url <> ''
      AND (a.id IS NULL
           OR (a.outcome = 'retry' AND a.next_at <= %(now)s)
           OR (a.outcome = 'in_flight' AND a.at <= %(stale)s))
    ORDER BY l.id
    LIMIT %(limit)s
    FOR UPDATE OF l SKIP LOCKED
"""  # index lead_assigned; the lateral lookup by leads_webhookattempt_one_per_number


@transaction.atomic
def _claim(*, now: dt.datetime, limit: int) -> tuple[list[_Claim], int]:
    """Claim up to `limit` due leads: their next attempt written in flight. Returns the claims and how
    many stale in-flight attempts were given up (they were the last allowed)."""
    with connection.cursor() as cursor:
        cursor.execute(DUE_SQL, {"now": now, "stale": now - in_flight_stale(), "limit": limit})
        rows = cursor.fetchall()
    gave_up, wanted = 0, []
    for lead_id, assigned_at, url, secret, last_id, last_number, last_outcome in rows:
        number = (last_number or 0) + 1
        if last_outcome == Outcome.IN_FLIGHT:
            # A worker died after claiming: the POST may or may not have reached the receiver.
            error = "no answer recorded: the delivery worker stopped during the attempt"
            if last_number >= settings.WEBHOOK_MAX_ATTEMPTS:
                WebhookAttempt.objects.filter(pk=last_id, outcome=Outcome.IN_FLIGHT).update(
                    outcome=Outcome.GAVE_UP, error=error
                )
                gave_up += 1
                continue
            WebhookAttempt.objects.filter(pk=last_id, outcome=Outcome.IN_FLIGHT).update(
                outcome=Outcome.RETRY, error=error, next_at=now
            )
        wanted.append((lead_id, assigned_at, number, url, secret))
    if not wanted:
        return [], gave_up
    contractors = dict(Lead.objects.filter(pk__in=[w[0] for w in wanted]).values_list("pk", "contractor_id"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {WebhookAttempt._meta.db_table}
                (lead_id, assigned_at, contractor_id, number, at, url, outcome, error)
            SELECT lead_id, assigned_at, contractor_id, number, %(now)s, url, 'in_flight', ''
            FROM unnest(%(leads)s::bigint[], %(assigned)s::timestamptz[], %(contractors)s::bigint[],
                        %(numbers)s::int[], %(urls)s::text[]) AS n(lead_id, assigned_at, contractor_id, number, url)
            ON CONFLICT (lead_id, assigned_at, number) DO NOTHING
            RETURNING id, lead_id
            """,
            {
                "now": now,
                "leads": [w[0] for w in wanted],
                "assigned": [w[1] for w in wanted],
                "contractors": [contractors[w[0]] for w in wanted],
                "numbers": [w[2] for w in wanted],
                "urls": [w[3] for w in wanted],
            },
        )
        inserted = {lead_id: attempt_id for attempt_id, lead_id in cursor.fetchall()}
    claims = [
        _Claim(inserted[lead_id], lead_id, assigned_at, number, url, secret)
        for lead_id, assigned_at, number, url, secret in wanted
        if lead_id in inserted
    ]
    return claims, gave_up


@transaction.atomic
def _record(results: list[tuple[_Claim, WebhookAnswer]], *, now: dt.datetime) -> dict[str, int]:
    """Write each attempt's answer; deliver the 2xx leads that still have the posted assignment."""
    counts = dict.fromkeys(Outcome.values, 0)
    delivered: list[int] = []
    for claim, answer in results:
        outcome = answer.outcome(claim.number)
        WebhookAttempt.objects.filter(pk=claim.attempt_id).update(
            outcome=outcome,
            status_code=answer.status,
            latency_ms=answer.latency_ms,
            error=answer.error_text(outcome),
            next_at=now + backoff(claim.number) if outcome == Outcome.RETRY else None,
        )
        counts[outcome] += 1
        if outcome == Outcome.DELIVERED:
            delivered.append(claim.lead_id)
    if delivered:
        posted = {claim.lead_id: claim.assigned_at for claim, *_ in results}
        # Locked by id, the order of every lead lock: a reassignment during the POST waits or has happened.
        current = Lead.objects.select_for_update().filter(pk__in=delivered).order_by("pk")
        still = [pk for pk, assigned_at in current.values_list("pk", "assigned_at") if assigned_at == posted[pk]]
        leads_deliver(lead_ids=still, via="webhook", now=now)
    return counts


def _send(claims: list[_Claim]) -> list[tuple[_Claim, WebhookAnswer]]:
    bodies = db_retry(partial(webhook_body, [claim.lead_id for claim in claims]), what="reading the webhook bodies")
    sent = [claim for claim in claims if claim.lead_id in bodies]  # a lead deleted since the claim: nothing to send
    posts = [
        (
            claim.url,
            bodies[claim.lead_id],
            webhook_headers(
                secret=claim.secret,
                body=bodies[claim.lead_id],
                key=idempotency_key(lead_id=claim.lead_id, assigned_at=claim.assigned_at),
                event=EVENT,
            ),
        )
        for claim in sent
    ]
    return list(zip(sent, webhook_posts(posts), strict=True))


def leads_webhook_deliver(*, now: dt.datetime | None = None, limit: int | None = None) -> WebhookSummary:
    """POST the due leads (at most `limit`; None: every one due) to their contractors' webhooks (see the
    module's docstring), a batch claimed at a time, and record each attempt. `now` is the time attempts
    are recorded at and due times are compared with (tests pass it to move through the backoff). A lead
    is attempted once per call: a failed one is not due again before its backoff."""
    now = now or timezone.now()
    run = DeliveryRun(
        claim=lambda batch: _claim(now=now, limit=batch),
        send=_send,
        record=partial(_record, now=now),
        what="webhook deliveries",
        batch=CLAIM_BATCH,
    )
    return WebhookSummary.of(run(limit=limit))
