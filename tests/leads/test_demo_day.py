"""The demo contractors' day: moves made through the lifecycle services, deterministic, played once, and
only on the demo contractors' leads."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from demo.day import leads_demo_day
from demo.guard import DemoRefused
from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_accept, leads_deliver
from leads.services.routing import leads_route
from tests.leads.factories import owner, scored_home

NO_DEMO_CONTRACTORS = (
    "refusing to play the demo day: the database has no demo contractors (seed_demo_territories makes them), "
    "and the demo day plays only their leads"
)


@pytest.fixture(autouse=True)
def debug_on(settings):
    """DEBUG on, as `make run` has it; the tests of the production guard turn it off."""
    settings.DEBUG = True


def market(roofing, zip_codes, homes: int = 60, *, real_80203: bool = False):
    """Leads in 80202 and 80203, owned by demo contractors (80203 by a real one with `real_80203`)."""
    owner(roofing, "80202", is_demo=True)
    owner(roofing, "80203", is_demo=not real_80203)
    for n in range(homes):
        scored_home(roofing, score=50 + n % 50, zip_code="80202" if n % 2 else "80203")
    leads_generate(trade=roofing)
    leads_route()


def states() -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in Lead.objects.values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def snapshot() -> tuple[list[tuple], int]:
    """Every lead's state and dates, and the number of events: what a refused day must leave as it was."""
    leads = list(Lead.objects.order_by("id").values_list("id", "state", "contractor_id", "delivered_at", "closed_at"))
    return leads, LeadEvent.objects.count()


def test_the_demo_day_moves_leads_through_the_funnel_with_their_events(roofing, zip_codes):
    market(roofing, zip_codes)

    day = leads_demo_day(seed=7, most=40)

    assert day.delivered == 40
    assert day.accepted + day.rejected <= day.delivered
    assert day.converted + day.returned + day.contacted <= day.accepted
    final = states()
    assert final["converted"] == day.converted
    assert final.get("rejected", 0) == day.rejected
    assert final.get("returned", 0) == day.returned
    assert sum(final.values()) == 60
    # Each move is an event of the contractor's, as the API would have made it.
    assert LeadEvent.objects.filter(action="accept", actor="contractor").count() == day.accepted
    assert LeadEvent.objects.filter(action="convert").count() == day.converted
    assert all(value > 0 for value in Lead.objects.filter(state="converted").values_list("job_value", flat=True))


def test_the_demo_day_is_the_same_for_a_seed_and_played_once(roofing, zip_codes):
    market(roofing, zip_codes)
    out = io.StringIO()

    call_command("seed_demo_day", "--seed", "3", "--leads", "30", "--if-quiet", stdout=out)
    first = states()
    call_command("seed_demo_day", "--seed", "3", "--leads", "30", "--if-quiet", stdout=out)

    assert states() == first
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Demo day: 30 leads read, ")
    assert lines[1] == "Demo day not played: the demo contractors have already answered leads."


def test_the_demo_day_leaves_a_real_contractors_leads_untouched(roofing, zip_codes):
    market(roofing, zip_codes, real_80203=True)
    real = Lead.objects.filter(zip_code="80203", contractor__is_demo=False)
    # The real contractor has answered one of its leads: that says nothing of the demo contractors' day.
    first = real.order_by("id").first()
    leads_deliver(lead_ids=[first.pk], via="api")
    answered = lead_accept(lead=Lead.objects.get(pk=first.pk), actor=LeadEvent.Actor.CONTRACTOR)
    before = list(real.order_by("id").values_list("id", "state", "delivered_at", "accepted_at", "closed_at"))
    events_before = LeadEvent.objects.filter(lead__in=real).count()
    assert len(before) == 30

    day = leads_demo_day(seed=7, most=600)

    # Every assigned lead of the demo contractor was read; none of the real contractor's moved.
    assert day.delivered == 30
    assert day.accepted > 0
    assert list(real.order_by("id").values_list("id", "state", "delivered_at", "accepted_at", "closed_at")) == before
    assert LeadEvent.objects.filter(lead__in=real).count() == events_before
    assert Lead.objects.get(pk=answered.pk).state == "accepted"
    assert not Lead.objects.filter(zip_code="80202", state="assigned").exists()


def test_the_demo_day_refuses_without_demo_contractors(roofing, zip_codes):
    owner(roofing, "80202")
    for n in range(10):
        scored_home(roofing, score=60 + n, zip_code="80202")
    leads_generate(trade=roofing)
    leads_route()
    before = snapshot()
    assert states() == {"assigned": 10}

    with pytest.raises(DemoRefused) as refused:
        leads_demo_day(seed=7, most=40)
    with pytest.raises(CommandError) as command_refused:
        call_command("seed_demo_day", "--if-quiet", stdout=io.StringIO())

    assert str(refused.value) == str(command_refused.value) == NO_DEMO_CONTRACTORS
    assert snapshot() == before


def test_the_demo_day_refuses_with_debug_off_without_the_flag(roofing, zip_codes):
    market(roofing, zip_codes)
    before = snapshot()

    with override_settings(DEBUG=False):
        with pytest.raises(CommandError) as refused:
            call_command("seed_demo_day", "--seed", "3", "--leads", "30", stdout=io.StringIO())
        with pytest.raises(DemoRefused):
            leads_demo_day(seed=3, most=30)
        assert str(refused.value) == (
            "refusing to play the demo day: DEBUG is off, so this may be a production database; "
            "pass --allow-production to do it anyway"
        )
        assert snapshot() == before

        out = io.StringIO()
        call_command("seed_demo_day", "--seed", "3", "--leads", "30", "--allow-production", stdout=out)

    assert out.getvalue().startswith("Demo day: 30 leads read, ")
    assert states().get("assigned", 0) == 30
