"""Releasing and transferring territories: history, atomicity, all-or-nothing bulk operations."""

import pytest

from contractors.models import Contractor, ContractorTrade
from contractors.services.contractors import contractor_status_change
from territories.errors import ContractorNotEligible, TerritoryError, TerritoryNotActive, TradeNotServed
from territories.models import Territory
from territories.services.claims import territory_claim, territory_claim_many
from territories.services.ownership import (
    territory_release,
    territory_release_many,
    territory_transfer,
    territory_transfer_many,
)
from tests.contractors.factories import ContractorFactory

HISTORY_FIELDS = ["zip_code_id", "trade__slug", "contractor__slug", "start_reason", "end_reason", "end_note"]


def history():
    return list(Territory.objects.order_by("zip_code", "trade__slug", "started_at", "pk").values_list(*HISTORY_FIELDS))


@pytest.fixture
def peak(trades):
    return ContractorFactory(name="Peak Roofing", slug="peak-roofing", trades=[trades["roofing"], trades["solar"]])


def test_release_ends_the_ownership_and_keeps_it_in_history(zip_codes, acme, trades, django_user_model):
    staff = django_user_model.objects.create_user("sam", is_staff=True)
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")

    released = territory_release(territory=territory, released_by=staff, note="Contract ended")

    territory.refresh_from_db()
    assert released.territories == [territory]
    assert released.promotions == []
    assert (territory.end_reason, territory.ended_by, territory.end_note) == ("release", staff, "Contract ended")
    assert territory.ended_at >= territory.started_at
    assert territory.active_trade_id is None
    assert history() == [("80302", "roofing", "acme-roofing", "claim", "release", "Contract ended")]
    assert not Territory.objects.active().exists()


def test_a_released_territory_can_be_claimed_by_another(zip_codes, acme, peak, trades):
    territory_release(territory=territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302"))
    territory_claim(contractor=peak, trade=trades["roofing"], zip_code="80302")
    assert history() == [
        ("80302", "roofing", "acme-roofing", "claim", "release", ""),
        ("80302", "roofing", "peak-roofing", "claim", "", ""),
    ]


def test_releasing_twice_is_refused_and_changes_nothing(zip_codes, acme, trades):
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    territory_release(territory=territory)
    before = list(Territory.objects.values())

    with pytest.raises(TerritoryNotActive, match=r"No longer owned .*: 80302 Roofing"):
        territory_release(territory=territory)
    assert list(Territory.objects.values()) == before


def test_bulk_release_is_all_or_nothing(zip_codes, acme, trades):
    first, second, third = territory_claim_many(
        contractor=acme, trade=trades["roofing"], zip_codes=["80301", "80302", "80303"]
    )
    territory_release(territory=second)

    with pytest.raises(TerritoryNotActive, match="80302 Roofing"):
        territory_release_many(territories=[first, second, third])
    assert sorted(Territory.objects.active().values_list("zip_code_id", flat=True)) == ["80301", "80303"]

    released = territory_release_many(territories=[third, first])
    assert [territory.zip_code_id for territory in released.territories] == ["80301", "80303"]
    assert not Territory.objects.active().exists()


def test_transfer_moves_the_ownership_at_one_instant(zip_codes, acme, peak, trades):
    old = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")

    new = territory_transfer(territory=old, to_contractor=peak, note="Acme sold its Boulder book")

    old.refresh_from_db()
    assert (new.contractor, new.start_reason, new.start_note) == (peak, "transfer", "Acme sold its Boulder book")
    assert old.ended_at == new.started_at
    assert history() == [
        ("80302", "roofing", "acme-roofing", "claim", "transfer", "Acme sold its Boulder book"),
        ("80302", "roofing", "peak-roofing", "transfer", "", ""),
    ]


def test_transfer_to_a_contractor_not_serving_the_trade_changes_nothing(zip_codes, acme, trades):
    solar_only = ContractorFactory(name="Sunny", slug="sunny", trades=[trades["solar"]])
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    before = list(Territory.objects.values())

    with pytest.raises(TradeNotServed, match="Sunny does not serve Roofing"):
        territory_transfer(territory=territory, to_contractor=solar_only)
    assert list(Territory.objects.values()) == before


def test_transfer_to_a_suspended_contractor_is_refused(zip_codes, acme, peak, trades):
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    contractor_status_change(contractor=peak, status=Contractor.Status.SUSPENDED)
    before = list(Territory.objects.values())

    with pytest.raises(ContractorNotEligible, match="Peak Roofing is suspended"):
        territory_transfer(territory=territory, to_contractor=peak)
    assert list(Territory.objects.values()) == before


def test_transfer_to_the_owner_is_refused(zip_codes, acme, trades):
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    with pytest.raises(TerritoryError, match="Acme Roofing already owns 80302 Roofing"):
        territory_transfer(territory=territory, to_contractor=acme)
    assert history() == [("80302", "roofing", "acme-roofing", "claim", "", "")]


def test_bulk_transfer_across_trades_is_all_or_nothing(zip_codes, acme, peak, trades):
    ContractorTrade.objects.create(contractor=acme, trade=trades["solar"])
    roofs = territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80301", "80302"])
    panels = territory_claim_many(contractor=acme, trade=trades["solar"], zip_codes=["80302"])
    roofing_only = ContractorFactory(name="Cool Air", slug="cool-air", trades=[trades["roofing"]])
    before = list(Territory.objects.values())

    with pytest.raises(TradeNotServed, match="Cool Air does not serve Solar"):
        territory_transfer_many(territories=roofs + panels, to_contractor=roofing_only)
    assert list(Territory.objects.values()) == before

    created = territory_transfer_many(territories=roofs + panels, to_contractor=peak)
    assert sorted((t.zip_code_id, t.trade.slug) for t in created) == [
        ("80301", "roofing"),
        ("80302", "roofing"),
        ("80302", "solar"),
    ]
    assert (
        list(Territory.objects.active().order_by("zip_code", "trade").values_list("contractor__slug", flat=True))
        == ["peak-roofing"] * 3
    )
