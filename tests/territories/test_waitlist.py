"""The waitlist: joining, promotion on release (offer or auto-claim), acceptance, expiry."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from contractors.models import Contractor
from contractors.services.contractors import contractor_status_change
from territories.errors import Conflict, TerritoryTaken, WaitlistError
from territories.models import Territory, WaitlistEntry
from territories.selectors import waitlist_line
from territories.services.claims import territory_claim
from territories.services.ownership import territory_release, territory_transfer
from territories.services.waitlist import (
    territory_offers_expire,
    waitlist_join,
    waitlist_leave,
    waitlist_offer_accept,
)
from tests.contractors.factories import ContractorFactory

Status = WaitlistEntry.Status


@pytest.fixture
def roofing(trades):
    return trades["roofing"]


@pytest.fixture
def rivals(zip_codes, trades, roofing):
    """Acme owns 80302 roofing; Bolt, Crest and Dune (in that order) wait for it."""
    acme = ContractorFactory(name="Acme Roofing", slug="acme", trades=[roofing])
    territory = territory_claim(contractor=acme, trade=roofing, zip_code="80302")
    line = [ContractorFactory(name=name, slug=name.lower(), trades=[roofing]) for name in ("Bolt", "Crest", "Dune")]
    for contractor in line:
        waitlist_join(contractor=contractor, trade=roofing, zip_code="80302")
    return {"acme": acme, "territory": territory, "line": line}


def statuses():
    return list(WaitlistEntry.objects.order_by("joined_at", "pk").values_list("contractor__slug", "status"))


def owner(roofing):
    return (
        Territory.objects.active()
        .filter(trade=roofing, zip_code_id="80302")
        .values_list("contractor__slug", flat=True)
        .first()
    )


def test_joining_queues_in_order(rivals, roofing):
    assert [entry.contractor.slug for entry in waitlist_line(trade=roofing, zip_code="80302")] == [
        "bolt",
        "crest",
        "dune",
    ]
    assert statuses() == [("bolt", "waiting"), ("crest", "waiting"), ("dune", "waiting")]


def test_joining_twice_a_free_zip_or_an_own_zip_is_refused(rivals, roofing):
    bolt = rivals["line"][0]
    with pytest.raises(WaitlistError, match="Bolt is already on the waitlist for 80302 Roofing"):
        waitlist_join(contractor=bolt, trade=roofing, zip_code="80302")
    with pytest.raises(WaitlistError, match="80303 Roofing is free: claim it instead"):
        waitlist_join(contractor=bolt, trade=roofing, zip_code="80303")
    with pytest.raises(WaitlistError, match="Acme Roofing already owns 80302 Roofing"):
        waitlist_join(contractor=rivals["acme"], trade=roofing, zip_code="80302")
    assert WaitlistEntry.objects.count() == 3


def test_release_offers_the_territory_to_the_first_in_line(rivals, roofing, settings):
    settings.TERRITORY_OFFER_HOURS = 24
    released = territory_release(territory=rivals["territory"])

    (promotion,) = released.promotions
    entry = WaitlistEntry.objects.get(contractor__slug="bolt")
    assert (promotion.entry.pk, promotion.territory) == (entry.pk, None)
    assert entry.offer_expires_at - entry.offered_at == dt.timedelta(hours=24)
    assert statuses() == [("bolt", "offered"), ("crest", "waiting"), ("dune", "waiting")]
    assert owner(roofing) is None


def test_an_offer_reserves_the_territory_for_its_contractor(rivals, roofing):
    territory_release(territory=rivals["territory"])
    entry = WaitlistEntry.objects.get(contractor__slug="bolt")
    outsider = ContractorFactory(name="Outsider", slug="outsider", trades=[roofing])

    with pytest.raises(TerritoryTaken) as caught:
        territory_claim(contractor=outsider, trade=roofing, zip_code="80302")
    assert caught.value.conflicts == [
        Conflict("80302", entry.contractor_id, "Bolt", offered_until=entry.offer_expires_at)
    ]
    assert owner(roofing) is None


def test_accepting_an_offer_claims_the_territory(rivals, roofing):
    territory_release(territory=rivals["territory"])
    entry = WaitlistEntry.objects.get(contractor__slug="bolt")

    territory = waitlist_offer_accept(entry=entry)

    entry.refresh_from_db()
    assert (territory.contractor.slug, territory.start_reason) == ("bolt", "waitlist")
    assert (entry.status, entry.territory) == (Status.CLAIMED, territory)
    assert owner(roofing) == "bolt"
    assert statuses() == [("bolt", "claimed"), ("crest", "waiting"), ("dune", "waiting")]


def test_the_offered_contractor_may_also_claim_it_directly(rivals, roofing):
    territory_release(territory=rivals["territory"])
    territory_claim(contractor=rivals["line"][0], trade=roofing, zip_code="80302")
    assert statuses() == [("bolt", "claimed"), ("crest", "waiting"), ("dune", "waiting")]


def test_an_expired_offer_passes_to_the_next_in_line(rivals, roofing):
    territory_release(territory=rivals["territory"])
    bolt_entry = WaitlistEntry.objects.get(contractor__slug="bolt")
    later = bolt_entry.offer_expires_at + dt.timedelta(seconds=1)

    assert territory_offers_expire(now=bolt_entry.offer_expires_at - dt.timedelta(seconds=1)).expired == 0
    expired = territory_offers_expire(now=later)
    assert territory_offers_expire(now=later).expired == 0

    (promotion,) = expired.promotions
    assert (expired.expired, promotion.entry.contractor.slug, promotion.territory) == (1, "crest", None)
    assert str(expired) == "1 expired, 1 offered to the next in line, 0 given to the next in line"

    assert statuses() == [("bolt", "expired"), ("crest", "offered"), ("dune", "waiting")]
    with pytest.raises(WaitlistError, match="no open offer on this entry \\(it is offer expired\\)"):
        waitlist_offer_accept(entry=bolt_entry)
    assert owner(roofing) is None


def test_an_offer_cannot_be_accepted_after_its_time(rivals, roofing, settings):
    settings.TERRITORY_OFFER_HOURS = 1
    territory_release(territory=rivals["territory"])
    entry = WaitlistEntry.objects.get(contractor__slug="bolt")
    WaitlistEntry.objects.filter(pk=entry.pk).update(
        offered_at=timezone.now() - dt.timedelta(hours=2), offer_expires_at=timezone.now() - dt.timedelta(hours=1)
    )

    with pytest.raises(WaitlistError, match="The offer of 80302 Roofing expired at"):
        waitlist_offer_accept(entry=entry)
    assert owner(roofing) is None
    # Once expired, anyone may claim it; the stale offer is closed by the claim.
    outsider = ContractorFactory(name="Outsider", slug="outsider", trades=[roofing])
    territory_claim(contractor=outsider, trade=roofing, zip_code="80302")
    assert owner(roofing) == "outsider"
    assert statuses() == [("bolt", "expired"), ("crest", "waiting"), ("dune", "waiting")]


def test_paused_and_non_serving_contractors_are_passed_over_but_keep_their_place(rivals, roofing, trades):
    bolt, crest, _dune = rivals["line"]
    contractor_status_change(contractor=bolt, status=Contractor.Status.PAUSED)
    crest.contractor_trades.all().delete()

    territory_release(territory=rivals["territory"])

    assert statuses() == [("bolt", "waiting"), ("crest", "waiting"), ("dune", "offered")]


def test_nobody_eligible_leaves_the_territory_free(rivals, roofing):
    for contractor in rivals["line"]:
        contractor_status_change(contractor=contractor, status=Contractor.Status.SUSPENDED)
    released = territory_release(territory=rivals["territory"])
    assert released.promotions == []
    assert statuses() == [("bolt", "waiting"), ("crest", "waiting"), ("dune", "waiting")]
    assert owner(roofing) is None


def test_with_auto_claim_the_first_eligible_contractor_gets_the_territory(rivals, roofing, settings):
    settings.TERRITORY_WAITLIST_AUTO_CLAIM = True
    contractor_status_change(contractor=rivals["line"][0], status=Contractor.Status.PAUSED)

    released = territory_release(territory=rivals["territory"])

    (promotion,) = released.promotions
    assert (promotion.territory.contractor.slug, promotion.territory.start_reason) == ("crest", "waitlist")
    assert owner(roofing) == "crest"
    assert statuses() == [("bolt", "waiting"), ("crest", "claimed"), ("dune", "waiting")]
    assert str(promotion) == "80302 went to Crest from the waitlist"


def test_declining_an_offer_passes_it_on(rivals, roofing):
    territory_release(territory=rivals["territory"])
    (promotion,) = waitlist_leave(entry=WaitlistEntry.objects.get(contractor__slug="bolt"))
    assert promotion.entry.contractor.slug == "crest"
    assert statuses() == [("bolt", "declined"), ("crest", "offered"), ("dune", "waiting")]


def test_leaving_the_line_while_waiting(rivals, roofing):
    assert waitlist_leave(entry=WaitlistEntry.objects.get(contractor__slug="crest")) == []
    with pytest.raises(WaitlistError, match="already closed"):
        waitlist_leave(entry=WaitlistEntry.objects.get(contractor__slug="crest"))
    assert statuses() == [("bolt", "waiting"), ("crest", "withdrawn"), ("dune", "waiting")]


def test_a_transfer_to_someone_in_line_settles_their_place_and_offers_nothing(rivals, roofing):
    territory_transfer(territory=rivals["territory"], to_contractor=rivals["line"][1])
    assert owner(roofing) == "crest"
    assert statuses() == [("bolt", "waiting"), ("crest", "claimed"), ("dune", "waiting")]


def test_the_expire_command_reports_the_count(rivals, roofing):
    territory_release(territory=rivals["territory"])
    WaitlistEntry.objects.filter(status=Status.OFFERED).update(
        offered_at=timezone.now() - dt.timedelta(hours=3), offer_expires_at=timezone.now() - dt.timedelta(hours=1)
    )
    out = io.StringIO()
    call_command("expire_territory_offers", stdout=out)
    crest = WaitlistEntry.objects.get(contractor__slug="crest")
    assert out.getvalue().splitlines() == [
        "Waitlist offers expired: 1",
        f"Waitlist: 80302 offered to Crest until {crest.offer_expires_at:%Y-%m-%d %H:%M %Z}.",
    ]
    assert statuses() == [("bolt", "expired"), ("crest", "offered"), ("dune", "waiting")]


def test_the_database_allows_one_live_offer_per_territory(rivals, roofing):
    from django.db import IntegrityError, transaction

    territory_release(territory=rivals["territory"])
    crest = WaitlistEntry.objects.get(contractor__slug="crest")
    now = timezone.now()
    with pytest.raises(IntegrityError, match="territories_waitlistentry_one_offer_per_territory"), transaction.atomic():
        WaitlistEntry.objects.filter(pk=crest.pk).update(
            status=Status.OFFERED, offered_at=now, offer_expires_at=now + dt.timedelta(hours=1)
        )
    assert statuses() == [("bolt", "offered"), ("crest", "waiting"), ("dune", "waiting")]
