"""Claiming territories: exclusivity, all-or-nothing reports, trades served, contractor status."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from contractors.errors import TradeStillOwned
from contractors.models import Contractor, ContractorTrade
from contractors.services.contractors import contractor_status_change, contractor_trades_set
from territories.errors import Conflict, ContractorNotEligible, TerritoryTaken, TradeNotServed, UnknownZipCodes
from territories.models import Territory
from territories.services.claims import territory_claim, territory_claim_many
from territories.services.ownership import territory_release
from tests.contractors.factories import ContractorFactory


@pytest.fixture
def peak(trades):
    return ContractorFactory(name="Peak Roofing", slug="peak-roofing", trades=[trades["roofing"], trades["solar"]])


def ownership(trade=None):
    """(ZIP, trade, owner) of every active territory."""
    rows = Territory.objects.active().order_by("zip_code", "trade__slug")
    if trade is not None:
        rows = rows.filter(trade=trade)
    return list(rows.values_list("zip_code_id", "trade__slug", "contractor__slug"))


def test_claim_gives_the_contractor_the_territory(zip_codes, acme, trades):
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302", note="Order 17")

    territory.refresh_from_db()
    assert ownership() == [("80302", "roofing", "acme-roofing")]
    assert (territory.start_reason, territory.start_note, territory.ended_at, territory.end_reason) == (
        "claim",
        "Order 17",
        None,
        "",
    )
    assert territory.active_trade_id == trades["roofing"].pk


def test_second_claim_on_same_zip_is_rejected_naming_the_owner(zip_codes, acme, peak, trades):
    territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")

    with pytest.raises(TerritoryTaken) as caught:
        territory_claim(contractor=peak, trade=trades["roofing"], zip_code="80302")

    assert caught.value.conflicts == [Conflict("80302", acme.pk, "Acme Roofing")]
    assert str(caught.value) == "Roofing territory already taken: 80302 (owned by Acme Roofing). Nothing was claimed."
    assert (caught.value.code, caught.value.http_status) == ("territory_taken", 409)
    assert ownership() == [("80302", "roofing", "acme-roofing")]
    assert Territory.objects.count() == 1


def test_the_same_zip_can_be_owned_for_another_trade(zip_codes, acme, peak, trades):
    territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    territory_claim(contractor=peak, trade=trades["solar"], zip_code="80302")
    assert ownership() == [("80302", "roofing", "acme-roofing"), ("80302", "solar", "peak-roofing")]


def test_claim_many_is_all_or_nothing_and_names_every_conflict(zip_codes, acme, peak, trades):
    roofing = trades["roofing"]
    other = ContractorFactory(name="Zenith Roofing", slug="zenith", trades=[roofing])
    territory_claim_many(contractor=acme, trade=roofing, zip_codes=["80304", "80301"])
    territory_claim(contractor=other, trade=roofing, zip_code="80305")
    before = list(Territory.objects.order_by("pk").values())

    with pytest.raises(TerritoryTaken) as caught:
        territory_claim_many(contractor=peak, trade=roofing, zip_codes=["80305", "80302", "80301", "80303", "80304"])

    assert caught.value.conflicts == [
        Conflict("80301", acme.pk, "Acme Roofing"),
        Conflict("80304", acme.pk, "Acme Roofing"),
        Conflict("80305", other.pk, "Zenith Roofing"),
    ]
    assert caught.value.zip_codes == ["80301", "80304", "80305"]
    assert str(caught.value) == (
        "Roofing territory already taken: 80301 (owned by Acme Roofing), 80304 (owned by Acme Roofing), "
        "80305 (owned by Zenith Roofing). Nothing was claimed."
    )
    assert list(Territory.objects.order_by("pk").values()) == before


def test_claim_many_ignores_repeats_and_blanks(zip_codes, acme, trades):
    created = territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=[" 80303", "80301", "80303", ""])
    assert [territory.zip_code_id for territory in created] == ["80301", "80303"]
    assert ownership() == [("80301", "roofing", "acme-roofing"), ("80303", "roofing", "acme-roofing")]


def test_claiming_a_zip_it_already_owns_is_a_conflict(zip_codes, acme, trades):
    territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    with pytest.raises(TerritoryTaken, match=r"80302 \(owned by Acme Roofing\)"):
        territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80301", "80302"])
    assert ownership() == [("80302", "roofing", "acme-roofing")]


def test_unknown_and_inactive_zip_codes_are_refused(zip_codes, acme, trades):
    with pytest.raises(UnknownZipCodes) as caught:
        territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80302", "00000", "8030", "01133"])
    assert caught.value.zip_codes == ["00000", "01133", "8030"]
    assert not Territory.objects.exists()


def test_a_contractor_cannot_claim_a_trade_it_does_not_serve(zip_codes, acme, trades):
    with pytest.raises(TradeNotServed, match="Acme Roofing does not serve Solar"):
        territory_claim(contractor=acme, trade=trades["solar"], zip_code="80302")
    assert not Territory.objects.exists()


def test_the_database_refuses_a_territory_of_a_trade_the_owner_does_not_serve(zip_codes, acme, trades):
    with pytest.raises(IntegrityError, match="territories_territory_owner_serves_trade"), transaction.atomic():
        Territory.objects.create(
            zip_code_id="80302", trade=trades["solar"], contractor=acme, started_at=timezone.now(), start_reason="claim"
        )
    assert not Territory.objects.exists()


def test_the_database_refuses_a_second_active_owner(zip_codes, acme, peak, trades):
    territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    with pytest.raises(IntegrityError, match="territories_territory_one_active_owner"), transaction.atomic():
        Territory.objects.create(
            zip_code_id="80302",
            trade=trades["roofing"],
            contractor=peak,
            started_at=timezone.now(),
            start_reason="claim",
        )
    assert ownership() == [("80302", "roofing", "acme-roofing")]


def test_a_contractor_cannot_stop_serving_a_trade_it_owns_territories_of(zip_codes, acme, trades):
    territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80301", "80302"])

    with pytest.raises(TradeStillOwned, match="Acme Roofing still owns Roofing territories"):
        contractor_trades_set(contractor=acme, trades=[trades["solar"]])
    assert list(acme.trades.values_list("slug", flat=True)) == ["roofing"]
    # Not the service alone: the database refuses any writer.
    with pytest.raises(IntegrityError, match="territories_territory_owner_serves_trade"), transaction.atomic():
        ContractorTrade.objects.filter(contractor=acme).delete()
    assert list(acme.trades.values_list("slug", flat=True)) == ["roofing"]


def test_history_does_not_keep_a_contractor_serving_a_trade(zip_codes, acme, trades):
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    territory_release(territory=territory)

    contractor_trades_set(contractor=acme, trades=[trades["solar"]])

    assert list(acme.trades.values_list("slug", flat=True)) == ["solar"]
    assert list(Territory.objects.values_list("zip_code_id", "contractor__slug", "end_reason")) == [
        ("80302", "acme-roofing", "release")
    ]


def test_a_suspended_contractor_cannot_claim(zip_codes, acme, trades):
    contractor_status_change(contractor=acme, status=Contractor.Status.SUSPENDED, reason="Unpaid invoice.")
    with pytest.raises(ContractorNotEligible, match=r"Acme Roofing is suspended: Unpaid invoice.; it cannot take"):
        territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    assert not Territory.objects.exists()


def test_a_paused_contractor_can_still_claim(zip_codes, acme, trades):
    contractor_status_change(contractor=acme, status=Contractor.Status.PAUSED)
    territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    assert ownership() == [("80302", "roofing", "acme-roofing")]
