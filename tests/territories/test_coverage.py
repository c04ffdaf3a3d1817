"""Coverage: owned ZIPs with their owners, unowned ZIPs ranked by demand (territories.selectors)."""

import itertools

import pytest
from django.utils import timezone

from scoring.models import Property, Score, ScoringModel
from territories.selectors import CoverageRow, territory_coverage
from territories.services.claims import territory_claim
from territories.services.ownership import territory_release
from tests.contractors.factories import ContractorFactory

PARCELS = itertools.count(1)


def scored_homes(trade, zip_code, *scores):
    """One property in `zip_code` per score, each with that current score for `trade`."""
    model, _ = ScoringModel.objects.get_or_create(trade=trade, version=99)
    for score in scores:
        number = next(PARCELS)
        home = Property.objects.create(
            parcel_id=f"C{number:05d}", address=f"{number} Main St", city="X", state="CO", zip_code_id=zip_code
        )
        Score.objects.create(
            property=home,
            trade=trade,
            model=model,
            score=score,
            urgency=0,
            reasons=[],
            scored_at=timezone.now(),
            digest=number,
        )


@pytest.fixture
def market(zip_codes, trades):
    roofing, solar = trades["roofing"], trades["solar"]
    acme = ContractorFactory(name="Acme Roofing", slug="acme", trades=[roofing])
    peak = ContractorFactory(name="Peak Roofing", slug="peak", trades=[roofing])
    scored_homes(roofing, "80301", 70, 88.5, 69.9)  # owned by Acme: demand 2
    territory_claim(contractor=acme, trade=roofing, zip_code="80301")
    territory_claim(contractor=peak, trade=roofing, zip_code="80304")  # owned, no scores: demand 0
    scored_homes(roofing, "80302", 71, 95, 99)  # unowned: 3
    scored_homes(roofing, "80303", 80, 10)  # released by Peak, so unowned: 1
    territory_release(territory=territory_claim(contractor=peak, trade=roofing, zip_code="80303"))
    scored_homes(roofing, "80501", 75, 76)  # unowned: 2
    scored_homes(roofing, "80305", 69, 50)  # unowned, no demand: not listed
    scored_homes(solar, "80305", 99, 99, 99)  # another trade's demand
    return {"roofing": roofing, "acme": acme, "peak": peak}


def rows(coverage_rows):
    return [(row.zip_code, row.demand, row.contractor_name) for row in coverage_rows]


def test_coverage_lists_owned_zips_by_code_and_unowned_by_demand_in_one_query(market, django_assert_num_queries):
    with django_assert_num_queries(1):
        coverage = territory_coverage(trade=market["roofing"], min_score=70)

    acme, peak = market["acme"], market["peak"]
    first = coverage.owned[0]
    assert first == CoverageRow("80301", "Boulder", "CO", 2, acme.pk, "Acme Roofing", "acme", first.owned_since)
    assert first.owned_since is not None
    assert rows(coverage.owned) == [("80301", 2, "Acme Roofing"), ("80304", 0, "Peak Roofing")]
    assert coverage.owned[1].contractor_id == peak.pk
    assert rows(coverage.unowned) == [("80302", 3, ""), ("80501", 2, ""), ("80303", 1, "")]
    assert [(row.city, row.contractor_id, row.owned_since) for row in coverage.unowned] == [
        ("Boulder", None, None),
        ("Longmont", None, None),
        ("Boulder", None, None),
    ]
    assert coverage.unowned_with_demand == 3


def test_coverage_threshold_limit_and_state(market):
    roofing = market["roofing"]
    strict = territory_coverage(trade=roofing, min_score=90)
    assert rows(strict.owned) == [("80301", 0, "Acme Roofing"), ("80304", 0, "Peak Roofing")]
    assert rows(strict.unowned) == [("80302", 2, "")]

    top = territory_coverage(trade=roofing, min_score=70, limit=1)
    assert (rows(top.unowned), top.unowned_with_demand) == ([("80302", 3, "")], 3)

    assert rows(territory_coverage(trade=roofing, state="TX").unowned) == []
    assert rows(territory_coverage(trade=roofing, state="TX").owned) == []


def test_default_threshold_is_seventy(market):
    assert rows(territory_coverage(trade=market["roofing"]).unowned) == [
        ("80302", 3, ""),
        ("80501", 2, ""),
        ("80303", 1, ""),
    ]


def test_coverage_of_a_trade_nobody_sells_shows_only_its_demand(market, trades):
    coverage = territory_coverage(trade=trades["solar"], min_score=70)
    assert (rows(coverage.owned), rows(coverage.unowned)) == ([], [("80305", 3, "")])
