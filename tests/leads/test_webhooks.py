"""Webhook delivery against a real HTTP receiver on 127.0.0.1 (allowed here by WEBHOOK_ALLOW_PRIVATE_TARGETS
and WEBHOOK_ALLOW_HTTP), and the check of the target before every POST. No test connects anywhere but
127.0.0.1: every other target is refused before a connection."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from contractors.models import Contractor
from leads.models import Lead, LeadEvent, WebhookAttempt
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_assign
from leads.services.routing import leads_route
from leads.services.webhooks import idempotency_key, leads_webhook_deliver
from tests.leads.factories import owner, scored_home
from tests.racing import race
from tests.receiver import receiver_allowed_fixture, receiver_fixture, signature_valid  # noqa: F401  (fixture)
from tests.workers import database_url

Outcome = WebhookAttempt.Outcome


@pytest.fixture
def fast(receiver_allowed):
    settings = receiver_allowed
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_BACKOFF_SECONDS = 60
    return settings


def hooked_lead(roofing, url: str, *, zip_code: str = "80202"):
    contractor = owner(roofing, zip_code, webhook_url=url)
    home = scored_home(roofing, score=90, zip_code=zip_code)
    leads_generate(trade=roofing)
    leads_route()
    return contractor, Lead.objects.get(property=home)


def attempts(lead: Lead) -> list[tuple]:
    return list(
        WebhookAttempt.objects.filter(lead=lead)
        .order_by("assigned_at", "number")
        .values_list("number", "status_code", "outcome")
    )


def later(seconds: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=seconds)


@pytest.mark.django_db
def test_2xx_delivers_the_lead_with_a_signed_body_of_its_api_detail(roofing, receiver, fast):
    contractor, lead = hooked_lead(roofing, receiver.url)
    summary = leads_webhook_deliver()
    assert (summary.delivered, summary.retried, summary.gave_up, summary.refused) == (1, 0, 0, 0)
    [(headers, body)] = receiver.requests
    assert signature_valid(contractor.webhook_secret, headers, body)
    assert not signature_valid("other-secret", headers, body)
    assert headers["Idempotency-Key"] == idempotency_key(lead_id=lead.pk, assigned_at=lead.assigned_at)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-LeadEngine-Event"] == "lead.assigned"
    sent = json.loads(body)
    assert (sent["event"], sent["id"], sent["state"]) == ("lead.assigned", lead.pk, "assigned")
    assert sent["zip_code"] == "80202"
    lead.refresh_from_db()
    assert lead.state == Lead.State.DELIVERED
    assert lead.delivered_at is not None
    event = lead.events.get(action="deliver")
    assert (event.reason, event.actor, event.from_state) == ("webhook", "system", "assigned")
    [attempt] = WebhookAttempt.objects.filter(lead=lead)
    assert (attempt.number, attempt.status_code, attempt.outcome, attempt.error) == (1, 200, "delivered", "")
    assert attempt.latency_ms is not None
    assert attempt.assigned_at == lead.assigned_at
    assert leads_webhook_deliver().delivered == 0
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_two_failures_then_success_follow_the_backoff(roofing, receiver, fast):
    _, lead = hooked_lead(roofing, receiver.url)
    receiver.script = [500, 503]
    start = timezone.now()
    assert leads_webhook_deliver(now=start).retried == 1
    # 60 s after the first failure (jitter adds up to 15 s): not due yet.
    assert leads_webhook_deliver(now=start + dt.timedelta(seconds=59)).retried == 0
    assert len(receiver.requests) == 1
    assert leads_webhook_deliver(now=start + dt.timedelta(seconds=76)).retried == 1
    # The second wait is 120 s (+ up to 30 s).
    second = start + dt.timedelta(seconds=76)
    assert leads_webhook_deliver(now=second + dt.timedelta(seconds=119)).delivered == 0
    assert leads_webhook_deliver(now=second + dt.timedelta(seconds=151)).delivered == 1
    assert attempts(lead) == [(1, 500, "retry"), (2, 503, "retry"), (3, 200, "delivered")]
    keys = {headers["Idempotency-Key"] for headers, _ in receiver.requests}
    assert len(receiver.requests) == 3
    assert len(keys) == 1
    lead.refresh_from_db()
    assert lead.state == Lead.State.DELIVERED
    assert not Lead.objects.webhook_failed().exists()


@pytest.mark.django_db
@pytest.mark.parametrize("status", [400, 410])
def test_4xx_is_refused_not_retried_and_flagged(roofing, receiver, fast, status):
    _, lead = hooked_lead(roofing, receiver.url)
    receiver.script = [status]
    assert leads_webhook_deliver().refused == 1
    assert leads_webhook_deliver(now=later(10_000)).refused == 0
    assert len(receiver.requests) == 1
    assert attempts(lead) == [(1, status, "refused")]
    lead.refresh_from_db()
    assert lead.state == Lead.State.ASSIGNED
    assert lead.delivered_at is None
    assert list(Lead.objects.webhook_failed()) == [lead]


@pytest.mark.django_db
@pytest.mark.parametrize("answer", [429, 408, 500, "sleep"])
def test_transient_failures_are_retried(roofing, receiver, fast, answer):
    _, lead = hooked_lead(roofing, receiver.url)
    receiver.script = [answer]
    assert leads_webhook_deliver().retried == 1
    first = WebhookAttempt.objects.get(lead=lead)
    if answer == "sleep":
        assert (first.status_code, first.error) == (None, "timed out after 0.5 s")
    assert leads_webhook_deliver(now=later(80)).delivered == 1
    assert [outcome for *_, outcome in attempts(lead)] == ["retry", "delivered"]


@pytest.mark.django_db
def test_connection_refused_is_retried_then_given_up_and_flagged(roofing, fast):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, lead = hooked_lead(roofing, f"http://127.0.0.1:{port}/hook")
    assert leads_webhook_deliver().retried == 1
    assert leads_webhook_deliver(now=later(80)).retried == 1
    summary = leads_webhook_deliver(now=later(80 + 160))
    assert (summary.retried, summary.gave_up) == (0, 1)
    assert attempts(lead) == [(1, None, "retry"), (2, None, "retry"), (3, None, "gave_up")]
    assert "ConnectionRefusedError" in WebhookAttempt.objects.filter(lead=lead).first().error
    assert leads_webhook_deliver(now=later(100_000)).gave_up == 0
    lead.refresh_from_db()
    assert lead.state == Lead.State.ASSIGNED
    assert list(Lead.objects.webhook_failed()) == [lead]


@pytest.mark.django_db
def test_a_reassigned_lead_is_delivered_again_to_the_new_contractor_with_a_new_key(roofing, receiver, fast):

    first, lead = hooked_lead(roofing, receiver.url)
    receiver.script = [400]
    leads_webhook_deliver()
    assert list(Lead.objects.webhook_failed()) == [lead]
    second = owner(roofing, webhook_url=receiver.url + "?second")
    lead_assign(lead=lead, contractor=second, user=None, reason="first refused it", override=True)
    assert not Lead.objects.webhook_failed().exists()
    assert leads_webhook_deliver().delivered == 1
    (old, _old_body), (new, new_body) = receiver.requests
    assert old["Idempotency-Key"] != new["Idempotency-Key"]
    assert signature_valid(second.webhook_secret, new, new_body)
    assert not signature_valid(first.webhook_secret, new, new_body)
    lead.refresh_from_db()
    assert (lead.state, lead.contractor_id) == (Lead.State.DELIVERED, second.pk)
    assert attempts(lead) == [(1, 400, "refused"), (1, 200, "delivered")]


@pytest.mark.django_db
def test_contractors_without_a_webhook_url_are_never_posted_to(roofing, receiver, fast):
    owner(roofing, "80202")
    scored_home(roofing, score=90, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    assert leads_webhook_deliver() == leads_webhook_deliver(now=later(10_000))
    assert receiver.requests == []
    assert not WebhookAttempt.objects.exists()
    assert Lead.objects.get().state == Lead.State.ASSIGNED


@pytest.mark.django_db
def test_a_worker_that_died_after_the_post_is_retried_with_the_same_key(roofing, receiver, fast):
    _, lead = hooked_lead(roofing, receiver.url)
    died_at = timezone.now()
    # What a killed worker leaves: attempt 1 written in flight, posted, never given its answer.
    WebhookAttempt.objects.create(
        lead=lead, assigned_at=lead.assigned_at, contractor=lead.contractor, number=1, at=died_at, url=receiver.url
    )
    assert leads_webhook_deliver(now=died_at + dt.timedelta(seconds=5)).delivered == 0  # may still be posting
    assert receiver.requests == []
    assert leads_webhook_deliver(now=died_at + dt.timedelta(hours=1)).delivered == 1
    [(headers, _)] = receiver.requests
    assert headers["Idempotency-Key"] == idempotency_key(lead_id=lead.pk, assigned_at=lead.assigned_at)
    assert attempts(lead) == [(1, None, "retry"), (2, 200, "delivered")]
    assert "worker stopped" in WebhookAttempt.objects.get(lead=lead, number=1).error


@pytest.mark.django_db(transaction=True)
def test_racing_delivery_runs_post_each_lead_exactly_once(zip_codes, roofing, receiver, fast):
    contractor = owner(roofing, "80202", webhook_url=receiver.url)
    for score in range(60, 90):
        scored_home(roofing, score=score, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    lead_ids = set(Lead.objects.filter(contractor=contractor).values_list("pk", flat=True))
    assert len(lead_ids) == 30

    results, errors = race(lambda _: leads_webhook_deliver(limit=30), range(6))
    assert errors == []
    posted = [json.loads(body)["id"] for _, body in receiver.requests]
    assert sorted(posted) == sorted(lead_ids)
    assert sum(summary.delivered for summary in results) == 30
    assert Lead.objects.filter(pk__in=lead_ids, state=Lead.State.DELIVERED).count() == 30
    assert LeadEvent.objects.filter(lead_id__in=lead_ids, action="deliver").count() == 30
    assert WebhookAttempt.objects.filter(outcome=Outcome.DELIVERED).count() == 30


@pytest.mark.django_db(transaction=True)
def test_answers_are_recorded_after_postgresql_drops_the_connection_mid_batch_without_a_second_post(
    zip_codes, roofing, receiver, fast
):
    contractor = owner(roofing, "80202", webhook_url=receiver.url)
    for score in (70, 80, 90):
        scored_home(roofing, score=score, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    lead_ids = set(Lead.objects.filter(contractor=contractor).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # the connection the delivery will run on
    backend = connection.connection.info.backend_pid
    killed = []
    first = threading.Lock()  # the leads are posted at once (WEBHOOK_CONCURRENCY): one of them kills

    def drop_the_delivery_connection(headers) -> None:
        with first:
            if not killed:  # while the leads are being posted: their answers are recorded on a new connection
                with psycopg.connect(database_url(), autocommit=True) as admin:
                    killed.append(admin.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone()[0])

    receiver.on_request = drop_the_delivery_connection
    summary = leads_webhook_deliver()

    assert killed == [True]
    assert (summary.delivered, summary.retried, summary.gave_up, summary.refused) == (3, 0, 0, 0)
    assert sorted(json.loads(body)["id"] for _, body in receiver.requests) == sorted(lead_ids)  # each once
    assert Lead.objects.filter(pk__in=lead_ids, state=Lead.State.DELIVERED).count() == 3
    assert list(WebhookAttempt.objects.order_by("lead_id").values_list("number", "outcome")) == [(1, "delivered")] * 3


# --- The target checked again at send time --------------------------------------------------------------

REAL_GETADDRINFO = socket.getaddrinfo


def resolving(monkeypatch, names: dict[str, list]) -> list[str]:
    """Resolve each of `names` to its next answer (an address, or an error to raise), the last one again
    once they run out, as a DNS server under someone else's control may: DNS faults without a DNS server.
    Other names resolve as usual. Returns the names looked up, in order."""
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in names:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        looked_up.append(host)
        answers = names[host]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answer, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def refused_attempt(lead: Lead) -> tuple:
    attempt = WebhookAttempt.objects.get(lead=lead)
    return attempt.number, attempt.status_code, attempt.outcome, attempt.error


@pytest.mark.django_db
def test_a_private_target_saved_while_allowed_is_refused_at_send_time_and_never_connected(roofing, receiver, fast):
    _, lead = hooked_lead(roofing, receiver.url)
    fast.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

    summary = leads_webhook_deliver()

    assert (summary.delivered, summary.retried, summary.gave_up, summary.refused) == (0, 0, 0, 1)
    assert (receiver.connections, receiver.requests) == (0, [])
    assert refused_attempt(lead) == (
        1,
        None,
        "refused",
        (
            "127.0.0.1 is a loopback address: leads are posted only to public addresses "
            "(WEBHOOK_ALLOW_PRIVATE_TARGETS allows receivers on the premises)."
        ),
    )
    lead.refresh_from_db()
    assert (lead.state, lead.delivered_at) == (Lead.State.ASSIGNED, None)
    assert list(Lead.objects.webhook_failed()) == [lead]
    # Final: not tried again.
    assert leads_webhook_deliver(now=later(100_000)) == leads_webhook_deliver(now=later(200_000))
    assert WebhookAttempt.objects.filter(lead=lead).count() == 1
    assert receiver.connections == 0


@pytest.mark.django_db
def test_a_metadata_address_stored_behind_the_checks_is_refused_even_with_private_targets_allowed(roofing, fast):
    # Written past the model's validators (an update), as a row from before the check would be.
    _, lead = hooked_lead(roofing, "https://crm.example.com/hook")
    Contractor.objects.filter(pk=lead.contractor_id).update(webhook_url="http://169.254.169.254/latest/")

    assert leads_webhook_deliver().refused == 1

    assert refused_attempt(lead) == (
        1,
        None,
        "refused",
        (
            "169.254.169.254 is a cloud metadata service address: it hands out the server's cloud credentials and is "
            "never posted to."
        ),
    )


@pytest.mark.django_db
def test_plain_http_is_refused_at_send_time_in_production(roofing, receiver, fast):
    _, lead = hooked_lead(roofing, receiver.url)
    fast.WEBHOOK_ALLOW_HTTP = False
    fast.DEBUG = False

    assert leads_webhook_deliver().refused == 1

    assert (receiver.connections, receiver.requests) == (0, [])
    assert refused_attempt(lead)[3] == (
        "Webhook URLs must use https: leads are not sent in clear (http is allowed only with DEBUG or "
        "WEBHOOK_ALLOW_HTTP on)."
    )


@pytest.mark.django_db
def test_plain_http_is_posted_with_debug_on(roofing, receiver, fast):
    _, _lead = hooked_lead(roofing, receiver.url)
    fast.WEBHOOK_ALLOW_HTTP = False
    fast.DEBUG = True

    assert leads_webhook_deliver().delivered == 1
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_the_post_goes_to_the_checked_address_with_the_host_name_in_the_host_header(roofing, receiver, fast):
    _, lead = hooked_lead(roofing, f"http://localhost:{receiver.port}/hooks/leads?crm=1")

    assert leads_webhook_deliver().delivered == 1

    [(headers, body)] = receiver.requests
    assert headers["Host"] == f"localhost:{receiver.port}"
    assert json.loads(body)["id"] == lead.pk
    assert [attempt.url for attempt in WebhookAttempt.objects.filter(lead=lead)] == [
        f"http://localhost:{receiver.port}/hooks/leads?crm=1"
    ]


@pytest.mark.django_db
def test_a_name_that_resolves_elsewhere_after_the_check_is_not_looked_up_again(roofing, receiver, fast, monkeypatch):
    # DNS rebinding: the first answer passes the check, the next would point elsewhere (here 127.0.0.2, where
    # nothing listens, so that a second lookup would fail the delivery without leaving this machine).
    looked_up = resolving(monkeypatch, {"crm.rebind.test": ["127.0.0.1", "127.0.0.2"]})
    _, _lead = hooked_lead(roofing, f"http://crm.rebind.test:{receiver.port}/hooks/leads")

    assert leads_webhook_deliver().delivered == 1

    assert looked_up == ["crm.rebind.test"]
    [(headers, _)] = receiver.requests
    assert headers["Host"] == f"crm.rebind.test:{receiver.port}"


@pytest.mark.django_db
def test_a_name_that_resolves_to_a_refused_address_at_send_time_is_refused_without_connecting(
    roofing, receiver, fast, monkeypatch
):
    resolving(monkeypatch, {"crm.rebind.test": ["10.20.30.40"]})
    _, lead = hooked_lead(roofing, f"http://crm.rebind.test:{receiver.port}/hooks/leads")
    fast.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

    assert leads_webhook_deliver().refused == 1

    assert refused_attempt(lead)[3] == (
        "crm.rebind.test resolves to 10.20.30.40, a private address: leads are posted only to public addresses "
        "(WEBHOOK_ALLOW_PRIVATE_TARGETS allows receivers on the premises)."
    )
    assert receiver.connections == 0


@pytest.mark.django_db
def test_a_name_that_does_not_resolve_at_send_time_is_retried_then_delivered(roofing, receiver, fast, monkeypatch):
    outage = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    resolving(monkeypatch, {"crm.flaky.test": [outage, "127.0.0.1"]})
    _, lead = hooked_lead(roofing, f"http://crm.flaky.test:{receiver.port}/hooks/leads")

    assert leads_webhook_deliver().retried == 1
    first = WebhookAttempt.objects.get(lead=lead)
    assert (first.outcome, first.status_code, first.error) == (
        "retry",
        None,
        "crm.flaky.test could not be resolved (Temporary failure in name resolution).",
    )
    assert receiver.connections == 0
    assert not Lead.objects.webhook_failed().exists()

    assert leads_webhook_deliver(now=later(80)).delivered == 1
    assert attempts(lead) == [(1, None, "retry"), (2, 200, "delivered")]
