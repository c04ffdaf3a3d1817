"""The pipeline's commands: generate_leads, route_leads, expire_leads and run_pipeline, which scores too."""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Max
from django.utils import timezone

from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from scoring.models import Factor, Score, ScoringModel, ScoringRun, Trade
from scoring.services.scoring_models import scoring_model_activate
from tests.leads.factories import filters, home, owner, scored_home

KNOWN = "the trades are hvac, roofing, solar, windows"


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- generate_leads ------------------------------------------------------------------------------


def test_generate_leads_prints_each_trade_and_the_total(roofing, trades):
    filters(trades["windows"], enabled=False)
    scored_home(roofing, score=90)
    scored_home(roofing, score=85, zip_code="80203")
    scored_home(trades["hvac"], score=95)
    scored_home(trades["hvac"], score=30)  # below hvac's default floor of 40

    assert run("generate_leads") == (
        "hvac: 1 new lead; targets 0 in owned ZIPs, 50 in the pool\n"  # hvac's default volume target
        "roofing: 2 new leads\n"
        "solar: 0 new leads; targets 0 in owned ZIPs, 50 in the pool\n"
        "windows: skipped, lead generation is off in its filters\n"
        "total: 3 new leads\n"
    )
    assert Lead.objects.filter(trade=roofing, state="generated").count() == 2
    assert Lead.objects.filter(trade=trades["hvac"]).count() == 1

    # The same day again: nothing new.
    assert run("generate_leads", "--trade", "roofing") == "roofing: 0 new leads\ntotal: 0 new leads\n"
    assert Lead.objects.count() == 3


def test_generate_leads_for_named_trades_only(roofing, trades):
    scored_home(roofing, score=90)
    scored_home(trades["hvac"], score=95)

    output = run("generate_leads", "--trade", "roofing", "--trade", "roofing")

    assert output == "roofing: 1 new lead\ntotal: 1 new lead\n"
    assert list(Lead.objects.values_list("trade__slug", flat=True)) == ["roofing"]


def test_generate_leads_with_a_limit_makes_the_best_leads_first(roofing):
    best = scored_home(roofing, score=95)
    scored_home(roofing, score=90)
    scored_home(roofing, score=85)

    assert run("generate_leads", "--trade", "roofing", "--limit", "1") == "roofing: 1 new lead\ntotal: 1 new lead\n"
    assert list(Lead.objects.values_list("property_id", flat=True)) == [best.pk]


def test_generate_leads_for_an_unknown_trade_names_the_known_ones(roofing):
    scored_home(roofing, score=90)

    with pytest.raises(CommandError) as failed:
        run("generate_leads", "--trade", "roofing", "--trade", "gutters", "--trade", "siding")

    assert str(failed.value) == f"unknown trade gutters, siding; {KNOWN}"
    assert Lead.objects.count() == 0


def test_generate_leads_refuses_a_negative_limit(roofing):
    scored_home(roofing, score=90)

    with pytest.raises(CommandError) as failed:
        run("generate_leads", "--limit", "-1")

    assert str(failed.value) == "--limit must be 0 or more"
    assert Lead.objects.count() == 0


# --- route_leads ---------------------------------------------------------------------------------


def test_route_leads_assigns_the_pool_to_owners_and_prints_what_waits(roofing, trades):
    acme = owner(roofing, "80202")
    mine = scored_home(roofing, score=90, zip_code="80202")
    scored_home(roofing, score=90, zip_code="80203")
    leads_generate(trade=roofing)

    assert run("route_leads") == "1 lead assigned to 1 contractor, 1 in the pool\n"
    lead = Lead.objects.get(property=mine)
    assert (lead.state, lead.contractor_id) == ("assigned", acme.pk)
    assert run("route_leads") == "0 leads assigned to 0 contractors, 1 in the pool\n"


def test_route_leads_for_one_trade_leaves_the_others_pool(roofing, trades):
    hvac = trades["hvac"]
    owner(roofing, "80202")
    owner(hvac, "80202")
    scored_home(roofing, score=90, zip_code="80202")
    scored_home(hvac, score=90, zip_code="80202")
    leads_generate(trade=roofing)
    leads_generate(trade=hvac)

    assert run("route_leads", "--trade", "hvac") == "1 lead assigned to 1 contractor, 0 in the pool\n"
    assert Lead.objects.get(trade=roofing).state == "generated"
    assert Lead.objects.get(trade=hvac).state == "assigned"


def test_route_leads_for_an_unknown_trade_names_the_known_ones(roofing):
    owner(roofing, "80202")
    scored_home(roofing, score=90)
    leads_generate(trade=roofing)

    with pytest.raises(CommandError) as failed:
        run("route_leads", "--trade", "gutters")

    assert str(failed.value) == f"unknown trade gutters; {KNOWN}"
    assert Lead.objects.get().state == "generated"


# --- expire_leads --------------------------------------------------------------------------------


def test_expire_leads_expires_what_is_overdue_once(roofing, settings):
    settings.LEAD_POOL_DAYS, settings.LEAD_ACCEPT_SLA_HOURS = 14, 72
    acme = owner(roofing, "80202")
    scored_home(roofing, score=90, zip_code="80202")
    scored_home(roofing, score=90, zip_code="80203")
    now = timezone.now()
    leads_generate(trade=roofing, now=now - dt.timedelta(days=15))
    leads_route(now=now - dt.timedelta(days=4))
    scored_home(roofing, score=90, zip_code="80203")
    leads_generate(trade=roofing)  # new in the pool: not due

    assert run("expire_leads") == "1 unassigned and 1 unaccepted leads expired\n"
    assert sorted(Lead.objects.values_list("zip_code", "state", "contractor_id")) == [
        ("80202", "expired", acme.pk),
        ("80203", "expired", None),
        ("80203", "generated", None),
    ]
    assert LeadEvent.objects.filter(action="expire").count() == 2

    assert run("expire_leads") == "0 unassigned and 0 unaccepted leads expired\n"
    assert LeadEvent.objects.filter(action="expire").count() == 2


# --- run_pipeline --------------------------------------------------------------------------------

AS_OF = "2026-06-01"


def roof_model(trade: Trade) -> ScoringModel:
    """A new active version scoring roof age alone: 0 at 0 years to 100 at 40 (a 1990 roof: 90 in 2026)."""
    version = (ScoringModel.objects.filter(trade=trade).aggregate(top=Max("version"))["top"] or 0) + 1
    model = ScoringModel.objects.create(trade=trade, version=version)
    Factor.objects.create(model=model, position=0, feature="roof_age", transform="ramp", params={"low": 0, "high": 40},
                          weight=1, reason="Roof is {value:.0f} years old",
                          reason_fallback="No roof replacement on record; home built in {year_built:.0f}")  # fmt: skip
    return scoring_model_activate(model=model)


def test_run_pipeline_scores_generates_routes_and_expires(roofing):
    model = roof_model(roofing)
    filters(roofing, min_score=50)
    acme = owner(roofing, "80202")
    old_here, old_elsewhere = home(zip_code="80202"), home(zip_code="80203")  # built 1990
    young = home(zip_code="80202")
    young.year_built = 2020
    young.save(update_fields=["year_built"])

    output = run("run_pipeline", "--trade", "roofing", "--as-of", AS_OF)

    scoring = ScoringRun.objects.get(trade=roofing)
    assert (scoring.status, scoring.model_id, scoring.as_of, scoring.properties_scored) == (
        "succeeded",
        model.pk,
        dt.date(2026, 6, 1),
        3,
    )
    assert dict(Score.objects.filter(trade=roofing).values_list("property_id", "score")) == {
        old_here.pk: 90.0,
        old_elsewhere.pk: 90.0,
        young.pk: 15.0,
    }
    assert output.splitlines() == [
        scoring.summary(),
        "roofing: 2 new leads",
        "routing: 1 lead assigned to 1 contractor, 1 in the pool",
        "webhooks: no routed lead goes to a webhook",
        "expiry: 0 unassigned and 0 unaccepted leads expired",
        "waitlist offers: 0 expired, 0 offered to the next in line, 0 given to the next in line",
    ]
    assert sorted(Lead.objects.values_list("property_id", "state", "contractor_id", "score", "model_id")) == sorted(
        [
            (old_here.pk, "assigned", acme.pk, 90.0, model.pk),
            (old_elsewhere.pk, "generated", None, 90.0, model.pk),
        ]
    )

    # The same day again: the scores stand, no lead is made twice.
    output = run("run_pipeline", "--trade", "roofing", "--as-of", AS_OF)

    assert output.splitlines()[1:] == [
        "roofing: 0 new leads",
        "routing: 0 leads assigned to 0 contractors, 1 in the pool",
        "webhooks: no routed lead goes to a webhook",
        "expiry: 0 unassigned and 0 unaccepted leads expired",
        "waitlist offers: 0 expired, 0 offered to the next in line, 0 given to the next in line",
    ]
    assert Lead.objects.count() == 2


def test_run_pipeline_still_makes_leads_when_a_trade_cannot_be_scored_and_exits_with_1(roofing):
    Trade.objects.create(slug="gutters", name="Gutters")
    roof_model(roofing)
    home()
    out = io.StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("run_pipeline", "--trade", "gutters", "--trade", "roofing", "--as-of", AS_OF, stdout=out)

    assert exited.value.code == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("roofing: run ")
    assert lines[1:] == [
        "gutters: Gutters has no active scoring model; activate one in the admin first",
        "gutters: 0 new leads; targets 0 in owned ZIPs, 50 in the pool",
        "roofing: 1 new lead",
        "routing: 0 leads assigned to 0 contractors, 1 in the pool",
        "webhooks: no routed lead goes to a webhook",
        "expiry: 0 unassigned and 0 unaccepted leads expired",
        "waitlist offers: 0 expired, 0 offered to the next in line, 0 given to the next in line",
    ]


def test_run_pipeline_for_an_unknown_trade_names_the_known_ones(roofing):
    with pytest.raises(CommandError) as failed:
        run("run_pipeline", "--trade", "gutters")

    assert str(failed.value) == f"unknown trade gutters; {KNOWN}"
    assert ScoringRun.objects.count() == 0
