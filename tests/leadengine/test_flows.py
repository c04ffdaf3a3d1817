"""The use cases that cross apps (leadengine/flows.py): every change of a territory's hands routes the
waiting leads of the ZIPs that got a new owner, and only those; the nightly run does its steps in order."""

import datetime as dt

import pytest
from django.utils import timezone

from contractors.models import Contractor
from contractors.services.contractors import contractor_status_change
from leadengine import flows
from leadengine.models import JobRun
from leadengine.services.jobs import job_run_execute
from leads.models import Lead
from leads.services.generation import leads_generate
from scoring.models import ScoringModel, ScoringRun, Trade
from scoring.selectors import trades_with_active_model
from territories.models import Territory, WaitlistEntry
from territories.services.claims import territory_claim
from territories.services.waitlist import waitlist_join
from tests.contractors.factories import ContractorFactory
from tests.leads.factories import home, owner, scored_home

ZIP = "80205"


def waiting_lead(trade: Trade, zip_code: str = ZIP) -> Lead:
    """A new pool lead in `zip_code`, nobody routing it yet."""
    prop = scored_home(trade, score=90, zip_code=zip_code)
    leads_generate(trade=trade)
    return Lead.objects.get(property=prop)


def where(lead: Lead) -> tuple[str, int | None]:
    lead.refresh_from_db()
    return lead.state, lead.contractor_id


def holder(trade: Trade, zip_code: str = ZIP) -> int | None:
    return (
        Territory.objects.active()
        .filter(trade=trade, zip_code_id=zip_code)
        .values_list("contractor", flat=True)
        .first()
    )


def line() -> list[tuple[str, str]]:
    return list(WaitlistEntry.objects.order_by("joined_at", "pk").values_list("contractor__slug", "status"))


@pytest.fixture
def rivals(roofing):
    """Acme owns 80205 roofing; Bolt, then Crest, wait for it."""
    acme, bolt, crest = (
        ContractorFactory(name=name, slug=name.lower(), trades=[roofing]) for name in ("Acme", "Bolt", "Crest")
    )
    territory = territory_claim(contractor=acme, trade=roofing, zip_code=ZIP)
    for contractor in (bolt, crest):
        waitlist_join(contractor=contractor, trade=roofing, zip_code=ZIP)
    return {"acme": acme, "bolt": bolt, "crest": crest, "territory": territory}


def offered_to_bolt(rivals) -> WaitlistEntry:
    """Acme lets 80205 go; the offer goes to Bolt (auto-claim off)."""
    released = flows.territories_release(territories=[rivals["territory"]])
    (promotion,) = released.result.promotions
    assert (promotion.entry.contractor, promotion.territory, released.routing.assigned) == (rivals["bolt"], None, 0)
    return promotion.entry


def expire(entry: WaitlistEntry) -> None:
    past = timezone.now() - dt.timedelta(minutes=1)
    WaitlistEntry.objects.filter(pk=entry.pk).update(offered_at=past - dt.timedelta(days=2), offer_expires_at=past)


# --- Claim, transfer, release ---------------------------------------------------------------------------------


def test_a_claim_routes_the_zips_waiting_leads_to_the_new_owner(roofing):
    lead = waiting_lead(roofing)
    acme = ContractorFactory(trades=[roofing])

    claimed = flows.territories_claim(contractor=acme, trade=roofing, zip_codes=[ZIP, "80206"], note="Order 9")

    assert [(t.zip_code_id, t.contractor_id, t.start_note) for t in claimed.result] == [
        (ZIP, acme.pk, "Order 9"), ("80206", acme.pk, "Order 9"),
    ]  # fmt: skip
    assert (claimed.routing.assigned, claimed.routing.by_contractor, claimed.routing.waiting) == (1, {acme.pk: 1}, 0)
    assert where(lead) == ("assigned", acme.pk)


def test_a_transfer_gives_the_new_owner_the_leads_its_old_owner_could_not_take(roofing):
    acme, bolt = owner(roofing, ZIP), ContractorFactory(trades=[roofing])
    contractor_status_change(contractor=acme, status=Contractor.Status.PAUSED)
    lead = waiting_lead(roofing)

    moved = flows.territories_transfer(territories=Territory.objects.filter(contractor=acme), to_contractor=bolt)

    assert [(t.zip_code_id, t.contractor_id, t.start_reason) for t in moved.result] == [(ZIP, bolt.pk, "transfer")]
    assert (moved.routing.assigned, moved.routing.by_contractor) == (1, {bolt.pk: 1})
    assert where(lead) == ("assigned", bolt.pk)


def test_a_release_that_only_offers_the_zip_routes_nothing_until_the_offer_is_accepted(rivals, roofing):
    entry = offered_to_bolt(rivals)
    lead = waiting_lead(roofing)

    accepted = flows.waitlist_offer_accept(entry=entry)

    assert (accepted.result.contractor, accepted.result.start_reason, holder(roofing)) == (
        rivals["bolt"], "waitlist", rivals["bolt"].pk,
    )  # fmt: skip
    assert (accepted.routing.assigned, accepted.routing.by_contractor) == (1, {rivals["bolt"].pk: 1})
    assert where(lead) == ("assigned", rivals["bolt"].pk)


def test_a_release_with_auto_claim_routes_the_zip_to_the_first_in_line(rivals, roofing, settings):
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True
    contractor_status_change(contractor=rivals["acme"], status=Contractor.Status.PAUSED)
    lead = waiting_lead(roofing)  # acme's ZIP, acme paused: the lead waits

    released = flows.territories_release(territories=[rivals["territory"]], note="Moved away")

    (promotion,) = released.result.promotions
    assert (promotion.territory.contractor, holder(roofing)) == (rivals["bolt"], rivals["bolt"].pk)
    assert (released.routing.assigned, released.routing.by_contractor) == (1, {rivals["bolt"].pk: 1})
    assert where(lead) == ("assigned", rivals["bolt"].pk)


# --- Offer expiry ----------------------------------------------------------------------------------------------


def test_an_expired_offer_passes_the_zip_on_and_its_lead_goes_to_the_next_in_line_who_accepts(rivals, roofing):
    bolt_entry = offered_to_bolt(rivals)
    lead = waiting_lead(roofing)
    expire(bolt_entry)

    expired = flows.waitlist_offers_expire()

    (promotion,) = expired.result.promotions
    assert (expired.result.expired, promotion.entry.contractor, promotion.territory) == (1, rivals["crest"], None)
    assert (expired.routing.assigned, holder(roofing), where(lead)) == (0, None, ("generated", None))
    assert line() == [("bolt", "expired"), ("crest", "offered")]

    accepted = flows.waitlist_offer_accept(entry=promotion.entry)

    assert (accepted.routing.assigned, accepted.routing.by_contractor) == (1, {rivals["crest"].pk: 1})
    assert (holder(roofing), where(lead)) == (rivals["crest"].pk, ("assigned", rivals["crest"].pk))


def test_an_expired_offer_with_auto_claim_gives_the_zip_and_its_lead_to_the_next_in_line(rivals, roofing, settings):
    bolt_entry = offered_to_bolt(rivals)
    lead = waiting_lead(roofing)
    expire(bolt_entry)
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True

    expired = flows.waitlist_offers_expire()

    (promotion,) = expired.result.promotions
    assert (expired.result.expired, promotion.territory.contractor) == (1, rivals["crest"])
    assert (expired.routing.assigned, expired.routing.by_contractor) == (1, {rivals["crest"].pk: 1})
    assert (holder(roofing), where(lead)) == (rivals["crest"].pk, ("assigned", rivals["crest"].pk))
    assert line() == [("bolt", "expired"), ("crest", "claimed")]
    assert flows.waitlist_offers_expire().result.expired == 0  # done once


def test_the_offer_expiry_job_records_the_zips_given_and_the_leads_routed(rivals, roofing, settings):
    bolt_entry = offered_to_bolt(rivals)
    lead = waiting_lead(roofing)
    expire(bolt_entry)
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True

    run = job_run_execute(run_id=JobRun.objects.create(job="offer_expiry", queued_at=timezone.now()).pk)

    assert (run.status, run.counts) == ("succeeded", {"offers_expired": 1, "territories_given": 1, "leads_routed": 1})
    assert where(lead) == ("assigned", rivals["crest"].pk)


# --- Leaving a waitlist ----------------------------------------------------------------------------------------


def test_leaving_with_an_offer_in_hand_offers_the_zip_on_and_routes_nothing(rivals, roofing):
    bolt_entry = offered_to_bolt(rivals)
    lead = waiting_lead(roofing)

    left = flows.waitlist_leave(entry=bolt_entry)

    (promotion,) = left.result
    assert (promotion.entry.contractor, promotion.territory, left.routing.assigned) == (rivals["crest"], None, 0)
    assert (holder(roofing), where(lead)) == (None, ("generated", None))
    assert line() == [("bolt", "declined"), ("crest", "offered")]


def test_leaving_with_an_offer_in_hand_and_auto_claim_routes_the_zip_to_the_next_in_line(rivals, roofing, settings):
    bolt_entry = offered_to_bolt(rivals)
    lead = waiting_lead(roofing)
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True

    left = flows.waitlist_leave(entry=bolt_entry)

    (promotion,) = left.result
    assert promotion.territory.contractor == rivals["crest"]
    assert (left.routing.assigned, left.routing.by_contractor) == (1, {rivals["crest"].pk: 1})
    assert (holder(roofing), where(lead)) == (rivals["crest"].pk, ("assigned", rivals["crest"].pk))


def test_leaving_while_waiting_hands_nothing_over(rivals, roofing, settings):
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True
    contractor_status_change(contractor=rivals["acme"], status=Contractor.Status.PAUSED)
    lead = waiting_lead(roofing)

    left = flows.waitlist_leave(entry=WaitlistEntry.objects.get(contractor=rivals["crest"]))

    assert (left.result, left.routing.assigned, left.routing.waiting) == ([], 0, 0)
    assert (holder(roofing), where(lead)) == (rivals["acme"].pk, ("generated", None))
    assert line() == [("bolt", "waiting"), ("crest", "withdrawn")]


# --- The nightly run -------------------------------------------------------------------------------------------


def test_the_trades_with_an_active_scoring_model_are_the_ones_scored(roofing, trades):
    assert list(trades_with_active_model()) == [roofing]
    newest = ScoringModel.objects.filter(trade=trades["solar"]).order_by("-version")[:1]
    ScoringModel.objects.filter(pk__in=newest).update(status=ScoringModel.Status.ACTIVE)

    assert list(trades_with_active_model()) == sorted([roofing, trades["solar"]], key=lambda trade: trade.slug)


def test_the_daily_run_scores_makes_routes_delivers_and_expires_in_order(rivals, roofing, settings):
    acme_hooks = owner(roofing, "80202", webhook_url="https://crm.example.com/hook")
    here, there = home(zip_code="80202"), home(zip_code=ZIP)
    expire(offered_to_bolt(rivals))  # 80205: Bolt's offer ran out; Crest is next
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True

    summary = flows.daily_run()  # every trade with an active model: roofing

    scoring = ScoringRun.objects.get(trade=roofing)
    delivery = JobRun.objects.get(job="webhook_delivery")
    assert (summary.ok, scoring.status, delivery.status) == (True, "succeeded", "queued")
    assert summary.lines() == [
        scoring.summary(),
        "roofing: 2 new leads",
        "routing: 1 lead assigned to 1 contractor, 1 in the pool",  # 80205 is nobody's yet
        f"webhooks: delivery run {delivery.pk} posts the routed leads",
        "expiry: 0 unassigned and 0 unaccepted leads expired",
        (
            "waitlist offers: 1 expired, 0 offered to the next in line, 1 given to the next in line; "
            "their waiting leads: 1 lead assigned to 1 contractor, 0 in the pool"
        ),
    ]
    assert sorted(Lead.objects.values_list("property_id", "state", "contractor_id")) == sorted(
        [(here.pk, "assigned", acme_hooks.pk), (there.pk, "assigned", rivals["crest"].pk)]
    )


def test_the_daily_run_asks_for_no_delivery_when_no_routed_lead_goes_to_a_webhook(roofing):
    acme = owner(roofing, "80202")
    home(zip_code="80202")

    summary = flows.daily_run(trades=[roofing])

    assert (summary.leads.routing.by_contractor, str(summary.leads.webhooks)) == (
        {acme.pk: 1}, "no routed lead goes to a webhook",
    )  # fmt: skip
    assert not JobRun.objects.filter(job="webhook_delivery").exists()
