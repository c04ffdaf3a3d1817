"""What contractors are told besides their leads (contractors.services.notices): a waitlist offer, a
territory given from the waitlist and a withdrawn lead, by a signed webhook event to a real receiver on
127.0.0.1 and by email; the lead webhook's own event type. Crosses territories and leads, hence here."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from contractors.models import Contractor, ContractorNotice
from contractors.services.notices import contractor_notices_send
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_withdraw
from leads.services.routing import leads_route
from leads.services.suppressions import suppression_add
from leads.services.webhooks import idempotency_key, leads_webhook_deliver
from territories.models import WaitlistEntry
from territories.services.claims import territory_claim
from territories.services.ownership import territory_release
from territories.services.waitlist import waitlist_join
from tests.contractors.factories import ContractorFactory
from tests.leads.factories import api_client, owner, scored_home
from tests.leads.test_digest import SmtpServer
from tests.racing import race
from tests.receiver import receiver_allowed_fixture, receiver_fixture, signature_valid  # noqa: F401  (fixture)

State = ContractorNotice.State


@pytest.fixture
def fast(receiver_allowed):
    settings = receiver_allowed
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_BACKOFF_SECONDS = 60
    settings.SITE_URL = "https://leads.example.com"
    settings.TERRITORY_OFFER_HOURS = 48
    return settings


@pytest.fixture
def line(zip_codes, trades, receiver, fast):
    """Acme owns 80302 roofing; Bolt (a webhook to the receiver, an email) then Crest (a webhook, no
    email) wait for it."""
    roofing = trades["roofing"]
    acme = ContractorFactory(name="Acme Roofing", slug="acme", trades=[roofing])
    territory = territory_claim(contractor=acme, trade=roofing, zip_code="80302")
    bolt = ContractorFactory(
        name="Bolt", slug="bolt", trades=[roofing], webhook_url=receiver.url, contact_email="ops@bolt.example"
    )
    crest = ContractorFactory(name="Crest", slug="crest", trades=[roofing], webhook_url=receiver.url, contact_email="")
    entries = [waitlist_join(contractor=c, trade=roofing, zip_code="80302") for c in (bolt, crest)]
    return {"territory": territory, "bolt": bolt, "crest": crest, "entries": entries}


def as_json(moment: dt.datetime) -> str:
    """A date-time as the webhook body writes it (DjangoJSONEncoder: milliseconds, Z for UTC)."""
    text = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def notices() -> list[tuple]:
    return list(
        ContractorNotice.objects.order_by("id").values_list("contractor__slug", "event", "channel", "state", "attempts")
    )


def offered_body(entry: WaitlistEntry) -> dict:
    return {
        "event": "territory.offered",
        "id": entry.pk,
        "trade": "roofing",
        "zip_code": "80302",
        "offered_at": as_json(entry.offered_at),
        "offer_expires_at": as_json(entry.offer_expires_at),
        "accept_url": f"https://leads.example.com/api/v1/waitlist/{entry.pk}/accept/",
    }


@pytest.mark.django_db(transaction=True)
def test_a_release_offers_the_zip_and_the_next_in_line_gets_one_signed_post_and_an_email_even_when_runs_race(
    line, receiver
):
    territory_release(territory=line["territory"])
    bolt_entry = WaitlistEntry.objects.get(pk=line["entries"][0].pk)
    assert bolt_entry.status == WaitlistEntry.Status.OFFERED
    assert bolt_entry.offer_expires_at == bolt_entry.offered_at + dt.timedelta(hours=48)
    # The email went out at the commit; the webhook waits for a delivery run.
    assert notices() == [
        ("bolt", "territory.offered", "webhook", "pending", 0),
        ("bolt", "territory.offered", "email", "delivered", 1),
    ]
    [message] = mail.outbox
    assert (message.to, message.subject) == (["ops@bolt.example"], "LeadEngine: 80302 roofing is offered to you")
    assert f"https://leads.example.com/api/v1/waitlist/{bolt_entry.pk}/accept/" in message.body
    assert receiver.requests == []

    results, errors = race(lambda _: contractor_notices_send(), range(6))

    assert errors == []
    assert sum(summary.delivered for summary in results) == 1
    [(headers, body)] = receiver.requests
    assert json.loads(body) == offered_body(bolt_entry)
    assert signature_valid(line["bolt"].webhook_secret, headers, body)
    assert not signature_valid(line["crest"].webhook_secret, headers, body)
    assert headers["X-LeadEngine-Event"] == "territory.offered"
    webhook = ContractorNotice.objects.get(channel="webhook")
    assert (
        headers["Idempotency-Key"]
        == webhook.key
        == f"territory.offered-{bolt_entry.pk}-" + str(int(bolt_entry.offered_at.timestamp() * 1_000_000))
    )
    assert (webhook.state, webhook.attempts, webhook.status_code, webhook.error, webhook.target) == (
        "delivered",
        1,
        200,
        "",
        line["bolt"].webhook_url,
    )
    assert webhook.sent_at is not None
    assert notices() == [
        ("bolt", "territory.offered", "webhook", "delivered", 1),
        ("bolt", "territory.offered", "email", "delivered", 1),
    ]
    assert len(mail.outbox) == 1
    assert contractor_notices_send(now=timezone.now() + dt.timedelta(days=1)).delivered == 0
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_a_500_is_retried_with_the_same_key_after_the_backoff(line, receiver):
    territory_release(territory=line["territory"])
    receiver.script = [500]
    start = timezone.now()
    summary = contractor_notices_send(now=start)
    assert (summary.delivered, summary.retried, summary.gave_up, summary.refused) == (1, 1, 0, 0)  # the email
    webhook = ContractorNotice.objects.get(channel="webhook")
    assert (webhook.state, webhook.attempts, webhook.status_code, webhook.error) == ("retry", 1, 500, "HTTP 500")
    assert contractor_notices_send(now=start + dt.timedelta(seconds=59)).retried == 0  # 60 s (+ up to 15)
    assert len(receiver.requests) == 1
    assert contractor_notices_send(now=start + dt.timedelta(seconds=76)).delivered == 1
    first, second = receiver.requests
    assert first[0]["Idempotency-Key"] == second[0]["Idempotency-Key"] == webhook.key
    assert first[1] == second[1]
    webhook.refresh_from_db()
    assert (webhook.state, webhook.attempts, webhook.status_code, webhook.error) == ("delivered", 2, 200, "")
    assert webhook.next_at is None


@pytest.mark.django_db
def test_a_400_is_refused_and_not_retried(line, receiver):
    territory_release(territory=line["territory"])
    receiver.script = [400]
    assert contractor_notices_send().refused == 1
    assert contractor_notices_send(now=timezone.now() + dt.timedelta(days=1)).refused == 0
    assert len(receiver.requests) == 1
    webhook = ContractorNotice.objects.get(channel="webhook")
    assert (webhook.state, webhook.attempts, webhook.status_code, webhook.error) == ("refused", 1, 400, "HTTP 400")
    assert webhook.next_at is None


@pytest.mark.django_db
def test_a_target_no_longer_allowed_is_refused_before_any_connection(line, receiver, settings):
    territory_release(territory=line["territory"])
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    assert contractor_notices_send().refused == 1
    assert receiver.connections == 0
    webhook = ContractorNotice.objects.get(channel="webhook")
    assert webhook.state == "refused"
    assert "loopback" in webhook.error


@pytest.mark.django_db
def test_a_rolled_back_offer_records_no_event_and_emails_nobody(line, receiver, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        territory_release(territory=line["territory"])
        assert len(notices()) == 2
        raise RuntimeError("the caller failed after the release")
    assert callbacks == []
    assert notices() == []
    assert list(WaitlistEntry.objects.values_list("status", flat=True)) == ["waiting", "waiting"]
    assert contractor_notices_send().delivered == 0
    assert receiver.requests == []
    assert mail.outbox == []


@pytest.mark.django_db
def test_declining_an_offer_by_leaving_offers_it_to_the_next_in_line(line, receiver):
    from territories.services.waitlist import waitlist_leave

    territory_release(territory=line["territory"])
    waitlist_leave(entry=line["entries"][0])
    crest_entry = WaitlistEntry.objects.get(pk=line["entries"][1].pk)
    # Crest has no contact email: the webhook only.
    assert notices() == [
        ("bolt", "territory.offered", "webhook", "pending", 0),
        ("bolt", "territory.offered", "email", "pending", 0),
        ("crest", "territory.offered", "webhook", "pending", 0),
    ]
    ContractorNotice.objects.filter(contractor__slug="bolt").delete()
    assert contractor_notices_send().delivered == 1
    [(headers, body)] = receiver.requests
    assert json.loads(body) == offered_body(crest_entry)
    assert signature_valid(line["crest"].webhook_secret, headers, body)


@pytest.mark.django_db
def test_an_expired_offer_goes_to_the_next_in_line_with_its_notice(line, receiver):
    from territories.services.waitlist import territory_offers_expire

    territory_release(territory=line["territory"])
    expired = territory_offers_expire(now=timezone.now() + dt.timedelta(hours=49))
    assert expired.expired == 1
    assert [row[:3] for row in notices()] == [
        ("bolt", "territory.offered", "webhook"),
        ("bolt", "territory.offered", "email"),
        ("crest", "territory.offered", "webhook"),
    ]


@pytest.mark.django_db
def test_an_auto_claim_tells_the_contractor_territory_assigned(line, receiver, settings):
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True
    territory_release(territory=line["territory"])
    given = line["bolt"].territories.get(zip_code_id="80302")
    assert notices() == [
        ("bolt", "territory.assigned", "webhook", "pending", 0),
        ("bolt", "territory.assigned", "email", "pending", 0),
    ]
    assert contractor_notices_send().delivered == 2
    [(headers, body)] = receiver.requests
    assert headers["X-LeadEngine-Event"] == "territory.assigned"
    assert json.loads(body) == {
        "event": "territory.assigned",
        "id": given.pk,
        "trade": "roofing",
        "zip_code": "80302",
        "started_at": as_json(given.started_at),
        "waitlist_entry_id": line["entries"][0].pk,
    }
    [message] = mail.outbox
    assert (message.to, message.subject) == (["ops@bolt.example"], "LeadEngine: 80302 roofing is now yours")


@pytest.fixture
def delivered(zip_codes, trades, receiver, fast):
    """A lead delivered to Acme by webhook, of a home owned by Pat Doe."""
    roofing = trades["roofing"]
    acme = owner(roofing, "80202", webhook_url=receiver.url, contact_email="ops@acme.example", slug="acme")
    home = scored_home(roofing, score=90, zip_code="80202", owner_name="Pat Doe")
    leads_generate(trade=roofing)
    leads_route()
    lead = Lead.objects.get(property=home)
    assert leads_webhook_deliver().delivered == 1
    lead.refresh_from_db()
    assert lead.state == Lead.State.DELIVERED
    return acme, lead


@pytest.mark.django_db
def test_the_lead_webhook_is_the_event_lead_assigned(delivered, receiver):
    acme, lead = delivered
    [(headers, body)] = receiver.requests
    assert headers["X-LeadEngine-Event"] == "lead.assigned"
    assert headers["Idempotency-Key"] == idempotency_key(lead_id=lead.pk, assigned_at=lead.assigned_at)
    assert signature_valid(acme.webhook_secret, headers, body)
    sent = json.loads(body)
    assert list(sent)[:2] == ["event", "id"]
    assert (sent["event"], sent["id"], sent["state"]) == ("lead.assigned", lead.pk, "assigned")
    assert ContractorNotice.objects.count() == 0


@pytest.mark.django_db
def test_a_delivered_lead_withdrawn_for_a_do_not_contact_entry_posts_lead_withdrawn_and_emails(
    delivered, receiver, django_capture_on_commit_callbacks
):
    acme, lead = delivered
    # The entry leaves the lead with its contractor for staff to decide; nothing is told yet.
    summary = suppression_add(kind="owner", value="Pat Doe")
    assert summary.assigned_leads == [lead.pk]
    assert notices() == []
    with django_capture_on_commit_callbacks(execute=True):
        lead = lead_withdraw(lead=lead, actor=LeadEvent.Actor.STAFF, reason="Homeowner asked not to be contacted")
    assert notices() == [
        ("acme", "lead.withdrawn", "webhook", "pending", 0),
        ("acme", "lead.withdrawn", "email", "delivered", 1),
    ]
    [message] = mail.outbox
    assert (message.to, message.subject) == (["ops@acme.example"], f"LeadEngine: lead {lead.pk} was withdrawn")
    assert "the homeowner asked not to be contacted" in message.body

    assert contractor_notices_send().delivered == 1
    (assigned_headers, _), (headers, body) = receiver.requests
    assert assigned_headers["X-LeadEngine-Event"] == "lead.assigned"
    assert json.loads(body) == {
        "event": "lead.withdrawn",
        "id": lead.pk,
        "trade": "roofing",
        "zip_code": "80202",
        "reason": "do_not_contact",
        "withdrawn_at": as_json(lead.closed_at),
    }
    assert headers["X-LeadEngine-Event"] == "lead.withdrawn"
    assert headers["Idempotency-Key"] == f"lead.withdrawn-{lead.pk}"
    assert signature_valid(acme.webhook_secret, headers, body)
    assert contractor_notices_send(now=timezone.now() + dt.timedelta(days=1)).delivered == 0
    assert len(receiver.requests) == 2


@pytest.mark.django_db
def test_a_lead_withdrawn_for_another_reason_says_other_and_a_pool_lead_tells_nobody(delivered, trades, receiver):
    _, lead = delivered
    lead_withdraw(lead=lead, actor=LeadEvent.Actor.STAFF, reason="Bad address data")
    assert ContractorNotice.objects.get(channel="webhook").payload["reason"] == "other"
    pool = scored_home(trades["roofing"], score=90, zip_code="80203")
    leads_generate(trade=trades["roofing"])
    pool_lead = Lead.objects.get(property=pool)
    lead_withdraw(lead=pool_lead, actor=LeadEvent.Actor.STAFF, reason="Bad address data")
    assert ContractorNotice.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_refused_email_is_logged_kept_and_sent_by_the_next_run(line, receiver, settings, caplog):
    smtp = SmtpServer()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        smtp.refused.add("ops@bolt.example")
        territory_release(territory=line["territory"])  # the release commits whatever the mail server says
        email = ContractorNotice.objects.get(channel="email")
        assert (email.state, email.attempts, email.error[:22]) == ("retry", 1, "SMTPRecipientsRefused:")
        assert WaitlistEntry.objects.get(pk=line["entries"][0].pk).status == "offered"
        assert f"could not email notice {email.pk} to ops@bolt.example" in caplog.text
        smtp.refused.clear()
        summary = contractor_notices_send(now=timezone.now() + dt.timedelta(minutes=2))
        assert (summary.delivered, summary.retried) == (2, 0)  # the email and the webhook
        email.refresh_from_db()
        assert (email.state, email.attempts, email.error) == ("delivered", 2, "")
        assert [to for to, _ in smtp.messages] == [["ops@bolt.example"]]
    finally:
        smtp.close()


@pytest.mark.django_db
def test_the_offer_is_accepted_at_its_accept_url(line, receiver):
    territory_release(territory=line["territory"])
    bolt_entry = line["entries"][0]
    path = f"/api/v1/waitlist/{bolt_entry.pk}/accept/"
    assert api_client(line["crest"]).post(path).status_code == 404
    response = api_client(line["bolt"]).post(path)
    assert response.status_code == 201
    assert (response.json()["zip_code"], response.json()["trade"]) == ("80302", "roofing")
    assert WaitlistEntry.objects.get(pk=bolt_entry.pk).status == "claimed"
    again = api_client(line["bolt"]).post(path)
    assert again.status_code == 404  # a claimed entry is no longer on the waitlist


@pytest.mark.django_db
def test_staff_see_the_outbox_read_only_filtered_by_event_state_and_contractor(line, receiver, staff_client):
    territory_release(territory=line["territory"])
    contractor_notices_send()
    url = "/admin/contractors/contractornotice/"
    bolt = line["bolt"].pk
    page = staff_client.get(url, {"event": "territory.offered", "state": "delivered", "contractor__id__exact": bolt})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 2
    assert staff_client.get(url, {"event": "lead.withdrawn"}).context["cl"].result_count == 0
    notice = ContractorNotice.objects.get(channel="webhook")
    assert staff_client.get(f"{url}{notice.pk}/change/").status_code == 200
    assert staff_client.get(f"{url}add/").status_code == 403
    staff_client.post(f"{url}{notice.pk}/delete/", {"post": "yes"})
    assert ContractorNotice.objects.filter(pk=notice.pk).exists()


@pytest.mark.django_db
def test_a_notice_left_in_flight_by_a_dead_worker_is_posted_again_with_the_same_key(line, receiver):
    territory_release(territory=line["territory"])
    ContractorNotice.objects.filter(channel="email").delete()
    died_at = timezone.now()
    # The worker claimed the webhook and died before the POST's answer was recorded.
    ContractorNotice.objects.filter(channel="webhook").update(
        state=State.IN_FLIGHT, attempts=1, next_at=died_at + dt.timedelta(minutes=5)
    )
    assert contractor_notices_send(now=died_at + dt.timedelta(minutes=4)).delivered == 0  # not stale yet
    assert receiver.requests == []
    assert contractor_notices_send(now=died_at + dt.timedelta(minutes=6)).delivered == 1
    [(headers, _)] = receiver.requests
    webhook = ContractorNotice.objects.get()
    assert headers["Idempotency-Key"] == webhook.key
    assert (webhook.state, webhook.attempts, webhook.error) == ("delivered", 2, "")


@pytest.mark.django_db
def test_the_webhook_delivery_job_sends_the_notices_and_counts_them(line, receiver):
    from leadengine.models import JobRun
    from leadengine.services.jobs import job_run_execute

    territory_release(territory=line["territory"])
    run = job_run_execute(run_id=JobRun.objects.create(job="webhook_delivery", queued_at=timezone.now()).pk)
    assert (run.status, run.counts) == (
        "succeeded",
        {"delivered": 0, "retried": 0, "gave_up": 0, "refused": 0, "notices_delivered": 2, "notices_retried": 0,
         "notices_gave_up": 0, "notices_refused": 0},
    )  # fmt: skip
    assert len(receiver.requests) == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_release_offering_the_zip_to_a_webhook_contractor_asks_for_a_delivery_run_now(line, idle_queue):
    from leadengine import flows
    from leadengine.models import JobRun

    flows.territories_release(territories=[line["territory"]])
    [run] = JobRun.objects.all()
    assert (run.job, run.status) == ("webhook_delivery", "queued")
    assert len(idle_queue()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_release_offering_the_zip_to_a_contractor_without_a_webhook_asks_for_no_run(line, idle_queue):
    from leadengine import flows
    from leadengine.models import JobRun

    Contractor.objects.filter(pk=line["bolt"].pk).update(webhook_url="")
    flows.territories_release(territories=[line["territory"]])
    assert notices() == [("bolt", "territory.offered", "email", "delivered", 1)]
    assert not JobRun.objects.exists()
    assert idle_queue() == []
