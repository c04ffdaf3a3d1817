"""The demo contractors' day: moves made through the lifecycle services, deterministic, played once."""

import io

from django.core.management import call_command

from leads.models import Lead, LeadEvent
from leads.services.demo import leads_demo_day
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from tests.leads.factories import owner, scored_home


def market(roofing, zip_codes, homes: int = 60):
    owner(roofing, "80202")
    owner(roofing, "80203")
    for n in range(homes):
        scored_home(roofing, score=50 + n % 50, zip_code="80202" if n % 2 else "80203")
    leads_generate(trade=roofing)
    leads_route()


def states() -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in Lead.objects.values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


def test_the_demo_day_moves_leads_through_the_funnel_with_their_events(roofing, zip_codes):
    market(roofing, zip_codes)

    day = leads_demo_day(seed=7, most=40)

    assert day.delivered == 40
    assert day.accepted + day.rejected <= day.delivered
    assert day.converted + day.returned + day.contacted <= day.accepted
    final = states()
    assert final["converted"] == day.converted and final.get("rejected", 0) == day.rejected
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
    assert lines[1] == "Demo day not played: contractors have already answered leads."
