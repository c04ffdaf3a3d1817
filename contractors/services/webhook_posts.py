"""A signed POST to a contractor's webhook, whatever it carries (a lead, an event of the outbox): the
headers, the signature, the check of the target before the POST and the connection to the very
addresses that check allowed, and what an answer means (delivered, to retry, given up, refused). One
implementation for every kind of webhook, so the signing and retry rules cannot drift apart.

Timeouts, connection errors, a name that does not resolve, 408, 429 and 5xx are retried with
exponential backoff and jitter up to WEBHOOK_MAX_ATTEMPTS, then given up; any other answer (3xx, 4xx)
is refused and not retried, as is a target the check refuses (posted nowhere).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import math
import random
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Self, TypeVar

from django.conf import settings

from contractors.errors import WebhookTargetRefused, WebhookTargetUnresolved
from contractors.services.webhook_targets import WebhookTarget, webhook_target_check
from core.retry import db_retry

USER_AGENT = "LeadEngine-Webhooks/1"
RETRIED_STATUSES = {408, 429}
EVENT_HEADER = "X-LeadEngine-Event"

# What an answer makes of an attempt (the values of WebhookAttempt.Outcome and ContractorEvent.State).
DELIVERED, RETRY, GAVE_UP, REFUSED = "delivered", "retry", "gave_up", "refused"


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256, keyed by the secret, of the timestamp, a dot and the body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_headers(*, secret: str, body: bytes, key: str, event: str, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        "X-LeadEngine-Timestamp": stamp,
        "X-LeadEngine-Signature": webhook_signature(secret=secret, timestamp=stamp, body=body),
        "Idempotency-Key": key,
    }


def backoff(number: int) -> dt.timedelta:
    """The wait after failed attempt `number`: WEBHOOK_BACKOFF_SECONDS x 2^(number-1), plus up to a quarter
    of it at random so that webhooks failing together do not come back together."""
    delay = settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (number - 1)
    return dt.timedelta(seconds=delay + random.uniform(0, delay / 4))


def in_flight_stale(batch: int) -> dt.timedelta:
    """How long an attempt may stay in flight before it is taken as a dead worker's: longer than a
    whole claimed batch of `batch` POSTs can take, WEBHOOK_CONCURRENCY at a time (webhook_posts)."""
    waves = math.ceil(batch / max(settings.WEBHOOK_CONCURRENCY, 1))
    return dt.timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * (waves + 1) + 60)


class _CheckedHTTPConnection(http.client.HTTPConnection):
    """Connects to the addresses the target check resolved and allowed, never to a new resolution of the
    host name (which could by now point inside: DNS rebinding); the Host header, and for https the TLS
    server name and the certificate check, still use the host name."""

    def __init__(self, target: WebhookTarget, **kwargs: Any) -> None:
        super().__init__(target.host, target.port, **kwargs)
        self._create_connection = lambda address, timeout, source: _connect_checked(target, timeout, source)


class _CheckedHTTPSConnection(_CheckedHTTPConnection, http.client.HTTPSConnection):
    pass


def _connect_checked(target: WebhookTarget, timeout: float, source: tuple[str, int] | None) -> socket.socket:
    """A connection to the first of the target's checked addresses that answers."""
    error: OSError | None = None
    for address in target.addresses:
        try:
            return socket.create_connection((address, target.port), timeout, source)
        except OSError as failed:
            error = failed
    raise error or OSError(f"no address for {target.host}")


@dataclass(frozen=True)
class WebhookAnswer:
    status: int | None
    error: str = ""
    refused: bool = False  # not posted: the target is not allowed
    latency_ms: int = 0

    def outcome(self, number: int) -> str:
        """What the answer to attempt `number` makes of it: DELIVERED, RETRY, GAVE_UP or REFUSED."""
        status = self.status
        if self.refused:
            return REFUSED
        if status is not None and 200 <= status < 300:
            return DELIVERED
        if status is None or status >= 500 or status in RETRIED_STATUSES:
            return RETRY if number < settings.WEBHOOK_MAX_ATTEMPTS else GAVE_UP
        return REFUSED

    def error_text(self, outcome: str) -> str:
        """The error to record: the answer's, or its status when it was not a success."""
        if self.status is not None and not self.error and outcome != DELIVERED:
            return f"HTTP {self.status}"
        return self.error[:500]


def webhook_post(url: str, body: bytes, headers: dict[str, str]) -> WebhookAnswer:
    """POST without following redirects, to the target the check allows (webhook_targets), resolved once:
    the status code, or the error (a target refused before any connection: `refused`), and the time taken."""
    started = time.monotonic()
    answer = _post(url, body, headers)
    latency = round((time.monotonic() - started) * 1000)
    return WebhookAnswer(answer.status, answer.error, answer.refused, latency)


def webhook_posts(posts: Sequence[tuple[str, bytes, dict[str, str]]]) -> list[WebhookAnswer]:
    """webhook_post of each (url, body, headers), WEBHOOK_CONCURRENCY at a time, the answers in the order
    given. Threads: a POST mostly waits on the network (and a slow receiver on its timeout), so a batch takes
    about its slowest wave instead of the sum of its POSTs; none touches the database."""
    concurrency = min(settings.WEBHOOK_CONCURRENCY, len(posts))
    if concurrency <= 1:
        return [webhook_post(*post) for post in posts]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook-post") as pool:
        return list(pool.map(lambda post: webhook_post(*post), posts))


def _post(url: str, body: bytes, headers: dict[str, str]) -> WebhookAnswer:
    try:
        target = webhook_target_check(url=url)
    except WebhookTargetRefused as error:
        return WebhookAnswer(None, str(error), refused=True)
    except WebhookTargetUnresolved as error:
        return WebhookAnswer(None, str(error))  # DNS down or the name not yet published: tried again
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    if target.scheme == "https":
        conn: _CheckedHTTPConnection = _CheckedHTTPSConnection(
            target, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = _CheckedHTTPConnection(target, timeout=timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65_536)  # the answer's body is not used
        return WebhookAnswer(response.status)
    except TimeoutError:
        return WebhookAnswer(None, f"timed out after {timeout} s")
    except (OSError, http.client.HTTPException) as error:
        return WebhookAnswer(None, f"{type(error).__name__}: {error}"[:500])
    finally:
        conn.close()


@dataclass(frozen=True)
class DeliveryCounts:
    """What a delivery run did: attempts delivered, to retry, given up (after the last retry, or in flight
    on the last attempt past the stale limit) and refused."""

    delivered: int = 0
    retried: int = 0
    gave_up: int = 0
    refused: int = 0

    @classmethod
    def of(cls, totals: dict[str, int]) -> Self:
        return cls(delivered=totals[DELIVERED], retried=totals[RETRY], gave_up=totals[GAVE_UP], refused=totals[REFUSED])


ClaimT = TypeVar("ClaimT")


@dataclass(frozen=True)
class DeliveryRun(Generic[ClaimT]):
    """The steps of a delivery run, each kind of webhook its own: `claim(limit)` claims up to `limit` due
    items in a transaction of its own and returns them with how many stale ones it gave up; `send(claims)`
    posts them (no transaction open) and returns each answer; `record(results)` writes the answers in a
    transaction and counts the outcomes. `what` names the items in the database retry's messages."""

    claim: Callable[[int], tuple[list[ClaimT], int]]
    send: Callable[[list[ClaimT]], list[tuple[ClaimT, WebhookAnswer]]]
    record: Callable[[list[tuple[ClaimT, WebhookAnswer]]], dict[str, int]]
    what: str
    batch: int

    def __call__(self, *, limit: int | None = None) -> dict[str, int]:
        """Claim, send and record a batch at a time until nothing is due (at most `limit` items); the
        outcomes counted. Claimed items stay in flight until their answers are recorded: a restart of
        PostgreSQL in between is waited out (db_retry) rather than left to the stale limit and a second POST."""
        totals = dict.fromkeys((DELIVERED, RETRY, GAVE_UP, REFUSED), 0)
        remaining = limit if limit is not None else float("inf")
        while remaining > 0:
            claims, stale_gave_up = db_retry(
                partial(self.claim, int(min(self.batch, remaining))), what=f"claiming {self.what}"
            )
            totals[GAVE_UP] += stale_gave_up
            if not claims:
                if stale_gave_up:
                    continue
                break
            remaining -= len(claims)
            recorded = db_retry(partial(self.record, self.send(claims)), what=f"recording {self.what}")
            for outcome, count in recorded.items():
                totals[outcome] = totals.get(outcome, 0) + count
        return totals
