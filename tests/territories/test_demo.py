"""Demo contractors and territories over the demo market (`seed_demo_territories`)."""

import datetime as dt
import io
from collections import Counter

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.test import override_settings

from contractors.models import Contractor, ContractorTrade
from demo.guard import DemoRefused
from demo.market import demo_market_seed
from demo.territories import DEMO_TRADES, territories_demo_seed
from scoring.models import Property
from territories.models import Territory, WaitlistEntry
from tests.contractors.factories import ContractorFactory


@pytest.fixture(autouse=True)
def debug_on(settings):
    """DEBUG on, as `make run` has it; the tests of the production guard turn it off."""
    settings.DEBUG = True


@pytest.fixture
def demo_market(zip_codes, trades, tmp_path):
    demo_market_seed(properties=2_000, seed=11, out_dir=tmp_path, today=dt.date(2026, 5, 20))
    return sorted(set(Property.objects.values_list("zip_code", flat=True)))


def test_demo_contractors_own_a_realistic_share_and_leave_zips_free(demo_market):
    seeded = territories_demo_seed(seed=42)

    demo_zips = set(demo_market)
    active = Territory.objects.active()
    assert seeded["skipped"] is False
    assert (
        seeded["contractors"]
        == Contractor.objects.count()
        == 9 * len({c.split(" of ")[1] for c in Contractor.objects.values_list("name", flat=True)})
    )
    assert seeded["territories"] == active.count() == Territory.objects.count()
    assert seeded["waitlist"] == WaitlistEntry.objects.filter(status="waiting").count() > 0
    assert seeded["free"] == len(demo_zips) * len(DEMO_TRADES) - active.count()
    assert set(active.values_list("zip_code_id", flat=True)) <= demo_zips
    shares = {
        slug: Counter(active.values_list("trade__slug", flat=True))[slug] / len(demo_zips) for slug in DEMO_TRADES
    }
    # Roofing sells best, solar least; every trade leaves ZIPs free to sell.
    assert shares["roofing"] > shares["hvac"] > shares["solar"] > 0.2
    assert shares["roofing"] < 0.9
    # Every owner serves its trade, and everyone in a line waits behind another owner of the same trade.
    assert not active.exclude(contractor__contractor_trades__trade=F("trade")).exists()
    for entry in WaitlistEntry.objects.all():
        holder = active.get(zip_code=entry.zip_code, trade=entry.trade)
        assert holder.contractor_id != entry.contractor_id
        assert ContractorTrade.objects.filter(contractor=entry.contractor, trade=entry.trade).exists()
    assert list(Contractor.objects.exclude(status="active").values_list("status", flat=True).distinct()) == ["paused"]
    # Every one of them is a demo contractor: the demo day plays their leads and no one else's.
    assert set(Contractor.objects.values_list("is_demo", flat=True)) == {True}


def test_seeding_again_with_if_empty_changes_nothing(demo_market):
    out = io.StringIO()
    call_command("seed_demo_territories", "--if-empty", stdout=out)
    seeded = out.getvalue()
    before = (Contractor.objects.count(), Territory.objects.count(), WaitlistEntry.objects.count())

    again = io.StringIO()
    call_command("seed_demo_territories", "--if-empty", stdout=again)

    assert seeded.startswith(f"Demo territories: {before[0]} contractors own {before[1]:,} territories; ")
    assert again.getvalue() == "Demo territories not seeded: the database already holds contractors.\n"
    assert (Contractor.objects.count(), Territory.objects.count(), WaitlistEntry.objects.count()) == before


def test_without_a_market_no_territories_are_seeded(zip_codes, trades):
    assert territories_demo_seed(seed=1) == {
        "skipped": False,
        "contractors": 0,
        "territories": 0,
        "free": 0,
        "waitlist": 0,
    }


def test_seeding_refuses_with_debug_off_without_the_flag(demo_market):
    with override_settings(DEBUG=False):
        with pytest.raises(CommandError) as refused:
            call_command("seed_demo_territories", stdout=io.StringIO())
        with pytest.raises(DemoRefused):
            territories_demo_seed(seed=42, only_if_empty=False)
        assert str(refused.value) == (
            "refusing to seed the demo contractors: DEBUG is off, so this may be a production database; "
            "pass --allow-production to do it anyway"
        )
        assert not Contractor.objects.exists()
        assert not Territory.objects.exists()

        out = io.StringIO()
        call_command("seed_demo_territories", "--allow-production", stdout=out)

    assert out.getvalue().startswith(f"Demo territories: {Contractor.objects.count()} contractors own ")
    assert Contractor.objects.filter(is_demo=True).count() == Contractor.objects.count() > 0


def test_a_real_contractor_named_like_a_demo_brand_is_not_paused(demo_market, trades):
    real = ContractorFactory(name="Polar Bear HVAC Co-op", slug="polar-bear-coop", trades=[trades["hvac"]])

    territories_demo_seed(seed=42, only_if_empty=False)

    real.refresh_from_db()
    assert (real.is_demo, real.status) == (False, "active")
    assert Contractor.objects.filter(is_demo=True, status="paused").count() == 1
