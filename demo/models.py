"""The demo market's hidden truth: what the demo homeowners will really do. Demo-only storage.

No scoring, lead, territory or contractor code reads it (the import contract "hidden-truth" in
pyproject.toml holds that): the models must learn it from outcomes, as they would in a real market.
"""

from django.db import models

from scoring.models import Property, Trade


class HiddenTruth(models.Model):
    """Per property and trade: the probability that the owner buys from the trade in the next 90 days,
    drawn by seed_demo from a generative model that is not any scoring model (demo/truth.py), and the
    part of its log-odds that comes from what the scoring models can see (the oracle)."""

    property = models.ForeignKey(
        Property, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+"
    )
    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, db_index=False, related_name="+")
    probability = models.FloatField()
    seen_logit = models.FloatField(help_text="The log-odds with the part the models cannot see taken out.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["property", "trade"], name="%(app_label)s_%(class)s_property_trade_unique"),
            models.CheckConstraint(
                condition=models.Q(probability__gte=0, probability__lte=1),
                name="%(app_label)s_%(class)s_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.property_id} {self.trade_id}: {self.probability:.3f}"
