"""The daily email digest: a contractor without a webhook URL gets its new leads (assigned, not yet seen)
by email at its contact address, and the leads it lists are delivered (via "email"). It can always pull
them, and the rest, from the API.

One contractor at a time, in its own transaction: its listed leads are locked (FOR UPDATE, by id), the
email is sent, then they are delivered, and the transaction commits. A mail server that refuses rolls
the contractor back: its leads stay assigned for the next digest or the API, and the other contractors
still get theirs. The email is sent inside the transaction, not after it, so a refused email never
leaves leads delivered that nobody received; the cost is that a contractor's listed leads stay locked
for the length of one SMTP exchange (its API reads wait that long), and a process killed between the
send and the commit sends those leads again in the next digest (listed twice, never lost).

Urgent leads (Lead.urgent: a storm just reached the home) do not wait for the morning: the urgent email
(leads_email_urgent, the "Urgent lead email" job, asked for by the storm fast path as soon as it routed
them, and every minute by its schedule) sends each such contractor its waiting urgent leads the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string

from contractors.models import Contractor
from leads.models import Lead
from leads.services.lifecycle import leads_deliver

DIGEST_MOST_LEADS = 200  # leads listed per email, best first; the others wait for the next one or the API
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestSummary:
    contractors_emailed: int = 0
    leads_delivered: int = 0
    contractors_failed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.leads_delivered:,} leads emailed to {self.contractors_emailed:,} contractors"
            f"{f', {self.contractors_failed:,} emails refused' if self.contractors_failed else ''}"
        )


def digest_recipients(*, urgent_only: bool = False) -> list[Contractor]:
    """Contractors the digest is for: no webhook URL, a contact email, not suspended (a suspended
    contractor has lost its access), and at least one assigned lead waiting (an urgent one)."""
    waiting = Lead.objects.filter(contractor=OuterRef("pk"), state=Lead.State.ASSIGNED)
    if urgent_only:
        waiting = waiting.filter(urgent=True)
    return list(
        Contractor.objects.filter(webhook_url="")
        .exclude(contact_email="")
        .exclude(status=Contractor.Status.SUSPENDED)
        .filter(Exists(waiting))
        .order_by("pk")
    )


def _digest_send(contractor: Contractor, *, urgent_only: bool = False) -> int:
    """Email the contractor its best waiting (urgent) leads and deliver them; returns how many (0: none left)."""
    with transaction.atomic():
        waiting = Lead.objects.filter(contractor=contractor, state=Lead.State.ASSIGNED)
        if urgent_only:
            waiting = waiting.filter(urgent=True)
        ids = list(waiting.order_by("-priority", "id").values_list("id", flat=True)[:DIGEST_MOST_LEADS])
        leads = list(
            Lead.objects.select_for_update(of=("self",))
            .select_related("trade", "property")
            .filter(pk__in=ids, state=Lead.State.ASSIGNED)  # re-read under the lock: an API read may have won
            .order_by("id")
        )
        if not leads:
            return 0
        leads.sort(key=lambda lead: (-lead.priority, lead.id))
        more = waiting.count() - len(leads)
        context = {
            "contractor": contractor,
            "leads": leads,
            "more": more,
            "zone": ZoneInfo(contractor.time_zone),
            "leads_url": f"{settings.SITE_URL}/api/v1/leads/?state=assigned",
            "urgent_only": urgent_only,
        }
        kind = "urgent" if urgent_only else "new"
        subject = f"LeadEngine: {len(leads):,} {kind} lead{'s' if len(leads) != 1 else ''}"
        body = render_to_string("leads/email/digest.txt", context)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [contractor.contact_email])
        return len(leads_deliver(lead_ids=[lead.pk for lead in leads], via="email"))


def leads_email_digest(*, urgent_only: bool = False) -> DigestSummary:
    """Send every recipient (digest_recipients) its digest; a refused email is logged and counted, the
    other contractors still get theirs. `urgent_only`: the urgent email, of the urgent leads alone."""
    emailed = delivered = failed = 0
    for contractor in digest_recipients(urgent_only=urgent_only):
        try:
            sent = _digest_send(contractor, urgent_only=urgent_only)
        except OSError:  # SMTP and connection errors: nothing was delivered for this contractor
            log.exception("could not email the lead digest of contractor %s", contractor.pk)
            failed += 1
            continue
        if sent:
            emailed, delivered = emailed + 1, delivered + sent
    return DigestSummary(contractors_emailed=emailed, leads_delivered=delivered, contractors_failed=failed)
