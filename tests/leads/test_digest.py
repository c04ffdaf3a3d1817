"""The daily email digest of contractors without a webhook, sent through Django's SMTP backend to a local
SMTP server: listed leads are delivered by email, a refused email delivers nothing."""

import email
import socketserver
import threading

import pytest
from django.utils import timezone

from contractors.models import Contractor
from leadengine.models import JobRun
from leadengine.services.jobs import job_run_execute
from leads.models import Lead, LeadEvent
from leads.services import digest
from leads.services.digest import leads_email_digest
from leads.services.generation import leads_generate
from leads.services.lifecycle import leads_deliver
from leads.services.routing import leads_route
from tests.leads.factories import owner, scored_home
from tests.racing import race

WORKER_MAY_LOG = "could not email the lead digest"


class SmtpServer:
    """A small SMTP server on a free local port that keeps the messages it accepts and refuses (550)
    recipients in `refused`."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.Message]] = []
        self.refused: set[str] = set()
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str):
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self):
                recipients: list[str] = []
                self.reply("220 localhost ready")
                while line := self.rfile.readline().decode():
                    verb = line[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 localhost")
                    elif verb == "MAIL":
                        recipients = []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        address = line.split(":", 1)[1].strip().strip("<>")
                        if address in server.refused:
                            self.reply("550 no such mailbox")
                        else:
                            recipients.append(address)
                            self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go ahead")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        server.messages.append((recipients, email.message_from_bytes(data)))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> dict[str, str]:
        return {to[0]: message.get_payload(decode=True).decode() for to, message in self.messages}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp(settings):
    server = SmtpServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.SITE_URL = "https://leads.example.com"
    yield server
    server.close()


@pytest.fixture
def routed(roofing, zip_codes):
    """Acme (no webhook) holds three leads in 80202; Hooked (a webhook) one in 80203; Mute (no email) one
    in 80204."""
    acme = owner(roofing, "80202", name="Acme Roofing", contact_email="sales@acme.example")
    hooked = owner(roofing, "80203", webhook_url="https://crm.example.com/hook")
    mute = owner(roofing, "80204", contact_email="")
    for score in (70, 95, 85):
        scored_home(roofing, score=score, zip_code="80202", owner_name="Pat & Sam Doe")
    scored_home(roofing, score=90, zip_code="80203")
    scored_home(roofing, score=90, zip_code="80204")
    leads_generate(trade=roofing)
    leads_route()
    return acme, hooked, mute


def test_a_contractor_without_a_webhook_gets_its_new_leads_by_email_and_they_are_delivered(routed, smtp):
    acme, hooked, mute = routed

    summary = leads_email_digest()

    assert (summary.contractors_emailed, summary.leads_delivered, summary.contractors_failed) == (1, 3, 0)
    ((to, message),) = smtp.messages
    assert (to, message["Subject"]) == (["sales@acme.example"], "LeadEngine: 3 new leads")
    body = message.get_payload(decode=True).decode()
    held = list(Lead.objects.filter(contractor=acme).select_related("property").order_by("-priority"))
    positions = [body.index(f"Lead {lead.pk}; accept it by ") for lead in held]
    assert positions == sorted(positions)  # best first
    assert "Hello Acme Roofing," in body
    assert "Owner: Pat & Sam Doe." in body
    assert f"1. Roofing: {held[0].property.address}, Denver, CO 80202" in body
    assert "https://leads.example.com/api/v1/leads/?state=assigned" in body
    assert {lead.state for lead in Lead.objects.filter(contractor=acme)} == {"delivered"}
    assert {(e.action, e.reason) for lead in held for e in lead.events.filter(action="deliver")} == {
        ("deliver", "email")
    }
    # A webhook contractor gets its leads by webhook, one without an email address by the API.
    assert Lead.objects.get(contractor=hooked).state == "assigned"
    assert Lead.objects.get(contractor=mute).state == "assigned"


def test_the_next_digest_sends_only_what_is_new(routed, smtp, roofing):
    _acme, _, _ = routed
    leads_email_digest()
    assert leads_email_digest().contractors_emailed == 0

    scored_home(roofing, score=99, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    leads_email_digest()

    assert [message["Subject"] for _, message in smtp.messages] == [
        "LeadEngine: 3 new leads",
        "LeadEngine: 1 new lead",
    ]


def test_leads_already_read_through_the_api_are_not_in_the_digest(routed, smtp):
    acme, _, _ = routed
    first = Lead.objects.filter(contractor=acme).order_by("-priority").first()
    leads_deliver(lead_ids=[first.pk], via="api")

    assert leads_email_digest().leads_delivered == 2
    assert f"Lead {first.pk};" not in smtp.bodies()["sales@acme.example"]


def test_suspended_contractors_get_no_digest(routed, smtp):
    acme, _, _ = routed
    Contractor.objects.filter(pk=acme.pk).update(status=Contractor.Status.SUSPENDED)

    assert leads_email_digest().contractors_emailed == 0
    assert smtp.messages == []


def test_a_refused_email_delivers_nothing_for_that_contractor_and_the_others_still_get_theirs(
    roofing, routed, smtp, caplog
):
    acme, _, _ = routed
    bolt = owner(roofing, "80205", contact_email="bolt@example.com")
    scored_home(roofing, score=90, zip_code="80205")
    leads_generate(trade=roofing)
    leads_route()
    smtp.refused.add("sales@acme.example")

    summary = leads_email_digest()

    assert (summary.contractors_emailed, summary.leads_delivered, summary.contractors_failed) == (1, 1, 1)
    assert list(smtp.bodies()) == ["bolt@example.com"]
    assert {lead.state for lead in Lead.objects.filter(contractor=acme)} == {"assigned"}
    assert Lead.objects.get(contractor=bolt).state == "delivered"
    assert WORKER_MAY_LOG in caplog.text

    smtp.refused.clear()
    assert leads_email_digest().leads_delivered == 3  # nothing was lost: Acme gets them next time


def test_a_digest_run_whose_mail_server_refuses_fails_and_says_so(routed, smtp):
    smtp.refused.add("sales@acme.example")
    run = JobRun.objects.create(job="email_digest", queued_at=timezone.now())

    run = job_run_execute(run_id=run.pk)

    assert run.status == "failed"
    assert run.error == (
        "JobFailed: 0 leads emailed to 0 contractors, 1 emails refused: the mail server refused (see the worker's log)."
    )
    assert run.counts == {"contractors_emailed": 0, "delivered": 0, "contractors_failed": 1}


def test_a_long_list_is_cut_to_the_best_and_the_rest_wait(routed, smtp, roofing, monkeypatch):
    monkeypatch.setattr(digest, "DIGEST_MOST_LEADS", 2)

    assert leads_email_digest().leads_delivered == 2
    body = smtp.bodies()["sales@acme.example"]
    assert "1 more lead waits for you in the API." in body
    assert Lead.objects.filter(contractor=routed[0], state="assigned").count() == 1


@pytest.mark.django_db(transaction=True)
def test_digests_racing_each_other_and_api_reads_deliver_each_lead_once(routed, smtp):
    """The digest locks the leads it lists and re-reads them under the lock: whoever delivers a lead
    first has it, and nobody else lists or delivers it again."""
    acme, _, _ = routed
    ids = list(Lead.objects.filter(contractor=acme).values_list("pk", flat=True))

    def deliver(who: str):
        if who == "api":
            return len(leads_deliver(lead_ids=ids, via="api"))
        return leads_email_digest().leads_delivered

    results, errors = race(deliver, ["digest", "api", "digest", "api"])

    assert errors == []
    assert sum(results) == 3
    assert LeadEvent.objects.filter(lead__contractor=acme, action="deliver").count() == 3
    emailed = [
        body.count("; accept it by ") for body in (m.get_payload(decode=True).decode() for _, m in smtp.messages)
    ]
    assert sum(emailed) == sum(results[0::2])  # an email lists exactly the leads its digest delivered
