"""The demo market's hidden truth: what the demo homeowners will really do. Demo-only storage.

No scoring, lead, territory, contractor, core or operations code reads it (the import contract
"hidden-truth" in pyproject.toml holds that): the models must learn it from outcomes, as they would in
a real market. demo/truth.py draws it and reads it.
"""

from django.db import models

from leads.models import Lead
from scoring.models import Property, Trade


class HiddenTruth(models.Model):
    """Per property and trade: the static part of the log-odds that the owner buys from the trade in the
    next 90 days, drawn by seed_demo from a generative model that is not any scoring model
    (demo/truth.py). `seen_logit` comes from facts the scoring models can see, `unseen_logit` from what
    they cannot (the household's income, plans to move, taste: noise to them). The time-varying part
    (storms, a recent sale) is added for a given day from the property's features as of that day."""

    property = models.ForeignKey(
        Property, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+"
    )
    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, db_index=False, related_name="+")
    seen_logit = models.FloatField(help_text="The static log-odds from what the scoring models can see.")
    unseen_logit = models.FloatField(help_text="The static log-odds from what the scoring models cannot see.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["property", "trade"], name="%(app_label)s_%(class)s_property_trade_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.property_id} {self.trade_id}: {self.seen_logit + self.unseen_logit:.2f}"


class TruthDraw(models.Model):
    """The hidden truth a demo lead's outcome was drawn from (simulate_days): the probability of a sale
    on the lead's day, and its log-odds without the unseen part (what the best model of the visible
    facts could know). Benchmarks compare the truth's and that oracle's discrimination on the same leads."""

    lead = models.OneToOneField(Lead, on_delete=models.CASCADE, primary_key=True, related_name="+")
    probability = models.FloatField()
    seen_logit = models.FloatField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(probability__gte=0, probability__lte=1),
                name="%(app_label)s_%(class)s_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return f"lead {self.lead_id}: {self.probability:.3f}"
