"""simulate_days on a tiny demo market: a nightly run per day on that day's clock, the demo contractors'
moves with the day's time, outcomes drawn from the hidden truth and recorded, deterministic for a seed,
played once with --if-quiet, and only on demo contractors' leads."""

import datetime as dt
import io

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from contractors.models import Contractor
from demo.models import HiddenTruth, TruthDraw
from demo.simulation import day_morning, days_simulate
from demo.territories import territories_demo_seed
from demo.truth import truth_for_leads
from leads.models import Lead, LeadEvent, LeadFilter, LedgerEntry, Statement
from leads.selectors import month_bounds
from scoring.models import ScoringRun
from tests.demo.conftest import seeded_market

DAYS = 5


@pytest.fixture
def tiny_market(zip_codes, tmp_path):
    """300 homes, their hidden truth and the demo contractors; one of those made a real contractor."""
    seeded_market(tmp_path, properties=300)
    territories_demo_seed(seed=42)
    real = (
        Contractor.objects.filter(is_demo=True, trades__slug="hvac", status="active")
        .annotate(zips=Count("territories"))
        .order_by("-zips", "id")
        .first()
    )
    Contractor.objects.filter(pk=real.pk).update(is_demo=False)
    return real


def outcomes() -> dict[tuple, tuple]:
    """Every lead by its home, trade and day (not its row id): its state, job value and events' times."""
    leads = Lead.objects.select_related("property", "trade").prefetch_related("events")
    return {
        (lead.property.parcel_id, lead.trade.slug, lead.generated_on): (
            lead.state,
            lead.job_value,
            lead.return_reason,
            tuple((event.action, event.at) for event in sorted(lead.events.all(), key=lambda e: e.id)),
        )
        for lead in leads
    }


def test_days_are_played_on_their_own_clock_with_outcomes_from_the_hidden_truth(tiny_market):
    now = timezone.now()
    today = timezone.localdate(now)
    days = [today - dt.timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    mornings = {day_morning(day, now) for day in days}
    heard = []

    simulation = days_simulate(days=DAYS, seed=3, today=today, now=now, on_day=heard.append)

    assert [day.day for day in simulation.days] == days == [day.day for day in heard]
    # A nightly run a day: every trade with an active model scored as of each day.
    scored = set(ScoringRun.objects.filter(status="succeeded").values_list("trade__slug", "as_of"))
    assert {day for _, day in scored} == set(days)
    assert {(slug, day) for slug in {slug for slug, _ in scored} for day in days} == scored
    # Leads were made, each on its day's morning.
    total = simulation.total
    assert total.made == Lead.objects.count() > 0
    for generated_on, created_at in Lead.objects.values_list("generated_on", "created_at"):
        assert created_at == day_morning(generated_on, now)
    # The contractors' moves carry the simulated days' times, and the counts are the database's.
    moves = LeadEvent.objects.filter(actor__in=["contractor", "staff"])
    assert moves.exists()
    assert set(moves.values_list("at", flat=True)) <= mornings
    assert LeadEvent.objects.filter(action="deliver").count() == total.delivered > 0
    assert LeadEvent.objects.filter(action="accept").count() == total.accepted > 0
    assert LeadEvent.objects.filter(action="reject").count() == total.rejected
    assert Lead.objects.filter(state="converted").count() == total.converted
    assert Lead.objects.filter(state="returned", return_reason="not_interested").count() == total.returned
    assert total.converted + total.returned > 0
    assert LeadEvent.objects.filter(action="expire").count() == total.expired
    for lead in Lead.objects.filter(state__in=["converted", "returned"]):
        assert lead.closed_at in mornings
        assert lead.closed_at.date() >= lead.accepted_at.date() + dt.timedelta(days=2)
    assert all(value > 0 for value in Lead.objects.filter(state="converted").values_list("job_value", flat=True))
    # Each demo lead's truth is recorded as of its day, and read back for benchmarks.
    demo_leads = Lead.objects.filter(contractor__is_demo=True)
    ids = sorted(demo_leads.values_list("id", flat=True))
    truth = truth_for_leads(ids)
    assert truth["lead_id"].tolist() == ids
    assert ((truth["probability"] > 0) & (truth["probability"] < 1)).all()
    assert TruthDraw.objects.count() == len(ids)
    # The demo trades explore.
    assert set(LeadFilter.objects.filter(trade__slug__in=["roofing", "hvac", "windows", "solar"]).values_list(
        "exploration_share", flat=True
    )) == {0.05}  # fmt: skip


def test_only_demo_contractors_leads_are_touched(tiny_market):
    real = tiny_market

    days_simulate(days=DAYS, seed=3)

    theirs = Lead.objects.filter(contractor=real)
    assert theirs.exists()
    assert set(theirs.values_list("state", flat=True)) <= {"assigned", "expired"}
    assert not LeadEvent.objects.filter(lead__in=theirs).exclude(action__in=["generate", "assign", "expire"]).exists()
    assert not TruthDraw.objects.filter(lead__in=theirs).exists()


def test_the_same_seed_plays_the_same_days(tiny_market):
    played = []
    now = timezone.now()  # one clock for the three plays: today before 07:00 is played at it
    for seed in (3, 3, 4):
        with transaction.atomic():
            days_simulate(days=DAYS, seed=seed, now=now)
            played.append(outcomes())
            transaction.set_rollback(True)
        cache.clear()  # cap usage counted in the rolled-back run

    first, again, other = played
    assert first == again
    assert first.keys() == other.keys()  # the nightly runs do not depend on the seed
    assert first != other


def test_if_quiet_plays_the_days_once_and_the_command_prints_a_line_a_day(tiny_market):
    out = io.StringIO()
    call_command("simulate_days", "--days", "3", "--seed", "3", "--if-quiet", stdout=out)
    lines = out.getvalue().splitlines()
    events = LeadEvent.objects.count()

    today = timezone.localdate()
    assert [line.split(":")[0] for line in lines] == [
        (today - dt.timedelta(days=2)).isoformat(), (today - dt.timedelta(days=1)).isoformat(), today.isoformat(),
        "total",
    ]  # fmt: skip
    assert "leads made" in lines[0]
    assert lines[-1].startswith("total: ")
    assert lines[-1].endswith(" s")

    again = io.StringIO()
    call_command("simulate_days", "--days", "3", "--seed", "3", "--if-quiet", stdout=again)
    assert again.getvalue() == "Demo days not played: the demo contractors have already answered leads.\n"
    assert LeadEvent.objects.count() == events


def test_simulation_refuses_without_demo_contractors_or_truth_and_bad_arguments(zip_codes, tmp_path, settings):
    with pytest.raises(CommandError, match="no demo contractors"):
        call_command("simulate_days", "--days", "2")
    seeded_market(tmp_path, properties=100)
    territories_demo_seed(seed=42)
    with pytest.raises(CommandError, match="unknown trade plumbingx"):
        call_command("simulate_days", "--days", "2", "--trades", "hvac,plumbingx")
    with pytest.raises(CommandError, match="--days"):
        call_command("simulate_days", "--days", "0")
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("simulate_days", "--days", "2")
    settings.DEBUG = True
    HiddenTruth.objects.all().delete()
    with pytest.raises(CommandError, match="no hidden truth"):
        call_command("simulate_days", "--days", "2")
    assert not Lead.objects.exists()


def test_days_played_apart_leave_leads_past_the_return_window_open(tiny_market):
    today = timezone.localdate()
    days_simulate(days=2, seed=3, today=today - dt.timedelta(days=20))
    accepted = set(Lead.objects.filter(state="accepted").values_list("id", flat=True))
    assert accepted

    days_simulate(days=1, seed=3, today=today)

    late = Lead.objects.filter(pk__in=accepted)
    # Outcomes are due but returns are no longer taken: converted, or left open with the contractor's note.
    assert set(late.values_list("state", flat=True)) <= {"accepted", "converted"}
    assert not late.filter(state="accepted", contacted_at__isnull=True).exists()
    assert not late.filter(return_requested_at__isnull=False).exists()


def test_a_day_played_before_its_morning_is_played_at_the_one_clock_given(tiny_market):
    """Played at 03:00, the last day's leads and moves are all at 03:00 (its morning has not come), the day
    before at its 07:00: one clock, read once, whatever the time the command runs."""
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    now = timezone.make_aware(dt.datetime.combine(yesterday, dt.time(3, 0)))

    days_simulate(days=2, seed=3, now=now)

    before = timezone.make_aware(dt.datetime.combine(yesterday - dt.timedelta(days=1), dt.time(7, 0)))
    assert set(Lead.objects.values_list("generated_on", "created_at")) == {
        (yesterday - dt.timedelta(days=1), before),
        (yesterday, now),
    }
    moves = LeadEvent.objects.filter(actor__in=["contractor", "staff"])
    assert moves.exists()
    assert set(moves.values_list("at", flat=True)) <= {before, now}


def test_played_days_charge_the_leads_and_close_the_month_they_cross(tiny_market):
    """The demo's money: its price lists price every lead routed on the played days, a prepaid contractor
    starts with its first payment, and the days past the 1st close the month before with territory fees
    and a statement per contractor that had business, whose figures are the ledger's."""
    first = timezone.localdate().replace(day=1)
    if first + dt.timedelta(days=2) > timezone.localdate():  # the 1st or the 2nd: the month before
        first = (first - dt.timedelta(days=1)).replace(day=1)
    days_simulate(days=DAYS, seed=3, today=first + dt.timedelta(days=2))

    routed = Lead.objects.filter(contractor__is_demo=True, assigned_at__isnull=False)
    assert routed.exists()
    assert not routed.filter(price__isnull=True).exists()
    charged = LedgerEntry.objects.filter(kind="lead_charge").values_list("lead_id", flat=True)
    assert set(charged) == set(Lead.objects.filter(price__isnull=False).values_list("pk", flat=True))
    prepaid = Contractor.objects.filter(is_demo=True, billing="prepaid")
    assert prepaid.exists()
    assert LedgerEntry.objects.filter(kind="payment", contractor__in=prepaid).count() >= prepaid.count()

    month = (first - dt.timedelta(days=1)).replace(day=1)
    statements = Statement.objects.filter(month=month)
    assert statements.count() == Contractor.objects.filter(territories__isnull=False).distinct().count() > 0
    assert LedgerEntry.objects.filter(kind="territory_fee", period=month).count() > 0
    for statement in statements.select_related("contractor"):
        start, end = month_bounds(month=month, zone=statement.contractor.time_zone)
        entries = LedgerEntry.objects.filter(contractor=statement.contractor, at__lt=end)
        assert statement.closing_balance == (entries.aggregate(total=Sum("amount"))["total"] or 0)
        fees = entries.filter(kind="territory_fee", at__gte=start).aggregate(total=Sum("amount"))["total"]
        assert statement.territory_fees == (fees or 0)
