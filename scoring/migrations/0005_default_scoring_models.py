"""Version 1 of the scoring model of each seeded trade, active from the start.

Each factor says why its weight is there. Weights add up to 100 in every model, so a weight reads as
"points of the score". A trade that already has a model (staff made one) is left alone.
"""

from django.db import migrations
from django.utils import timezone

# feature, transform, params, weight, reason shown to the contractor
DEFAULT_MODELS = {
    "roofing": [
        # A roof is a 20-25 year purchase: demand starts around 12 years and is near-certain past 25.
        ("roof_age", "ramp", {"low": 12, "high": 25}, 35, "Roof is {value:.0f} years old"),
        # Hail of an inch or more damages asphalt shingles, and insurers then pay for the roof.
        ("hail_inches", "step", {"threshold": 1.0}, 25, "{value:.2f} in hail within its radius"),
        # Storm-damage claims are filed in the first weeks; the urgency fades over months.
        ("days_since_hail", "decay", {"half_life_days": 45}, 20, "Hail {value:.0f} days ago"),
        # New owners act on the inspection report in their first year.
        ("days_since_sale", "decay", {"half_life_days": 180}, 10, "Bought {value:.0f} days ago"),
        # No roofing permit in 15 years: the roof has not been redone since.
        ("years_since_trade_permit", "step", {"threshold": 15}, 5, "No roofing permit in {value:.0f} years"),
        # Owners, not landlords, replace roofs before they fail.
        ("owner_occupied", "flag", {}, 5, "Owner-occupied"),
    ],
    "solar": [
        # Solar pays back over a decade or more: it is bought by owners who stay.
        ("owner_occupied", "flag", {}, 25, "Owner-occupied"),
        # New owners make their energy upgrades in the first year.
        ("days_since_sale", "decay", {"half_life_days": 365}, 20, "Bought {value:.0f} days ago"),
        # Detached houses have the roof area and the say over it; townhouses sometimes.
        ("property_type", "lookup", {"values": {"single_family": 1, "townhouse": 0.4}, "default": 0}, 15,
         "Roof of its own ({value})"),
        # Higher-value homes have bigger bills and the credit to finance a system.
        ("market_value", "ramp", {"low": 250000, "high": 800000}, 15, "Home worth ${value:,.0f}"),
        # Panels go on roofs with 15 years of life left; an old roof must be replaced first.
        ("roof_age", "step", {"threshold": 12, "above": False}, 15, "Roof only {value:.0f} years old"),
        # No solar permit in 25 years: no system on the roof yet.
        ("years_since_trade_permit", "step", {"threshold": 25}, 10, "No solar permit in {value:.0f} years"),
    ],
    "hvac": [
        # A furnace or air conditioner lasts 15-20 years; the last HVAC permit dates the system.
        ("years_since_trade_permit", "ramp", {"low": 12, "high": 20}, 35, "HVAC last permitted {value:.0f} years ago"),
        # Older homes also need ductwork and efficiency upgrades.
        ("home_age", "ramp", {"low": 10, "high": 25}, 20, "Home is {value:.0f} years old"),
        # New owners replace tired systems before their first summer or winter.
        ("days_since_sale", "decay", {"half_life_days": 180}, 15, "Bought {value:.0f} days ago"),
        ("owner_occupied", "flag", {}, 10, "Owner-occupied"),
        # Bigger, pricier homes buy bigger systems and zoning.
        ("market_value", "ramp", {"low": 150000, "high": 600000}, 10, "Home worth ${value:,.0f}"),
        # Detached houses own their system; condos often share one.
        ("property_type", "lookup", {"values": {"single_family": 1, "townhouse": 0.8, "multi_family": 0.6,
                                                "mobile_home": 0.5, "condo": 0.3}, "default": 0.3}, 10,
         "Own system ({value})"),
    ],
    "windows": [
        # Original windows last 25-40 years: fogged panes, failed seals, drafts.
        ("home_age", "ramp", {"low": 20, "high": 45}, 30, "Home is {value:.0f} years old"),
        # No window permit since then: they are still the originals.
        ("years_since_trade_permit", "ramp", {"low": 15, "high": 30}, 25, "No window permit in {value:.0f} years"),
        # New owners replace drafty windows early.
        ("days_since_sale", "decay", {"half_life_days": 180}, 15, "Bought {value:.0f} days ago"),
        # Large hail (golf ball, 1.75 in) breaks windows; claims follow within weeks.
        ("hail_inches", "step", {"threshold": 1.75}, 10, "{value:.2f} in hail within its radius"),
        ("days_since_hail", "decay", {"half_life_days": 30}, 10, "Hail {value:.0f} days ago"),
        ("owner_occupied", "flag", {}, 10, "Owner-occupied"),
    ],
}


def create_default_models(apps, schema_editor):
    Trade = apps.get_model("scoring", "Trade")
    ScoringModel = apps.get_model("scoring", "ScoringModel")
    Factor = apps.get_model("scoring", "Factor")
    for slug, factors in DEFAULT_MODELS.items():
        trade = Trade.objects.filter(slug=slug).first()
        if trade is None or ScoringModel.objects.filter(trade=trade).exists():
            continue
        # Written as a draft, then activated: factors of an active version are frozen (migration 0008).
        model = ScoringModel.objects.create(
            trade=trade, version=1, status="draft",
            notes="Default model: each factor's reason is documented in scoring/migrations/0005.",
        )  # fmt: skip
        Factor.objects.bulk_create(
            Factor(model=model, position=position, feature=feature, transform=transform, params=params,
                   weight=weight, reason=reason)
            for position, (feature, transform, params, weight, reason) in enumerate(factors)
        )  # fmt: skip
        ScoringModel.objects.filter(pk=model.pk).update(status="active", activated_at=timezone.now())


class Migration(migrations.Migration):
    dependencies = [("scoring", "0004_scoring_models")]
    operations = [migrations.RunPython(create_default_models, migrations.RunPython.noop)]
