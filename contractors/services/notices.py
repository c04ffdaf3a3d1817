"""What a contractor is told besides its assigned leads: an event (a waitlist offer, a territory given
from the waitlist, a lead withdrawn) recorded as notices in the contractor's outbox, ContractorNotice,
in the transaction of the change it reports, and sent afterwards.

Each event becomes up to two notices: a webhook POST when the contractor has a webhook URL, and an email
when it has a contact address (a contractor with neither is told nothing and reads its API). The email
is sent as soon as the change commits (transaction.on_commit: a change rolled back emails nobody); a
mail server that refuses, or a worker that dies first, leaves the notice pending for the "Webhook
delivery" job, which sends every due notice, webhooks and emails alike, with the leads' rules
(contractors.services.webhook_posts): the same signature, the target checked before every POST, the
event's key as the Idempotency-Key on every attempt, retries with backoff on timeouts, connection and
mail errors, 408, 429 and 5xx, up to WEBHOOK_MAX_ATTEMPTS, refused on any other answer.

Never sent twice at once: a run claims due notices in a short transaction (SELECT ... FOR UPDATE SKIP
LOCKED: a second run skips them rather than waiting, and a row another run has just claimed no longer
matches the due condition when it is re-read), marks them in flight until the stale limit and commits
before sending. A notice still in flight past that limit is a worker that died mid-send: the next run
sends it again with the same key, so a receiver that keeps the keys it has seen takes the event once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from contractors.models import Contractor, ContractorNotice
from contractors.services import webhook_posts
from contractors.services.webhook_posts import (
    DeliveryCounts,
    DeliveryRun,
    WebhookAnswer,
    backoff,
    in_flight_stale,
    webhook_headers,
    webhook_post,
)

Channel, Event, State = ContractorNotice.Channel, ContractorNotice.Event, ContractorNotice.State
CLAIM_BATCH = 20  # notices claimed per transaction: a claim is held at most this many timeouts
log = logging.getLogger(__name__)

SUBJECTS = {
    Event.TERRITORY_OFFERED: "LeadEngine: {zip_code} {trade} is offered to you",
    Event.TERRITORY_ASSIGNED: "LeadEngine: {zip_code} {trade} is now yours",
    Event.LEAD_WITHDRAWN: "LeadEngine: lead {id} was withdrawn",
    Event.BALANCE_HELD: "LeadEngine: {leads_held} leads are waiting for a payment",
    Event.CLAIM_APPROVED: "LeadEngine: your {trade} claim request {id} is approved",
    Event.CLAIM_DENIED: "LeadEngine: your {trade} claim request {id} is denied",
}


class NoticeSummary(DeliveryCounts):
    def __str__(self) -> str:
        return (
            f"{self.delivered:,} notices delivered, {self.retried:,} to retry, "
            f"{self.gave_up:,} given up, {self.refused:,} refused"
        )


def contractor_event_record(
    *, contractor: Contractor, event: str, payload: dict[str, Any], key: str, now: dt.datetime
) -> list[ContractorNotice]:
    """Record an event for the contractor, in the caller's transaction: a webhook notice if it has a
    webhook URL, an email notice if it has a contact address; the email goes out once the transaction
    commits. `key` names the event (unique per event: recording it twice is an IntegrityError)."""
    with transaction.atomic():
        payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))  # dates as the API writes them
        channels = [
            channel
            for channel, address in (
                (Channel.WEBHOOK, contractor.webhook_url),
                (Channel.EMAIL, contractor.contact_email),
            )
            if address
        ]
        notices = ContractorNotice.objects.bulk_create(
            ContractorNotice(
                contractor=contractor,
                channel=channel,
                event=event,
                payload=payload,
                key=key,
                created_at=now,
                next_at=now,
            )
            for channel in channels
        )
        emails = [notice.pk for notice in notices if notice.channel == Channel.EMAIL]
        if emails:
            transaction.on_commit(partial(_emails_send_now, emails))
    return notices


def _emails_send_now(ids: list[int]) -> None:
    """After the commit: send these email notices now. Nothing here may fail the change that committed;
    what is not sent stays pending for the next delivery run."""
    try:
        contractor_notices_send(ids=ids)
    except Exception:
        log.exception("could not send email notices %s now; the next webhook delivery run sends them", ids)


@dataclass(frozen=True)
class _Claim:
    notice_id: int
    attempt: int
    channel: str
    event: str
    payload: dict[str, Any]
    key: str
    target: str  # the webhook URL or the email address, as they are now; blank: none any more
    secret: str
    contractor: Contractor


@transaction.atomic
def _claim(*, now: dt.datetime, limit: int, ids: list[int] | None) -> tuple[list[_Claim], int]:
    """Claim up to `limit` due notices (of `ids` only, if given): in flight until the stale limit. Returns
    the claims and how many stale in-flight notices were given up (they were on their last attempt)."""
    due = ContractorNotice.objects.filter(state__in=ContractorNotice.DUE, next_at__lte=now)  # index notice_due
    if ids is not None:
        due = due.filter(pk__in=ids)
    rows = list(
        due.select_for_update(of=("self",), skip_locked=True)
        .select_related("contractor")
        .order_by("next_at", "id")[:limit]
    )
    claims, gave_up, changed = [], 0, []
    stale_until = now + in_flight_stale(CLAIM_BATCH)
    for notice in rows:
        if notice.state == State.IN_FLIGHT:
            # A worker died after claiming: the POST or the email may or may not have gone out.
            notice.error = "no answer recorded: the delivery worker stopped during the attempt"
            if notice.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
                notice.state, notice.next_at = State.GAVE_UP, None
                changed.append(notice)
                gave_up += 1
                continue
        contractor = notice.contractor
        target = contractor.webhook_url if notice.channel == Channel.WEBHOOK else contractor.contact_email
        notice.state, notice.next_at, notice.target = State.IN_FLIGHT, stale_until, target
        notice.attempts += 1
        changed.append(notice)
        claims.append(
            _Claim(
                notice.pk,
                notice.attempts,
                notice.channel,
                notice.event,
                notice.payload,
                notice.key,
                target,
                contractor.webhook_secret,
                contractor,
            )
        )
    ContractorNotice.objects.bulk_update(changed, ["state", "next_at", "target", "attempts", "error"])
    return claims, gave_up


def notice_body(*, event: str, payload: dict[str, Any]) -> bytes:
    """The JSON posted for an event: its type first, then its fields."""
    return json.dumps({"event": event, **payload}, separators=(",", ":")).encode()


def _webhook_send(claim: _Claim) -> WebhookAnswer:
    if not claim.target:
        return WebhookAnswer(None, "the contractor has no webhook URL any more", refused=True)
    body = notice_body(event=claim.event, payload=claim.payload)
    headers = webhook_headers(secret=claim.secret, body=body, key=claim.key, event=claim.event)
    return webhook_post(claim.target, body, headers)


def notice_email(*, contractor: Contractor, event: str, payload: dict[str, Any]) -> tuple[str, str]:
    """The subject and the text of an event's email."""
    context = {
        "contractor": contractor,
        "event": event,
        "zone": ZoneInfo(contractor.time_zone),
        **{name: _parsed(value) for name, value in payload.items()},
    }
    subject = SUBJECTS[event].format(**payload)  # type: ignore[index]  # every event has its subject
    return subject, render_to_string(f"contractors/email/{event.replace('.', '_')}.txt", context)


def _parsed(value: Any) -> Any:
    """A payload's ISO date-time back as a datetime, for the email to show in the contractor's time zone."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _email_send(claim: _Claim) -> WebhookAnswer:
    """Email the notice; an answer in the webhook's terms: 250 delivered, a mail error to retry."""
    if not claim.target:
        return WebhookAnswer(None, "the contractor has no contact email any more", refused=True)
    subject, text = notice_email(contractor=claim.contractor, event=claim.event, payload=claim.payload)
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [claim.target])
    except OSError as error:  # SMTP and connection errors: tried again by the next run
        log.warning("could not email notice %s to %s: %s", claim.notice_id, claim.target, error)
        return WebhookAnswer(None, f"{type(error).__name__}: {error}"[:500])
    return WebhookAnswer(250)


@transaction.atomic
def _record(results: list[tuple[_Claim, WebhookAnswer]], *, now: dt.datetime) -> dict[str, int]:
    counts = dict.fromkeys(State.values, 0)
    for claim, answer in results:
        outcome = answer.outcome(claim.attempt)
        if claim.channel == Channel.EMAIL and answer.status == 250:
            outcome = webhook_posts.DELIVERED
        ContractorNotice.objects.filter(pk=claim.notice_id, state=State.IN_FLIGHT, attempts=claim.attempt).update(
            state=outcome,
            status_code=answer.status if claim.channel == Channel.WEBHOOK else None,
            latency_ms=answer.latency_ms if claim.channel == Channel.WEBHOOK else None,
            error="" if outcome == webhook_posts.DELIVERED else answer.error_text(outcome),
            next_at=now + backoff(claim.attempt) if outcome == webhook_posts.RETRY else None,
            sent_at=now if outcome == webhook_posts.DELIVERED else None,
        )
        counts[outcome] += 1
    return counts


def _send(claims: list[_Claim]) -> list[tuple[_Claim, WebhookAnswer]]:
    return [
        (claim, _webhook_send(claim) if claim.channel == Channel.WEBHOOK else _email_send(claim)) for claim in claims
    ]


def contractor_notices_send(
    *, now: dt.datetime | None = None, limit: int | None = None, ids: list[int] | None = None
) -> NoticeSummary:
    """Send the due notices (at most `limit`; of `ids` only, if given), a batch claimed at a time, and
    record each attempt (see the module's docstring). `now` is the time attempts are recorded at and due
    times are compared with (tests pass it to move through the backoff). A notice is attempted once per
    call: a failed one is not due again before its backoff."""
    now = now or timezone.now()
    run = DeliveryRun(
        claim=lambda batch: _claim(now=now, limit=batch, ids=ids),
        send=_send,
        record=partial(_record, now=now),
        what="contractor notices",
        batch=CLAIM_BATCH,
    )
    return NoticeSummary.of(run(limit=limit))
