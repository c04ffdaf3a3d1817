"""Version 2 of the default scoring models: reasons that state what is on record, and roofing on wind too.

- Truthful reasons. Without a roof year on record the roof's age is the home's, and without a permit of
  the trade the years since it are the home's age (scoring/features.py, FALLBACKS). Version 1 presented
  those fallbacks as records ("HVAC last permitted 52 years ago" for a home with no HVAC permit at all).
  Every factor on such a feature now has a second text for that case, which quotes what is on record
  (the year the home was built) and claims no permit or replacement; the first text quotes the record
  itself (its date or year).
- Roofing uses wind as well as hail. In version 1, hail was 45 points of 100, so without hail in the
  window a roof reached at most 55 points and roofing made no leads on a quiet month. Severe wind
  (58 mph, the National Weather Service's severe threshold) tears shingles off as hail cracks them,
  and is weighed like hail; an old roof with a fresh storm of either kind and a recent sale reaches 80.

Created for each trade whose active version is still the untouched default version 1 (its notes start
with "Default model"): written as a draft, then activated, retiring version 1 (factors of an active or
retired version are frozen, migration 0008; version 1's texts stay as they were). A trade whose model
staff changed is left alone. Weights add up to 100, so a weight reads as "points of the score".
"""

from django.db import migrations
from django.db.models import Max
from django.utils import timezone

NOTES = "Default model v2: each factor's reason is documented in scoring/migrations/0017."

# The texts every trade shares.
BOUGHT = "Bought {value:.0f} days ago, on {last_sale_date}"
BUILT = "Home built in {year_built:.0f}, {value:.0f} years ago"
OWNER = "Owner-occupied"
WORTH = "Home worth ${value:,.0f}"
KIND = "Property type: {value}"
ROOF = "Roof replaced in {roof_year:.0f}, {value:.0f} years ago"
NO_ROOF = "No roof replacement on record; home built in {year_built:.0f}"
HAIL = "{value:.2f} in hail {hail_where} on {hail_date}"
HAIL_DAYS = "Hail {value:.0f} days ago, on {hail_date}"
WIND = "{value:.0f} mph wind {wind_where} on {wind_date}"
WIND_DAYS = "Wind storm {value:.0f} days ago, on {wind_date}"

# feature, transform, params, weight, reason shown to the contractor, reason when the record is missing
DEFAULT_MODELS_V2 = {
    "roofing": [
        # A roof is a 20-25 year purchase: demand starts around 12 years and is near-certain past 25.
        # Without a roof year on record the age is the home's, and the reason says so.
        ("roof_age", "ramp", {"low": 12, "high": 25}, 35, ROOF, NO_ROOF),
        # Hail of an inch or more damages asphalt shingles, and insurers then pay for the roof.
        ("hail_inches", "step", {"threshold": 1.0}, 12, HAIL, ""),
        # Storm-damage claims are filed in the first weeks; the urgency fades over months.
        ("days_since_hail", "decay", {"half_life_days": 45}, 8, HAIL_DAYS, ""),
        # Severe wind (58 mph and up) lifts and tears shingles: the same insurance claim as hail, so the
        # same weight. Version 1 computed wind but did not use it.
        ("wind_mph", "step", {"threshold": 58}, 12, WIND, ""),
        # Wind claims are filed as fast as hail claims.
        ("days_since_wind", "decay", {"half_life_days": 45}, 8, WIND_DAYS, ""),
        # New owners act on the inspection report in their first year; worth more than in version 1, so
        # that an old roof bought this year ranks high without a storm.
        ("days_since_sale", "decay", {"half_life_days": 180}, 15, BOUGHT, ""),
        # A roofing permit in the last 15 years means the roof was redone, even when no roof year is on
        # record.
        ("years_since_trade_permit", "step", {"threshold": 15}, 5,
         "Last roofing permit on {trade_permit_date}, {value:.0f} years ago",
         "No roofing permit on record; home built in {year_built:.0f}"),
        # Owners, not landlords, replace roofs before they fail.
        ("owner_occupied", "flag", {}, 5, OWNER, ""),
    ],
    "solar": [
        # Solar pays back over a decade or more: it is bought by owners who stay.
        ("owner_occupied", "flag", {}, 25, OWNER, ""),
        # New owners make their energy upgrades in the first year.
        ("days_since_sale", "decay", {"half_life_days": 365}, 20, BOUGHT, ""),
        # Detached houses have the roof area and the say over it; townhouses sometimes.
        ("property_type", "lookup", {"values": {"single_family": 1, "townhouse": 0.4}, "default": 0}, 15, KIND, ""),
        # Higher-value homes have bigger bills and the credit to finance a system.
        ("market_value", "ramp", {"low": 250000, "high": 800000}, 15, WORTH, ""),
        # Panels go on roofs with 15 years of life left; an old roof must be replaced first. Without a
        # roof year on record the roof is as young as the home, and the reason says that instead.
        ("roof_age", "step", {"threshold": 12, "above": False}, 15, ROOF, NO_ROOF),
        # No solar permit in 25 years: no system on the roof yet.
        ("years_since_trade_permit", "step", {"threshold": 25}, 10,
         "Last solar permit on {trade_permit_date}, {value:.0f} years ago",
         "No solar permit on record; home built in {year_built:.0f}"),
    ],
    "hvac": [
        # A furnace or air conditioner lasts 15-20 years; the last HVAC permit dates the system. Without
        # one on record the system may be the home's first, and the reason says only that.
        ("years_since_trade_permit", "ramp", {"low": 12, "high": 20}, 35,
         "HVAC last permitted on {trade_permit_date}, {value:.0f} years ago",
         "No HVAC permit on record; home built in {year_built:.0f}"),
        # Older homes also need ductwork and efficiency upgrades.
        ("home_age", "ramp", {"low": 10, "high": 25}, 20, BUILT, ""),
        # New owners replace tired systems before their first summer or winter.
        ("days_since_sale", "decay", {"half_life_days": 180}, 15, BOUGHT, ""),
        ("owner_occupied", "flag", {}, 10, OWNER, ""),
        # Bigger, pricier homes buy bigger systems and zoning.
        ("market_value", "ramp", {"low": 150000, "high": 600000}, 10, WORTH, ""),
        # Detached houses own their system; condos often share one. (Version 1 said "Own system" of
        # every type, condos included.)
        ("property_type", "lookup", {"values": {"single_family": 1, "townhouse": 0.8, "multi_family": 0.6,
                                                "mobile_home": 0.5, "condo": 0.3}, "default": 0.3}, 10, KIND, ""),
    ],
    "windows": [
        # Original windows last 25-40 years: fogged panes, failed seals, drafts.
        ("home_age", "ramp", {"low": 20, "high": 45}, 30, BUILT, ""),
        # No window permit since then: they are still the originals. Without a window permit on record,
        # the reason says so and quotes the year the home was built.
        ("years_since_trade_permit", "ramp", {"low": 15, "high": 30}, 25,
         "Windows last permitted on {trade_permit_date}, {value:.0f} years ago",
         "No window permit on record; home built in {year_built:.0f}"),
        # New owners replace drafty windows early.
        ("days_since_sale", "decay", {"half_life_days": 180}, 15, BOUGHT, ""),
        # Large hail (golf ball, 1.75 in) breaks windows; claims follow within weeks.
        ("hail_inches", "step", {"threshold": 1.75}, 10, HAIL, ""),
        ("days_since_hail", "decay", {"half_life_days": 30}, 10, HAIL_DAYS, ""),
        ("owner_occupied", "flag", {}, 10, OWNER, ""),
    ],
}  # fmt: skip


def create_version_2(apps, schema_editor):
    Trade = apps.get_model("scoring", "Trade")
    ScoringModel = apps.get_model("scoring", "ScoringModel")
    Factor = apps.get_model("scoring", "Factor")
    for slug, factors in DEFAULT_MODELS_V2.items():
        trade = Trade.objects.filter(slug=slug).first()
        if trade is None:
            continue
        active = ScoringModel.objects.filter(trade=trade, status="active").first()
        if active is None or active.version != 1 or not active.notes.startswith("Default model"):
            continue  # staff run their own model: theirs to change
        # Version 2, or the next free number when staff already hold a draft under it.
        version = ScoringModel.objects.filter(trade=trade).aggregate(top=Max("version"))["top"] + 1
        model = ScoringModel.objects.create(
            trade=trade, version=version, status="draft", storm_window_days=active.storm_window_days, notes=NOTES
        )
        Factor.objects.bulk_create(
            Factor(model=model, position=position, feature=feature, transform=transform, params=params,
                   weight=weight, reason=reason, reason_fallback=reason_fallback)
            for position, (feature, transform, params, weight, reason, reason_fallback) in enumerate(factors)
        )  # fmt: skip
        # Retire version 1 first: one active version per trade (a partial unique constraint).
        ScoringModel.objects.filter(pk=active.pk).update(status="retired")
        ScoringModel.objects.filter(pk=model.pk).update(status="active", activated_at=timezone.now())


class Migration(migrations.Migration):
    dependencies = [("scoring", "0016_lead_quality")]
    # Backwards: version 2 stays (its factors are frozen, and it may have scored); going forward again
    # finds no untouched version 1 active and adds nothing.
    operations = [migrations.RunPython(create_version_2, migrations.RunPython.noop)]
