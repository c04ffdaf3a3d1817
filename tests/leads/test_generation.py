"""Lead generation: filters, cooldown, the per-ZIP daily limit, ranking, dedup, snapshot, idempotence."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction

from leads import ranking
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.lifecycle import leads_expire
from scoring.models import Property, Score
from tests.leads.factories import ROOF_REASON, filters, leads_of, scored, scored_home
from tests.racing import race

NOW = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.UTC)


def test_a_lead_keeps_a_snapshot_of_the_score_and_starts_in_the_pool(roofing):
    prop = scored_home(roofing, score=88.5, urgency=40.0, zip_code="80203")

    summary = leads_generate(trade=roofing, now=NOW)

    assert summary.created == 1
    assert str(summary) == "roofing: 1 new lead"
    lead = Lead.objects.get()
    score = Score.objects.get(property=prop, trade=roofing)
    assert (lead.property_id, lead.trade_id, lead.zip_code, lead.state, lead.contractor_id) == (
        prop.pk,
        roofing.pk,
        "80203",
        "generated",
        None,
    )
    assert (lead.score, lead.urgency, lead.priority) == (88.5, 40.0, 0.75 * 88.5 + 0.25 * 40.0)
    assert (lead.model_id, lead.model_version) == (score.model_id, score.model.version)
    assert lead.reasons == [ROOF_REASON]
    assert (lead.generated_on, lead.created_at) == (dt.date(2026, 11, 28), NOW)
    assert lead.expires_at == NOW + dt.timedelta(days=14)
    event = LeadEvent.objects.get(lead=lead)
    assert (event.action, event.from_state, event.to_state, event.actor, event.at) == (
        "generate",
        "",
        "generated",
        "system",
        NOW,
    )


def test_the_snapshot_survives_a_rescore(roofing):
    prop = scored_home(roofing, score=90, urgency=10)
    leads_generate(trade=roofing, now=NOW)

    Score.objects.filter(property=prop).update(score=20, urgency=0, reasons=[])

    lead = Lead.objects.get()
    assert (lead.score, lead.urgency, lead.reasons) == (90, 10, [ROOF_REASON])


def test_min_score_is_inclusive(roofing):
    filters(roofing, min_score=80)
    _low, edge, high = (scored_home(roofing, score=s) for s in (79.9, 80.0, 95.0))

    leads_generate(trade=roofing, now=NOW)

    assert sorted(Lead.objects.values_list("property_id", flat=True)) == sorted([edge.pk, high.pk])


def test_min_urgency_filters_when_set(roofing):
    filters(roofing, min_urgency=30)
    scored_home(roofing, score=90, urgency=29.9)
    urgent = scored_home(roofing, score=60, urgency=30)

    leads_generate(trade=roofing, now=NOW)

    assert list(Lead.objects.values_list("property_id", flat=True)) == [urgent.pk]


def test_owner_occupied_only_leaves_out_rentals_and_unknowns(roofing):
    filters(roofing, owner_occupied_only=True)
    lives_there = scored_home(roofing, score=90, owner_occupied=True)
    scored_home(roofing, score=90, owner_occupied=False)
    scored_home(roofing, score=90, owner_occupied=None)

    leads_generate(trade=roofing, now=NOW)

    assert list(Lead.objects.values_list("property_id", flat=True)) == [lives_there.pk]


def test_property_types_limit_generation_when_given(roofing):
    filters(roofing, property_types=[Property.Type.SINGLE_FAMILY, Property.Type.TOWNHOUSE])
    house = scored_home(roofing, score=90, property_type=Property.Type.SINGLE_FAMILY)
    townhouse = scored_home(roofing, score=90, property_type=Property.Type.TOWNHOUSE)
    scored_home(roofing, score=90, property_type=Property.Type.CONDO)

    leads_generate(trade=roofing, now=NOW)

    assert sorted(Lead.objects.values_list("property_id", flat=True)) == sorted([house.pk, townhouse.pk])


def test_scores_of_other_trades_make_no_leads(roofing, trades):
    filters(trades["solar"])
    solar_only = scored_home(trades["solar"], score=99)

    assert leads_generate(trade=roofing, now=NOW).created == 0
    assert leads_generate(trade=trades["solar"], now=NOW).created == 1
    assert Lead.objects.get().property_id == solar_only.pk


def test_disabled_filters_make_nothing(roofing):
    filters(roofing, enabled=False)
    scored_home(roofing, score=99)

    summary = leads_generate(trade=roofing, now=NOW)

    assert (summary.created, str(summary)) == (0, "roofing: skipped, lead generation is off in its filters")
    assert not Lead.objects.exists()


def test_ranking_is_score_and_urgency_combined_then_score_then_property_id(roofing):
    a = scored_home(roofing, score=80, urgency=40)  # priority 70
    b = scored_home(roofing, score=90, urgency=0)  # 67.5
    c = scored_home(roofing, score=60, urgency=100)  # 70, lower score than a
    d = scored_home(roofing, score=80, urgency=40)  # 70, same score as a, later id

    leads_generate(trade=roofing, limit=3, now=NOW)

    assert [lead.property_id for lead in leads_of(roofing)] == [a.pk, d.pk, c.pk]
    assert ranking.priority(80, 40) == ranking.priority(60, 100) == 70
    assert not Lead.objects.filter(property=b).exists()


def test_limit_zero_makes_nothing_and_a_negative_limit_is_refused(roofing):
    scored_home(roofing, score=90)

    assert leads_generate(trade=roofing, limit=0, now=NOW).created == 0
    with pytest.raises(ValueError, match="limit must be 0 or more"):
        leads_generate(trade=roofing, limit=-1, now=NOW)
    assert not Lead.objects.exists()


def test_the_zip_limit_keeps_the_best_of_each_zip_and_counts_the_day(roofing):
    filters(roofing, max_per_zip_per_day=2)
    best, second, third = (scored_home(roofing, score=s, zip_code="80202") for s in (95, 90, 85))
    other = scored_home(roofing, score=50, zip_code="80203")

    assert leads_generate(trade=roofing, now=NOW).created == 3
    assert sorted(Lead.objects.values_list("property_id", flat=True)) == sorted([best.pk, second.pk, other.pk])

    late = scored_home(roofing, score=99, zip_code="80202")  # scored later the same day
    assert leads_generate(trade=roofing, now=NOW + dt.timedelta(hours=2)).created == 0

    next_day = NOW + dt.timedelta(days=1)
    assert leads_generate(trade=roofing, now=next_day).created == 2
    assert set(Lead.objects.filter(generated_on=next_day.date()).values_list("property_id", flat=True)) == {
        late.pk,
        third.pk,
    }


def test_generating_twice_the_same_day_makes_nothing_the_second_time(roofing):
    for score in (70, 80, 90):
        scored_home(roofing, score=score)

    assert leads_generate(trade=roofing, now=NOW).created == 3
    assert leads_generate(trade=roofing, now=NOW + dt.timedelta(hours=5)).created == 0
    assert Lead.objects.count() == 3
    assert LeadEvent.objects.count() == 3


def test_cooldown_counts_any_outcome_until_it_has_passed(roofing):
    filters(roofing, cooldown_days=30)
    prop = scored_home(roofing, score=90)
    first_day = NOW - dt.timedelta(days=29)
    leads_generate(trade=roofing, now=first_day)
    leads_expire(now=first_day + dt.timedelta(days=15))  # the pool lead expires unassigned
    assert Lead.objects.get().state == "expired"

    assert leads_generate(trade=roofing, now=NOW).created == 0  # 29 days: still cooling down

    assert leads_generate(trade=roofing, now=NOW + dt.timedelta(days=1, minutes=1)).created == 1
    assert list(Lead.objects.order_by("created_at").values_list("property_id", "state")) == [
        (prop.pk, "expired"),
        (prop.pk, "generated"),
    ]


def test_an_open_lead_blocks_a_new_one_whatever_its_age(roofing):
    filters(roofing, cooldown_days=1)
    scored_home(roofing, score=90)
    leads_generate(trade=roofing, now=NOW - dt.timedelta(days=100))
    Lead.objects.update(expires_at=None)  # still open a hundred days on

    assert leads_generate(trade=roofing, now=NOW).created == 0
    assert Lead.objects.count() == 1


def test_the_database_refuses_a_second_open_lead_for_a_property_and_trade(roofing):
    prop = scored_home(roofing, score=90)
    leads_generate(trade=roofing, now=NOW)
    lead = Lead.objects.get()
    copy = {f.attname: getattr(lead, f.attname) for f in Lead._meta.concrete_fields if f.attname != "id"}

    with pytest.raises(IntegrityError, match="leads_lead_one_open_per_property"), transaction.atomic():
        Lead.objects.create(**copy)

    Lead.objects.filter(pk=lead.pk).update(state="withdrawn", closed_at=NOW)
    Lead.objects.create(**copy)  # a closed lead does not count
    assert Lead.objects.filter(property=prop).count() == 2


def test_the_database_refuses_inconsistent_states(roofing):
    scored_home(roofing, score=90)
    leads_generate(trade=roofing, now=NOW)
    lead = Lead.objects.get()

    for change, constraint in [
        ({"state": "assigned"}, "owner_matches_state"),  # assigned to nobody
        ({"state": "converted", "closed_at": NOW}, "owner_matches_state"),
        ({"state": "expired"}, "closed_when_final"),  # final without closed_at
        ({"job_value": 10}, "job_value_on_conversion"),
        ({"state": "lost"}, "state_valid|closed_when_final"),  # PostgreSQL names the first it checks
    ]:
        with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
            Lead.objects.filter(pk=lead.pk).update(**change)
    lead.refresh_from_db()
    assert (lead.state, lead.job_value, lead.closed_at) == ("generated", None, None)


@pytest.mark.django_db(transaction=True)
def test_racing_generations_make_each_lead_once_and_hold_the_zip_limit(trades, zip_codes):
    roofing = trades["roofing"]
    filters(roofing, max_per_zip_per_day=3)
    for index in range(12):
        home = scored_home(roofing, score=50 + index, zip_code="80202" if index % 2 else "80203")
        scored(home, trades["solar"], score=1)  # another trade's score changes nothing

    results, errors = race(lambda _: leads_generate(trade=roofing, now=NOW).created, range(6))

    assert errors == []
    assert sorted(results) == [0, 0, 0, 0, 0, 6]
    with connection.cursor() as cursor:
        cursor.execute("SELECT zip_code, count(*) FROM leads_lead GROUP BY 1 ORDER BY 1")
        assert cursor.fetchall() == [("80202", 3), ("80203", 3)]
