"""Lead generation by volume target (the owners' room and the pool's allowance), exploration leads drawn
below the cut, and the challenger version's share of the targets."""

import csv
import datetime as dt
import hashlib
import io

import pytest

from contractors.services.contractors import contractor_status_change
from leads.models import Lead
from leads.services.generation import (
    CHALLENGER,
    CHAMPION,
    POOL,
    _challenger_split,
    exploration_draws,
    leads_generate,
    target_key,
)
from leads.services.routing import leads_route
from scoring.challengers import in_challenger_share
from scoring.models import Property, Score, ScoringModel
from tests.leads.factories import api_client, filters, owner, scored, scored_home

NOW = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.UTC)  # 08:00 in Denver, the contractors' time zone
EARLIER = NOW - dt.timedelta(hours=3)
TOMORROW = NOW + dt.timedelta(days=1)


def homes(trade, zip_code, *scores):
    return [scored_home(trade, score=score, zip_code=zip_code) for score in scores]


def lead_scores(trade, **where):
    return sorted(Lead.objects.filter(trade=trade, **where).values_list("score", flat=True), reverse=True)


def volume(trade, **fields):
    values = {"capacity_factor": 1.5, "pool_leads_per_day": 3, "uncapped_leads_per_zip": 2, "min_score": 40}
    return filters(trade, **values | fields)


@pytest.fixture
def owners(roofing):
    """Acme (daily cap 4, one lead routed to it earlier today) owns 80202; Bolt (no caps) owns 80203 and
    80204; Cole (paused) owns 80205; 80206 is nobody's."""
    acme = owner(roofing, "80202", daily_cap=4)
    homes(roofing, "80202", 99)
    leads_generate(trade=roofing, limit=1, now=EARLIER)
    assert leads_route(now=EARLIER).by_contractor == {acme.pk: 1}
    bolt = owner(roofing, "80203", "80204")
    cole = contractor_status_change(contractor=owner(roofing, "80205", daily_cap=10), status="paused")
    homes(roofing, "80202", 90, 89, 88, 87, 86, 85, 30)
    homes(roofing, "80203", 80, 79, 78, 77, 76)
    homes(roofing, "80204", 70, 69, 68, 67, 66)
    homes(roofing, "80205", 98, 97, 96)
    homes(roofing, "80206", 60, 59, 35, 30)  # only two at the floor of 40 or above
    volume(roofing)
    return acme, bolt, cole


def test_each_owner_gets_its_room_times_the_factor_and_the_pool_its_allowance(roofing, owners):
    summary = leads_generate(trade=roofing, now=NOW)

    # Acme: room 4 - 1 = 3, x 1.5 = 4 (rounded down). Bolt: 2 ZIPs x 2 x 1.5 = 6. Cole is paused: nothing
    # in its ZIP. The pool: 3, but only two of 80206's homes reach the floor.
    assert (summary.owned_target, summary.pool_target) == (10, 3)
    assert summary.created == 12
    assert str(summary) == "roofing: 12 new leads; targets 10 in owned ZIPs, 3 in the pool"
    made_now = {"generated_on": NOW.date(), "created_at": NOW}
    assert lead_scores(roofing, zip_code="80202", **made_now) == [90, 89, 88, 87]
    assert lead_scores(roofing, zip_code__in=["80203", "80204"], **made_now) == [80, 79, 78, 77, 76, 70]
    assert lead_scores(roofing, zip_code="80205") == []
    assert lead_scores(roofing, zip_code="80206") == [60, 59]
    assert Lead.objects.filter(trade=roofing, exploration=False, sampling_weight=1).count() == 13


def test_a_second_run_the_same_day_makes_nothing_more_routed_or_not(roofing, owners):
    acme, bolt, _ = owners
    leads_generate(trade=roofing, now=NOW)

    again = leads_generate(trade=roofing, now=NOW + dt.timedelta(minutes=5))
    assert (again.created, again.owned_target, again.pool_target) == (0, 0, 1)  # the pool's one more has no home

    routed = leads_route(now=NOW + dt.timedelta(minutes=10))
    assert routed.by_contractor == {acme.pk: 3, bolt.pk: 6}
    after_routing = leads_generate(trade=roofing, now=NOW + dt.timedelta(minutes=15))
    assert (after_routing.created, after_routing.owned_target) == (0, 0)
    assert Lead.objects.filter(trade=roofing).count() == 13


def test_the_next_day_an_owner_target_counts_its_leads_still_waiting(roofing, owners):
    leads_generate(trade=roofing, now=NOW)
    leads_route(now=NOW)  # Acme takes 3 of its 4; one (87) waits

    summary = leads_generate(trade=roofing, now=TOMORROW)

    # Acme's day starts with its room of 4 again: 4 x 1.5 = 6, minus the one waiting: 5, of which its ZIP
    # has 2 left above the floor (86, 85). Bolt: 6 again, 4 left (69..66). The pool: 3 again, none left.
    assert (summary.owned_target, summary.pool_target, summary.created) == (11, 3, 6)
    assert lead_scores(roofing, generated_on=TOMORROW.date()) == [86, 85, 69, 68, 67, 66]


def test_the_pool_allowance_counts_the_leads_made_there_today(roofing):
    volume(roofing, pool_leads_per_day=2)
    homes(roofing, "80206", 90, 80, 70, 60, 50)
    assert leads_generate(trade=roofing, now=NOW).created == 2

    volume(roofing, pool_leads_per_day=3)
    summary = leads_generate(trade=roofing, now=NOW)

    assert (summary.pool_target, summary.created) == (1, 1)
    assert lead_scores(roofing) == [90, 80, 70]
    assert leads_generate(trade=roofing, now=TOMORROW).created == 2


def test_other_filters_and_the_zip_limit_still_apply_within_a_target(roofing):
    volume(roofing, pool_leads_per_day=10, max_per_zip_per_day=2, min_score=0)
    homes(roofing, "80206", 90, 80, 70)
    homes(roofing, "80207", 85)
    scored_home(roofing, score=99, zip_code="80207", owner_occupied=False)
    volume(roofing, pool_leads_per_day=10, max_per_zip_per_day=2, min_score=0, owner_occupied_only=True)

    summary = leads_generate(trade=roofing, now=NOW)

    assert (summary.pool_target, summary.created) == (10, 3)
    assert lead_scores(roofing) == [90, 85, 80]


def test_an_explicit_limit_overrides_the_volume_target(roofing, owners):
    summary = leads_generate(trade=roofing, limit=2, now=NOW)

    assert (summary.created, summary.owned_target, summary.pool_target) == (2, None, None)
    assert lead_scores(roofing, created_at=NOW) == [98, 97]  # the best anywhere, as before


def test_blank_capacity_factor_makes_every_candidate_above_the_floor_a_lead(roofing, owners):
    volume(roofing, capacity_factor=None)

    summary = leads_generate(trade=roofing, now=NOW)

    assert (summary.created, summary.owned_target) == (21, None)  # the paused owner's ZIP too, as before
    assert min(lead_scores(roofing)) == 59


@pytest.mark.parametrize(("made", "share", "draws"), [(0, 0.2, 0), (8, 0, 0), (8, 0.2, 2), (10, 0.1, 1), (3, 0.5, 3)])
def test_exploration_draws_are_the_share_of_all_the_days_leads(made, share, draws):
    assert exploration_draws(made=made, share=share) == draws


def test_an_exploration_share_of_one_is_refused():
    with pytest.raises(ValueError, match="exploration share"):
        exploration_draws(made=1, share=1)


def draw_order(trade, day, property_ids):
    """The draw's order worked out here: md5 of property id, trade id and day."""
    return sorted(property_ids, key=lambda pk: (hashlib.md5(f"{pk}:{trade.pk}:{day}".encode()).hexdigest(), pk))


def test_exploration_leads_are_drawn_below_the_cut_flagged_and_weighted(roofing):
    in_cooldown = scored_home(roofing, score=44, zip_code="80207", property_type=Property.Type.CONDO)
    filters(roofing, property_types=[Property.Type.CONDO])
    leads_generate(trade=roofing, now=NOW - dt.timedelta(days=3))  # a lead three days ago: its cooldown holds
    Lead.objects.filter(property=in_cooldown).update(state=Lead.State.EXPIRED, closed_at=NOW - dt.timedelta(days=1))
    filters(roofing, min_score=50, exploration_share=0.2, owner_occupied_only=True, property_types=[])
    above = homes(roofing, "80206", *range(90, 82, -1))  # 8 best-first leads: 8 x 0.2 / 0.8 = 2 draws
    below = homes(roofing, "80207", *range(40, 28, -1))  # 12 eligible homes below the floor
    scored_home(roofing, score=45, zip_code="80207", owner_occupied=False)  # filtered out: not eligible

    summary = leads_generate(trade=roofing, now=NOW)

    assert (summary.created, summary.exploration) == (10, 2)
    assert str(summary) == "roofing: 10 new leads (2 for exploration)"
    explored = Lead.objects.filter(trade=roofing, exploration=True)
    expected = draw_order(roofing, NOW.date(), [home.pk for home in below])[:2]
    assert sorted(explored.values_list("property_id", flat=True)) == sorted(expected)
    assert set(explored.values_list("sampling_weight", flat=True)) == {12 / 2}  # 12 left below the cut
    assert set(explored.values_list("state", flat=True)) == {"generated"}
    best_first = Lead.objects.filter(trade=roofing, exploration=False, generated_on=NOW.date())
    assert sorted(best_first.values_list("property_id", flat=True)) == sorted(home.pk for home in above)
    assert set(best_first.values_list("sampling_weight", flat=True)) == {1}

    # The same day again: no best-first leads, so no draws.
    assert leads_generate(trade=roofing, now=NOW).created == 0


def test_exploration_draws_by_a_hash_of_the_property_the_trade_and_the_day(roofing, trades):
    solar = trades["solar"]
    for trade in (roofing, solar):
        filters(trade, min_score=50, exploration_share=0.5)
        scored_home(trade, score=90, zip_code="80206")
    below = homes(roofing, "80207", *range(40, 10, -1))  # 30 homes below the floor of both trades
    for home in below:
        scored(home, solar, score=20)

    leads_generate(trade=roofing, now=NOW)
    leads_generate(trade=solar, now=NOW)
    leads_generate(trade=roofing, now=TOMORROW)  # the day's best-first lead is gone: no draw

    ids = [home.pk for home in below]
    for trade in (roofing, solar):
        drawn = Lead.objects.filter(trade=trade, exploration=True).values_list("property_id", "sampling_weight")
        assert list(drawn) == [(draw_order(trade, NOW.date(), ids)[0], 30.0)]


def test_exploration_skips_the_zips_of_owners_that_receive_nothing(roofing):
    volume(roofing, exploration_share=0.5, pool_leads_per_day=1)
    paused = contractor_status_change(contractor=owner(roofing, "80205"), status="paused")
    homes(roofing, "80206", 90)
    homes(roofing, "80205", 30, 29, 28)
    pool_below = homes(roofing, "80206", 20)

    summary = leads_generate(trade=roofing, now=NOW)

    assert (summary.created, summary.exploration) == (2, 1)
    explored = Lead.objects.get(exploration=True)
    assert (explored.property_id, explored.sampling_weight) == (pool_below[0].pk, 1)
    assert not Lead.objects.filter(zip_code="80205").exists()
    assert paused.status == "paused"


def test_exploration_leads_are_routed_first_within_the_owners_room(roofing):
    volume(roofing, exploration_share=0.25, pool_leads_per_day=0, min_score=50)
    acme = owner(roofing, "80206", daily_cap=2)
    homes(roofing, "80206", 90, 85, 80, 75, 30)

    summary = leads_generate(trade=roofing, now=NOW)
    routed = leads_route(now=NOW)

    # Room 2 x 1.5: 3 best first (90, 85, 80); 3 x 0.25 / 0.75: one drawn of the 2 left (75, 30).
    assert (summary.owned_target, summary.created, summary.exploration) == (3, 4, 1)
    explored = Lead.objects.get(exploration=True)
    assert (explored.score in (75, 30), explored.sampling_weight) == (True, 2)
    assert routed.by_contractor == {acme.pk: 2}
    assigned = Lead.objects.filter(contractor=acme)
    assert sorted(assigned.values_list("exploration", "score")) == [(False, 90), (True, explored.score)]


def test_the_api_and_its_csv_say_which_leads_are_exploration(roofing):
    filters(roofing, min_score=50, exploration_share=0.5)
    acme = owner(roofing, "80206")
    best, below = homes(roofing, "80206", 90, 30)
    leads_generate(trade=roofing, now=NOW)
    leads_route(now=NOW)
    client = api_client(acme)

    listed = client.get("/api/v1/leads/").json()["results"]
    exported = client.get("/api/v1/leads/", HTTP_ACCEPT="text/csv")

    by_property = {Lead.objects.get(pk=lead["id"]).property_id: lead["exploration"] for lead in listed}
    assert by_property == {best.pk: False, below.pk: True}
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert sorted(row["exploration"] for row in rows) == ["false", "true"]


def test_the_challenger_share_is_spread_over_groups_by_largest_remainder():
    # 3 x 0.1, 3 x 0.1 and 4 x 0.1: one lead in all, to the group with the largest remainder.
    assert _challenger_split({7: 3, 8: 3, 9: 4}, 0.1) == {
        target_key(7, CHALLENGER): 0, target_key(7, CHAMPION): 3,
        target_key(8, CHALLENGER): 0, target_key(8, CHAMPION): 3,
        target_key(9, CHALLENGER): 1, target_key(9, CHAMPION): 3,
    }  # fmt: skip
    assert _challenger_split({POOL: 10}, None) == {target_key(POOL, CHAMPION): 10}
    # 2.5 rounds half up.
    assert _challenger_split({POOL: 10}, 0.25) == {target_key(POOL, CHALLENGER): 3, target_key(POOL, CHAMPION): 7}


@pytest.fixture
def challenged(roofing):
    """A challenger version with half of the properties; 20 homes in 80206, those in its share worse."""
    version = ScoringModel.objects.filter(trade=roofing).order_by("-version").first().version + 1  # after the seeded
    ScoringModel.objects.create(
        trade=roofing, version=version, status=ScoringModel.Status.CHALLENGER, challenger_share=0.5
    )
    market = homes(roofing, "80206", *[60] * 20)
    shares = in_challenger_share([home.pk for home in market], 0.5)
    assert 4 <= shares.sum() <= 16  # both arms have more homes than their target
    for rank, (home, share) in enumerate(zip(market, shares, strict=True)):
        Score.objects.filter(property=home).update(score=(50 if share else 90) - rank)
    return {home.pk: bool(share) for home, share in zip(market, shares, strict=True)}


def best(scores, challenged, *, in_share, count):
    return sorted((score for pk, score in scores.items() if challenged[pk] == in_share), reverse=True)[:count]


def test_a_challenger_gets_its_share_of_each_target_best_first(roofing, challenged):
    volume(roofing, pool_leads_per_day=6)

    summary = leads_generate(trade=roofing, now=NOW)

    assert summary.created == 6
    market = dict(Score.objects.filter(trade=roofing).values_list("property_id", "score"))
    made = dict(Lead.objects.values_list("property_id", "score"))
    # Each arm's best three of its own properties (0.5 x 6), though all of the others score higher.
    for in_share in (True, False):
        assert best(made, challenged, in_share=in_share, count=6) == best(
            market, challenged, in_share=in_share, count=3
        )


def test_a_challenger_splits_an_explicit_limit_too(roofing, challenged):
    summary = leads_generate(trade=roofing, limit=4, now=NOW)

    assert summary.created == 4
    assert sorted(challenged[pk] for pk in Lead.objects.values_list("property_id", flat=True)) == [
        False,
        False,
        True,
        True,
    ]
