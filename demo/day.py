"""The demo market's day: what the demo contractors do with the leads they were given, so that the back
office (the dashboard's funnel, rates by contractor and ZIP) shows a working business on first run.

Every move goes through the lifecycle services, as a contractor's CRM would make it through the API:
a share of each contractor's assigned leads is read (delivered), most of those accepted, some
rejected, some of the accepted contacted, converted with a job value, or returned. Deterministic for a
seed.

Only demo contractors (`Contractor.is_demo`, made by seed_demo_territories) play: a real contractor's
leads are never touched, whatever else the database holds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from contractors.models import Contractor
from demo.guard import DemoRefused, demo_production_check
from leads.models import Lead, LeadEvent
from leads.services.lifecycle import lead_accept, lead_contact, lead_convert, lead_reject, lead_return, leads_deliver

CONTRACTOR = LeadEvent.Actor.CONTRACTOR
# What happens to a delivered lead: (share, move). The rest stay delivered, waiting for an answer.
ANSWERS = (("accept", 0.55), ("reject", 0.10))
# What happens to an accepted lead: converted, returned, contacted; the rest stay accepted.
OUTCOMES = (("convert", 0.20), ("return", 0.06), ("contact", 0.40))
RETURN_REASONS = (Lead.ReturnReason.WRONG_CONTACT, Lead.ReturnReason.ALREADY_DONE, Lead.ReturnReason.NOT_OWNER)


@dataclass(frozen=True)
class DemoDay:
    skipped: bool = False
    delivered: int = 0
    accepted: int = 0
    rejected: int = 0
    converted: int = 0
    returned: int = 0
    contacted: int = 0


def _pick(rng: random.Random, shares: tuple[tuple[str, float], ...]) -> str | None:
    roll = rng.random()
    for name, share in shares:
        if roll < share:
            return name
        roll -= share
    return None


def leads_demo_day(
    *, seed: int = 42, most: int = 600, only_if_quiet: bool = True, allow_production: bool = False
) -> DemoDay:
    """Play the demo contractors' day on `most` of their assigned leads, drawn at random. With
    `only_if_quiet`, nothing happens once a demo contractor has answered a lead (accepted or rejected
    one), so running it again (every `make run`) changes nothing.

    DemoRefused with DEBUG off unless `allow_production`, and when there is no demo contractor: the
    day is made up, and on a real contractor's leads it would pass for their business.
    """
    demo_production_check(doing="play the demo day", allow_production=allow_production)
    demo = Contractor.objects.filter(is_demo=True)
    if not demo.exists():
        raise DemoRefused(
            "refusing to play the demo day: the database has no demo contractors (seed_demo_territories makes "
            "them), and the demo day plays only their leads"
        )
    if only_if_quiet and LeadEvent.objects.filter(action__in=["accept", "reject"], contractor__in=demo).exists():
        return DemoDay(skipped=True)
    rng = random.Random(seed)
    assigned = list(
        Lead.objects.filter(state=Lead.State.ASSIGNED, contractor__in=demo).order_by("id").values_list("id", flat=True)
    )
    read = sorted(rng.sample(assigned, min(len(assigned), most)))
    delivered = leads_deliver(lead_ids=read, via="api")
    counts = dict.fromkeys(("accepted", "rejected", "converted", "returned", "contacted"), 0)
    # Answers only for leads a demo contractor still holds.
    for lead in Lead.objects.filter(pk__in=delivered, contractor__in=demo).order_by("id"):
        answer = _pick(rng, ANSWERS)
        if answer == "reject":
            lead_reject(lead=lead, actor=CONTRACTOR, reason="Outside our service area this season")
            counts["rejected"] += 1
            continue
        if answer is None:
            continue
        lead = lead_accept(lead=lead, actor=CONTRACTOR)
        counts["accepted"] += 1
        outcome = _pick(rng, OUTCOMES)
        if outcome == "convert":
            value = Decimal(rng.randrange(4_000, 40_000, 250))
            lead_convert(lead=lead, job_value=value, actor=CONTRACTOR)
            counts["converted"] += 1
        elif outcome == "return":
            reason = rng.choice(RETURN_REASONS)
            if lead_return(lead=lead, reason=reason, actor=CONTRACTOR).lead.state == Lead.State.RETURNED:
                counts["returned"] += 1
        elif outcome == "contact":
            lead_contact(lead=lead, actor=CONTRACTOR, note="Inspection booked")
            counts["contacted"] += 1
    return DemoDay(delivered=len(delivered), **counts)
