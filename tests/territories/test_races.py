"""Races that really race: 20 threads, each on its own database connection, released together."""

import pytest

from contractors.errors import ContractorError
from contractors.services.contractors import contractor_trades_set
from territories.errors import Conflict, TerritoryError, TerritoryTaken
from territories.models import Territory
from territories.services import claims
from territories.services.claims import territory_claim, territory_claim_many
from tests.contractors.factories import ContractorFactory, seeded_trades
from tests.racing import race

THREADS = 20
POOL = ["80020", "80026", "80027", "80301", "80303", "80304", "80305", "80501", "80503"]


@pytest.fixture
def racers(zip_codes):
    roofing = seeded_trades()["roofing"]
    contractors = [
        ContractorFactory(name=f"Racer {n:02d}", slug=f"racer-{n:02d}", trades=[roofing]) for n in range(THREADS)
    ]
    return roofing, contractors


def history():
    return list(
        Territory.objects.order_by("zip_code").values_list("zip_code_id", "contractor_id", "start_reason", "ended_at")
    )


def assert_one_winner(results, errors, expected_zips):
    winners = [result for result in results if result is not None]
    assert len(winners) == 1, errors
    assert len(errors) == THREADS - 1
    assert all(isinstance(error, TerritoryTaken) for error in errors), errors
    won = winners[0] if isinstance(winners[0], list) else [winners[0]]
    owner = won[0].contractor
    assert sorted(territory.zip_code_id for territory in won) == expected_zips
    assert history() == [(code, owner.pk, "claim", None) for code in expected_zips]
    return owner


@pytest.mark.django_db(transaction=True)
def test_twenty_racing_claims_of_one_zip_give_it_to_exactly_one(racers):
    roofing, contractors = racers

    results, errors = race(lambda c: territory_claim(contractor=c, trade=roofing, zip_code="80302"), contractors)

    owner = assert_one_winner(results, errors, ["80302"])
    assert all(error.conflicts == [Conflict("80302", owner.pk, owner.name)] for error in errors)


@pytest.mark.django_db(transaction=True)
def test_the_database_alone_keeps_one_owner_when_every_check_passes(racers, monkeypatch):
    """The service's own conflict check is made to see nothing, as if every thread read before any
    wrote: the partial unique index still admits one owner, and the losers still get the full report."""
    roofing, contractors = racers
    real_conflicts = claims.territory_conflicts

    def blind_pre_check(*, contractor_id, **kwargs):
        # The pre-check asks on behalf of the claimant; the report after a refused insert asks for anyone.
        return [] if contractor_id is not None else real_conflicts(contractor_id=contractor_id, **kwargs)

    monkeypatch.setattr(claims, "territory_conflicts", blind_pre_check)

    results, errors = race(lambda c: territory_claim(contractor=c, trade=roofing, zip_code="80302"), contractors)

    owner = assert_one_winner(results, errors, ["80302"])
    assert all(error.conflicts == [Conflict("80302", owner.pk, owner.name)] for error in errors)


def refusal_returned(claim):
    """`claim`, returning a TerritoryTaken instead of raising it, so each result says whose it is."""

    def run(contractor):
        try:
            return claim(contractor)
        except TerritoryTaken as error:
            return error

    return run


@pytest.mark.django_db(transaction=True)
def test_twenty_racing_bulk_claims_of_overlapping_sets_give_exactly_one_all_of_its_set(racers):
    roofing, contractors = racers
    # Every set holds 80302 and two ZIPs of the pool, half of them in reverse order: the sets overlap in
    # many ways, and the service must neither deadlock nor give anyone part of a set.
    sets = [["80302", POOL[n % len(POOL)], POOL[(n + 3) % len(POOL)]][:: 1 if n % 2 else -1] for n in range(THREADS)]
    asked = {contractor.pk: zips for contractor, zips in zip(contractors, sets, strict=True)}

    results, errors = race(
        refusal_returned(lambda c: territory_claim_many(contractor=c, trade=roofing, zip_codes=asked[c.pk])),
        contractors,
    )

    assert errors == []
    won = [result for result in results if isinstance(result, list)]
    refused = [(zips, result) for zips, result in zip(sets, results, strict=True) if isinstance(result, TerritoryTaken)]
    assert (len(won), len(refused)) == (1, THREADS - 1)
    owner = won[0][0].contractor
    assert history() == [(code, owner.pk, "claim", None) for code in sorted(asked[owner.pk])]
    for zips, error in refused:
        assert error.conflicts == [
            Conflict(code, owner.pk, owner.name) for code in sorted(set(zips) & set(asked[owner.pk]))
        ]


@pytest.mark.django_db(transaction=True)
def test_racing_bulk_claims_without_a_common_zip_are_each_all_or_nothing(racers):
    roofing, contractors = racers
    # Sliding windows of three over 22 ZIPs, half of them asked in reverse: neighbours share two ZIPs.
    codes = ["80301", "80302", "80303", "80304", "80305", "80020", "80026", "80027", "80501", "80503", "80504"]
    codes += ["80516", "80520", "80530", "80601", "80602", "80603", "80640", "80014", "80015", "80016", "80017"]
    asked = {c.pk: codes[n : n + 3][:: 1 if n % 2 else -1] for n, c in enumerate(contractors)}

    results, errors = race(
        refusal_returned(lambda c: territory_claim_many(contractor=c, trade=roofing, zip_codes=asked[c.pk])),
        contractors,
    )

    assert errors == []  # in particular no deadlock: rows are inserted in ZIP order whatever the request's order
    owned = dict(Territory.objects.active().values_list("zip_code_id", "contractor_id"))
    for contractor, result in zip(contractors, results, strict=True):
        mine = sorted(code for code, owner_pk in owned.items() if owner_pk == contractor.pk)
        if isinstance(result, TerritoryTaken):
            assert mine == []
            assert result.conflicts
            assert all(owned[c.zip_code] == c.contractor_id for c in result.conflicts)
            assert set(result.zip_codes) <= set(asked[contractor.pk])
        else:
            assert mine == sorted(asked[contractor.pk]) == [territory.zip_code_id for territory in result]
    winners = sum(1 for result in results if isinstance(result, list))
    # Every refused window overlaps a won one, and a window overlaps at most four others: at least 4 won.
    assert winners >= 4
    assert Territory.objects.count() == len(owned) == 3 * winners


@pytest.mark.django_db(transaction=True)
def test_a_claim_racing_a_trade_removal_never_leaves_a_territory_of_an_unserved_trade(zip_codes):
    trades = seeded_trades()
    roofing = trades["roofing"]
    contractor = ContractorFactory(name="Acme Roofing", slug="acme", trades=[roofing])
    jobs = ["drop", "80301", "80302", "80303", "80304", "80305", "80501", "80503", "80020", "80026", "80027"]

    def act(job):
        if job == "drop":
            return contractor_trades_set(contractor=contractor, trades=[trades["solar"]])
        return territory_claim(contractor=contractor, trade=roofing, zip_code=job)

    results, errors = race(act, jobs)

    assert all(isinstance(error, TerritoryError | ContractorError) for error in errors), errors
    serves_roofing = contractor.contractor_trades.filter(trade=roofing).exists()
    owned = Territory.objects.active().filter(contractor=contractor, trade=roofing).count()
    claimed = sum(1 for job, result in zip(jobs, results, strict=True) if job != "drop" and result is not None)
    assert owned == claimed
    assert serves_roofing or owned == 0
    assert serves_roofing == (results[0] is None)  # the removal failed exactly when a claim got in first
