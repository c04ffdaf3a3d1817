"""Demo contractors owning a realistic share of the demo market's ZIPs (`manage.py seed_demo_territories`).

Per metro of the demo market and per trade, two or three local contractors own some of the ZIPs that
have properties: more of the busy ZIPs than of the quiet ones, roofing the most sold trade and solar
the least, the first contractor of a trade the biggest. The rest stay free for staff to sell (coverage
shows them ranked by demand). A few contractors wait in line for a rival's ZIPs, one is paused.
Everything goes through the services, so the demo data obeys every rule real data does. The contractors
are marked `is_demo`: the demo day plays only their leads. The demo trades explore (EXPLORATION_SHARE).

Money: each demo trade has a price list (DEMO_PRICES, DEMO_FEES) from PRICES_SINCE days back, so the
simulated days charge their leads and the months they cross close with territory fees; every fourth
contractor is prepaid (PREPAID: a credit limit and a first payment, topped up by the demo days,
demo.simulation), the rest are billed in arrears. Solar is open for self-service up to
SELF_SERVICE_ZIPS ZIPs a contractor; the other trades' claims wait for staff.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal
from typing import TypedDict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.text import slugify

from contractors.models import Contractor, validate_time_zone
from contractors.services.contractors import contractor_create, contractor_status_change
from demo.guard import demo_production_check
from demo.market import METROS, metro_zip_frame
from leads.services.billing import Band, FeeTier, ledger_entry_add, price_list_create
from leads.services.filters import lead_filter_for
from scoring import selectors as scoring_selectors
from scoring.models import Property, Trade, ZipCode
from territories.models import SelfService, Territory
from territories.services.claims import territory_claim_many
from territories.services.waitlist import waitlist_join

# trade slug: (share of a metro's ZIPs that are sold, brands with the weight of their share of those)
DEMO_TRADES: dict[str, tuple[float, list[tuple[str, float]]]] = {
    "roofing": (0.65, [("Summit Roofing", 0.5), ("Ironclad Roof & Gutter", 0.3), ("Hailstone Roofing", 0.2)]),
    "hvac": (0.5, [("Comfort Air Heating & Cooling", 0.6), ("Polar Bear HVAC", 0.4)]),
    "windows": (0.4, [("Clearview Windows & Doors", 0.6), ("Pane Perfect Windows", 0.4)]),
    "solar": (0.35, [("Bright Path Solar", 0.6), ("Sunward Energy", 0.4)]),
}
WAITLIST_SHARE = 0.05  # of owned ZIPs, where a rival of the owner waits in line
# The demo trades explore: this share of their leads is drawn from below the day's cut, so that evaluation
# and learning see outcomes beyond the default models' top (production's default is none).
EXPLORATION_SHARE = 0.05
CAPS = [(None, None, None), (10, 50, 180), (5, 25, None), (None, 40, 150)]
# trade slug: bands of its price list, (lowest score, price in CURRENCY, urgent only)
DEMO_PRICES: dict[str, list[tuple[float, str, bool]]] = {
    "roofing": [(0, "25.00", False), (70, "40.00", False), (85, "60.00", False), (0, "75.00", True)],
    "hvac": [(0, "20.00", False), (75, "35.00", False), (0, "45.00", True)],
    "windows": [(0, "15.00", False), (80, "28.00", False)],
    "solar": [(0, "30.00", False), (80, "55.00", False)],
}
# trade slug: its monthly territory fee tiers, (lowest ZIP demand, fee a month in CURRENCY)
DEMO_FEES: dict[str, list[tuple[int, str]]] = {
    "roofing": [(0, "49.00"), (25, "99.00")],
    "hvac": [(0, "39.00"), (25, "79.00")],
    "windows": [(0, "29.00")],
    "solar": [(0, "59.00"), (25, "119.00")],
}
PRICES_SINCE = 120  # days: before any day the demo plays (simulate_days --days at most this)
PREPAID = ("200.00", "1000.00")  # the prepaid contractors' credit limit and first payment
SELF_SERVICE_ZIPS = 10


class DemoTerritories(TypedDict):
    skipped: bool
    contractors: int
    territories: int
    free: int  # (ZIP, trade) pairs of the demo ZIPs that nobody owns
    waitlist: int


def _markets() -> dict[str, list[tuple[str, int]]]:
    """Market name -> [(ZIP, properties)], busiest first: the demo metros, else the ZIP's state."""
    counts = dict(Property.objects.values("zip_code").annotate(n=Count("id")).values_list("zip_code", "n").order_by())
    metro_of: dict[str, str] = {}
    if counts:
        metros = metro_zip_frame(scoring_selectors.residential_zip_frame())
        metro_of = {code: METROS[index].city for code, index in zip(metros["code"], metros["metro"], strict=True)}
    states = dict(ZipCode.objects.filter(code__in=list(counts)).values_list("code", "state"))
    markets: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for code, properties in counts.items():
        markets[metro_of.get(code) or states[code]].append((code, properties))
    return {name: sorted(zips, key=lambda item: (-item[1], item[0])) for name, zips in sorted(markets.items())}


def _time_zone(zip_codes: list[str]) -> str:
    zones = ZipCode.objects.filter(code__in=zip_codes).exclude(time_zone="").values_list("time_zone", flat=True)
    for zone in zones:
        try:
            validate_time_zone(zone)
        except ValidationError:
            continue
        return zone
    return "America/Chicago"


@transaction.atomic
def territories_demo_seed(
    *, seed: int = 42, only_if_empty: bool = True, allow_production: bool = False
) -> DemoTerritories:
    """Create the demo contractors and their territories; with `only_if_empty`, nothing when any
    contractor exists. Deterministic for a given market and seed. DemoRefused with DEBUG off unless
    `allow_production`: made-up contractors would take real ZIPs and their leads."""
    demo_production_check(doing="seed the demo contractors", allow_production=allow_production)
    result: DemoTerritories = {"skipped": False, "contractors": 0, "territories": 0, "free": 0, "waitlist": 0}
    if only_if_empty and Contractor.objects.exists():
        result["skipped"] = True
        return result
    rng = random.Random(seed)
    trades = {trade.slug: trade for trade in Trade.objects.filter(slug__in=list(DEMO_TRADES))}
    markets = _markets()
    for market, zips in markets.items():
        codes = [code for code, _ in zips]
        time_zone = _time_zone(codes[:5])
        for slug, (share, brands) in DEMO_TRADES.items():
            trade = trades.get(slug)
            if trade is None:
                continue
            contractors = []
            for brand, _ in brands:
                name = f"{brand} of {market}"
                cap_day, cap_week, cap_month = rng.choice(CAPS)
                contractors.append(
                    contractor_create(
                        name=name,
                        slug=slugify(name)[:60],
                        trades=[trade],
                        contact_email=f"sales@{slugify(brand)}.example.com",
                        contact_phone=f"+1 555 {rng.randrange(100, 1000)} {rng.randrange(1000, 10000)}",
                        time_zone=time_zone,
                        daily_cap=cap_day,
                        weekly_cap=cap_week,
                        monthly_cap=cap_month,
                        is_demo=True,
                    )
                )
            owned: dict[int, list[str]] = defaultdict(list)
            for rank, code in enumerate(codes):
                # Busy ZIPs sell first: the top half of a market is sold at 1.4 times the trade's share.
                if rng.random() < share * (1.4 if rank < len(codes) / 2 else 0.6):
                    owner = rng.choices(range(len(contractors)), weights=[weight for _, weight in brands])[0]
                    owned[owner].append(code)
            for index, contractor in enumerate(contractors):
                if owned[index]:
                    territory_claim_many(
                        contractor=contractor, trade=trade, zip_codes=owned[index], note="Demo territory."
                    )
                    result["territories"] += len(owned[index])
            for index, zip_codes in sorted(owned.items()):
                rivals = [other for position, other in enumerate(contractors) if position != index]
                for code in zip_codes:
                    if rng.random() < WAITLIST_SHARE:
                        waitlist_join(contractor=rng.choice(rivals), trade=trade, zip_code=code)
                        result["waitlist"] += 1
            result["free"] += len(codes) - sum(len(zip_codes) for zip_codes in owned.values())
            result["contractors"] += len(contractors)
    _money_seed(trades)
    for trade in trades.values():
        lead_filter = lead_filter_for(trade=trade)
        lead_filter.exploration_share = EXPLORATION_SHARE
        lead_filter.save(update_fields=["exploration_share", "updated_at"])
    paused = Contractor.objects.filter(is_demo=True, name__startswith="Polar Bear HVAC").order_by("name").first()
    if paused is not None:
        contractor_status_change(
            contractor=paused, status=Contractor.Status.PAUSED, reason="Crews fully booked until next month."
        )
    return result


def _money_seed(trades: dict[str, Trade]) -> None:
    """The demo trades' price lists, every fourth demo contractor prepaid with its first payment, and solar
    open for self-service. The demo territories are held since the lists started, as a business that has
    sold them for months, so the months the demo plays charge their fees."""
    start = timezone.now() - dt.timedelta(days=PRICES_SINCE)
    Territory.objects.filter(contractor__is_demo=True, ended_at__isnull=True).update(started_at=start)
    for slug, bands in DEMO_PRICES.items():
        if slug in trades:
            price_list_create(
                trade=trades[slug],
                bands=[Band(score, Decimal(price), urgent=urgent) for score, price, urgent in bands],
                fees=[FeeTier(demand, Decimal(monthly)) for demand, monthly in DEMO_FEES.get(slug, [])],
                effective_from=start,
                note="Demo prices.",
                now=start,
            )
    limit, payment = (Decimal(amount) for amount in PREPAID)
    for contractor in Contractor.objects.filter(is_demo=True).order_by("pk")[::4]:
        contractor.billing, contractor.credit_limit = Contractor.Billing.PREPAID, limit
        contractor.save(update_fields=["billing", "credit_limit", "updated_at"])
        ledger_entry_add(
            contractor=contractor, kind="payment", amount=payment, note="Demo: first payment", user=None, at=start
        )
    if "solar" in trades:
        SelfService.objects.update_or_create(
            trade=trades["solar"], defaults={"enabled": True, "zip_limit": SELF_SERVICE_ZIPS}
        )
