"""Leads: the quality filters that pick them, the do-not-contact list, the leads themselves and the
event history of each one."""

import builtins
import re

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q

from contractors.models import Contractor
from core.fields import ZIP_CODE_REGEX, WrittenJSONField
from scoring.models import Property, ScoringModel, Trade
from territories.models import Territory

_LOWER, _UPPER = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_UPPER = str.maketrans(_LOWER, _UPPER)


def suppression_value_normalize(value: str) -> str:
    """The form do-not-contact values are stored and matched in: a-z upper-cased, every run of other
    characters than A-Z and 0-9 one space, trimmed ("123 Main St." and "123  MAIN ST" match). Only
    ASCII letters change case, here and in SQL alike (SUPPRESSION_NORMALIZE_SQL, what generation applies
    to the property side): Python's and PostgreSQL's upper() disagree on letters such as "ß"."""
    return re.sub(r"[^A-Z0-9]+", " ", str(value).translate(_ASCII_UPPER)).strip()


# suppression_value_normalize in SQL, over the column expression in {}.
SUPPRESSION_NORMALIZE_SQL = f"btrim(regexp_replace(translate({{}}, '{_LOWER}', '{_UPPER}'), '[^A-Z0-9]+', ' ', 'g'))"


class LeadFilter(models.Model):
    """The quality filters of one trade: which of its scored properties may become leads each day."""

    trade = models.OneToOneField(Trade, on_delete=models.CASCADE, related_name="lead_filter")
    enabled = models.BooleanField(default=True, help_text="Generate leads for this trade.")
    min_score = models.FloatField(default=40, help_text="Lowest score (0-100) that makes a lead.")
    min_urgency = models.FloatField(null=True, blank=True, help_text="Lowest urgency (0-100); blank: any.")
    urgent_urgency = models.FloatField(
        null=True,
        blank=True,
        default=70,
        help_text="A lead with at least this urgency (0-100) is urgent: flagged in the API, the webhook and the "
        "emails, and emailed at once to a contractor without a webhook; blank: none is.",
    )
    owner_occupied_only = models.BooleanField(default=False, help_text="Only homes whose owner lives there.")
    property_types = ArrayField(
        models.CharField(max_length=16, choices=Property.Type.choices),
        default=list,
        blank=True,
        help_text="Property types that may become leads; empty: all.",
    )
    max_per_zip_per_day = models.PositiveIntegerField(
        default=25, null=True, blank=True, help_text="Most new leads per ZIP per day; blank: no limit."
    )
    cooldown_days = models.PositiveIntegerField(
        default=90, help_text="A property that had a lead for this trade in this many days (any outcome) gets none."
    )
    capacity_factor = models.FloatField(
        null=True,
        blank=True,
        default=1.5,
        help_text="Volume target: the owners' remaining capacity (caps) times this many leads a day in owned ZIPs, "
        "best first; blank: every property above the minimum score.",
    )
    pool_leads_per_day = models.PositiveIntegerField(
        default=50, help_text="Volume target: most new leads a day in ZIPs nobody owns (the pool staff sell from)."
    )
    uncapped_leads_per_zip = models.PositiveIntegerField(
        default=2, help_text="Volume target: the daily capacity counted per ZIP of an owner without caps."
    )
    exploration_share = models.FloatField(
        default=0,
        help_text="Share of the day's leads drawn at random from the candidates below the day's cut (whatever "
        "their score), so that learning sees outcomes beyond the model's top; 0: none, at most 0.5.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trade"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_score__gte=0, min_score__lte=100), name="%(app_label)s_%(class)s_min_score_range"
            ),
            models.CheckConstraint(
                condition=Q(min_urgency__isnull=True) | Q(min_urgency__gte=0, min_urgency__lte=100),
                name="%(app_label)s_%(class)s_min_urgency_range",
            ),
            models.CheckConstraint(
                condition=Q(urgent_urgency__isnull=True) | Q(urgent_urgency__gte=0, urgent_urgency__lte=100),
                name="%(app_label)s_%(class)s_urgent_urgency_range",
            ),
            models.CheckConstraint(
                condition=Q(max_per_zip_per_day__isnull=True) | Q(max_per_zip_per_day__gte=1),
                name="%(app_label)s_%(class)s_zip_limit_positive",
            ),
            models.CheckConstraint(
                condition=Q(capacity_factor__isnull=True) | Q(capacity_factor__gt=0),
                name="%(app_label)s_%(class)s_capacity_factor_positive",
            ),
            models.CheckConstraint(
                condition=Q(exploration_share__gte=0, exploration_share__lte=0.5),
                name="%(app_label)s_%(class)s_exploration_share_range",
            ),
            # At least a day, so that generating twice the same day never makes a second lead.
            models.CheckConstraint(condition=Q(cooldown_days__gte=1), name="%(app_label)s_%(class)s_cooldown_positive"),
        ]

    def __str__(self) -> str:
        return f"Lead filters for {self.trade}"


class Suppression(models.Model):
    """One do-not-contact entry: a parcel, an address (in one ZIP, or anywhere when the ZIP is blank)
    or an owner name that must never become a lead. `value` is stored normalized
    (suppression_value_normalize)."""

    class Kind(models.TextChoices):
        PARCEL = "parcel", "Parcel id"
        ADDRESS = "address", "Street address"
        OWNER = "owner", "Owner name"

    class Source(models.TextChoices):
        STAFF = "staff", "Entered by staff"
        IMPORT = "import", "Imported from CSV"
        API = "api", "Requested through the API"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=200)
    zip_code = models.CharField(max_length=5, blank=True, help_text="Addresses only: the ZIP; blank: any ZIP.")
    note = models.CharField(max_length=300, blank=True, help_text="Who asked, and how.")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.STAFF)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["kind", "value"]
        verbose_name = "do-not-contact entry"
        verbose_name_plural = "do-not-contact list"
        constraints = [
            # Also the index lead generation's anti-joins probe (kind, value).
            models.UniqueConstraint(fields=["kind", "value", "zip_code"], name="%(app_label)s_%(class)s_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=["parcel", "address", "owner"]), name="%(app_label)s_%(class)s_kind_valid"
            ),
            models.CheckConstraint(condition=~Q(value=""), name="%(app_label)s_%(class)s_value_given"),
            models.CheckConstraint(
                condition=Q(zip_code="") | Q(kind="address", zip_code__regex=ZIP_CODE_REGEX),
                name="%(app_label)s_%(class)s_zip_for_addresses",
            ),
        ]

    def __str__(self) -> str:
        where = f" ({self.zip_code})" if self.zip_code else ""
        return f"{self.get_kind_display()}: {self.value}{where}"


class LeadQuerySet(models.QuerySet["Lead"]):
    def return_waiting(self) -> "LeadQuerySet":
        """Leads whose return waits for staff: the rule of Lead.return_pending, as a filter."""
        return self.filter(return_requested_at__isnull=False, state__in=[Lead.State.DELIVERED, Lead.State.ACCEPTED])

    def webhook_failed(self) -> "LeadQuerySet":
        """Assigned leads whose webhook delivery for their current assignment was refused by the receiver
        or given up after the last retry: staff must look at them. A reassignment is a new delivery, so
        the flag is per assignment (attempts of the lead's current assigned_at) and clears by itself."""
        failed = WebhookAttempt.objects.filter(
            lead=models.OuterRef("pk"),
            assigned_at=models.OuterRef("assigned_at"),
            outcome__in=[WebhookAttempt.Outcome.GAVE_UP, WebhookAttempt.Outcome.REFUSED],
        )
        return self.filter(models.Exists(failed), state=Lead.State.ASSIGNED)


class Lead(models.Model):
    """A property offered to the contractor who owns its ZIP for a trade, from generation to its end.

    The score, urgency, model version and reasons are a snapshot of the property's score when the lead
    was made, so the contractor sees why it was made after the property is rescored. `zip_code` is the
    property's ZIP at generation: routing, the pool and caps work on it without reading properties.
    """

    class State(models.TextChoices):
        GENERATED = "generated", "Generated (unassigned)"
        ASSIGNED = "assigned", "Assigned"
        DELIVERED = "delivered", "Delivered"
        ACCEPTED = "accepted", "Accepted"
        CONVERTED = "converted", "Converted"
        REJECTED = "rejected", "Rejected"
        RETURNED = "returned", "Returned"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class ReturnReason(models.TextChoices):
        WRONG_CONTACT = "wrong_contact", "Wrong contact information"
        NOT_OWNER = "not_owner", "Not the owner"
        ALREADY_DONE = "already_done", "Work already done"
        OUT_OF_AREA = "out_of_area", "Out of area"
        DUPLICATE = "duplicate", "Duplicate"
        NOT_INTERESTED = "not_interested", "Homeowner not interested"
        OTHER = "other", "Other (see note)"

    OPEN = (State.GENERATED, State.ASSIGNED, State.DELIVERED, State.ACCEPTED)
    # Leads that do not use the cap slot they were assigned in: the contractor got nothing it could work.
    CAP_FREE = (State.RETURNED, State.WITHDRAWN)

    property = models.ForeignKey(Property, on_delete=models.PROTECT, db_index=False, related_name="leads")
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="leads")
    zip_code = models.CharField(max_length=5)
    state = models.CharField(max_length=10, choices=State.choices, default=State.GENERATED)
    contractor = models.ForeignKey(
        Contractor, on_delete=models.PROTECT, null=True, blank=True, db_index=False, related_name="leads"
    )
    score = models.FloatField()
    urgency = models.FloatField()
    priority = models.FloatField(help_text="The ranking value: see leads.ranking.")
    model = models.ForeignKey(ScoringModel, on_delete=models.PROTECT, related_name="+")
    model_version = models.PositiveIntegerField()
    reasons = WrittenJSONField(default=list)
    urgent = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Its urgency was at or above its trade's urgent threshold (LeadFilter.urgent_urgency) when it was "
        "made: told at once, not in the morning digest.",
    )
    exploration = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Drawn at random from below the trade's floor to learn from, not picked best first.",
    )
    sampling_weight = models.FloatField(
        default=1,
        db_default=1,
        help_text="1 / the chance the lead was drawn: 1 for leads picked best first; an exploration lead "
        "stands for the candidates below the day's cut it was drawn from. Evaluation weighs by it; learning "
        "counts it at most 5 times.",
    )
    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="What its contractor pays for it: the price list's price in force when it was assigned (a "
        "snapshot, kept when prices change); blank: unpriced (in the pool, or no price list of its trade then).",
    )
    generated_on = models.DateField(help_text="The business day (TIME_ZONE) the lead was generated.")
    created_at = models.DateTimeField()
    assigned_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    contacted_at = models.DateTimeField(
        null=True, blank=True, help_text="The last time the contractor reported contacting the homeowner."
    )
    converted_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When the lead reached a final state.")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the lead expires if nothing happens: pool time, or acceptance SLA."
    )
    job_value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    return_reason = models.CharField(max_length=16, choices=ReturnReason.choices, blank=True)
    return_note = models.CharField(max_length=500, blank=True)
    return_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="A return asked for and waiting for staff approval (or done)."
    )

    objects = LeadQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Cooldown and history of a property: (property, trade, created_at).
            models.Index(fields=["property", "trade", "created_at"], name="lead_property_history"),
            # A contractor's leads: by assignment time for cap counting; newest first and by score for its
            # list in the API, whose first page comes straight from the index instead of a sort of every
            # lead it holds (12,000 leads: 40 ms to 1-3 ms; bench/api.py). Partial: pool leads have no
            # contractor, so generation inserts into none of them (100,000 leads 6.4 s to 4.x s).
            models.Index(
                fields=["contractor", "assigned_at"],
                condition=Q(contractor__isnull=False),
                name="lead_contractor_assigned",
            ),
            models.Index(
                fields=["contractor", "-created_at", "-id"],
                condition=Q(contractor__isnull=False),
                name="lead_contractor_created",
            ),
            models.Index(
                fields=["contractor", "-score", "-id"],
                condition=Q(contractor__isnull=False),
                name="lead_contractor_score",
            ),
            # The unassigned pool by trade and ZIP (routing, coverage).
            models.Index(fields=["trade", "zip_code"], condition=Q(state="generated"), name="lead_pool"),
            # Per-ZIP daily limit of generation.
            models.Index(fields=["trade", "generated_on", "zip_code"], name="lead_generated_day"),
            # expire_leads' scan.
            models.Index(
                fields=["expires_at"], condition=Q(state__in=["generated", "assigned", "delivered"]), name="lead_due"
            ),
            # The webhook delivery scan (leads.services.webhooks): assigned leads, joined to their contractor.
            models.Index(fields=["contractor"], condition=Q(state="assigned"), name="lead_assigned"),
            # Returns waiting for staff (the dashboard's attention count, the list's filter): a handful of rows.
            models.Index(
                fields=["contractor"],
                condition=Q(return_requested_at__isnull=False, state__in=["delivered", "accepted"]),
                name="lead_return_waiting",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["property", "trade"],
                condition=Q(state__in=["generated", "assigned", "delivered", "accepted"]),
                name="%(app_label)s_%(class)s_one_open_per_property",
            ),
            models.CheckConstraint(
                condition=Q(
                    state__in=[
                        "generated",
                        "assigned",
                        "delivered",
                        "accepted",
                        "converted",
                        "rejected",
                        "returned",
                        "expired",
                        "withdrawn",
                    ]
                ),
                name="%(app_label)s_%(class)s_state_valid",
            ),
            # Every state past the pool belongs to a contractor; the pool belongs to none.
            models.CheckConstraint(
                condition=Q(state="generated", contractor__isnull=True, assigned_at__isnull=True)
                | Q(
                    state__in=["assigned", "delivered", "accepted", "converted", "rejected", "returned"],
                    contractor__isnull=False,
                    assigned_at__isnull=False,
                )
                | Q(state__in=["expired", "withdrawn"]),
                name="%(app_label)s_%(class)s_owner_matches_state",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["generated", "assigned", "delivered", "accepted"], closed_at__isnull=True)
                | Q(state__in=["converted", "rejected", "returned", "expired", "withdrawn"], closed_at__isnull=False),
                name="%(app_label)s_%(class)s_closed_when_final",
            ),
            models.CheckConstraint(
                condition=Q(job_value__isnull=True) | Q(state="converted", job_value__gte=0),
                name="%(app_label)s_%(class)s_job_value_on_conversion",
            ),
            models.CheckConstraint(
                condition=Q(score__gte=0, score__lte=100, urgency__gte=0, urgency__lte=100),
                name="%(app_label)s_%(class)s_score_range",
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gte=0, assigned_at__isnull=False),
                name="%(app_label)s_%(class)s_price_on_assignment",
            ),
            # 1 for a lead picked best first, pool / draws (at least 1) for an exploration lead; finite, so
            # evaluation and learning never meet a weight they must refuse (NaN sorts above Infinity here).
            models.CheckConstraint(
                condition=Q(sampling_weight__gte=1, sampling_weight__lt=float("inf")),
                name="%(app_label)s_%(class)s_sampling_weight_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Lead {self.pk} {self.trade} {self.zip_code} ({self.get_state_display().lower()})"

    # `property` is a field of this model, hence builtins.property.
    @builtins.property
    def return_pending(self) -> bool:
        """A return asked for and waiting for staff: only while the lead is still with the contractor."""
        return self.return_requested_at is not None and self.state in (self.State.DELIVERED, self.State.ACCEPTED)


class LeadEvent(models.Model):
    """One step in a lead's life: a move from one state to another (or, for requests that change no
    state, such as a return waiting for approval, the same state), who made it, and why. Written in
    the same transaction as the change, never edited."""

    class Actor(models.TextChoices):
        SYSTEM = "system", "System"
        STAFF = "staff", "Staff"
        CONTRACTOR = "contractor", "Contractor"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, db_index=False, related_name="events")
    action = models.CharField(max_length=20)
    from_state = models.CharField(max_length=10, blank=True, help_text="Blank for the event that made the lead.")
    to_state = models.CharField(max_length=10)
    actor = models.CharField(max_length=10, choices=Actor.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    contractor = models.ForeignKey(
        Contractor,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        help_text="The contractor holding the lead after the event.",
    )
    reason = models.CharField(max_length=300, blank=True)
    override = models.BooleanField(default=False, help_text="Staff overrode exclusivity or caps.")
    at = models.DateTimeField()

    class Meta:
        ordering = ["lead", "at", "id"]
        indexes = [
            models.Index(fields=["lead", "at"], name="lead_event_history"),
            # Events are written in time order, so a BRIN index finds a period's (reports, dashboard) in
            # a few pages at a fraction of a B-tree's size.
            BrinIndex(fields=["at"], name="lead_event_at"),
        ]

    def __str__(self) -> str:
        return f"{self.action}: {self.from_state or '-'} -> {self.to_state} at {self.at:%Y-%m-%d %H:%M}"


class WebhookAttempt(models.Model):
    """One POST of a lead to its contractor's webhook (leads.services.webhooks), for one assignment of the
    lead: `assigned_at` is the assignment's key, so a reassignment starts a new delivery with attempt 1.
    A row is written "in flight" before the POST and given its outcome after it; a row still in flight
    long after its time is a worker that died in between, and the next attempt reuses the same
    Idempotency-Key so the receiver can drop a duplicate."""

    class Outcome(models.TextChoices):
        IN_FLIGHT = "in_flight", "In flight"
        DELIVERED = "delivered", "Delivered"
        RETRY = "retry", "Failed, will retry"
        GAVE_UP = "gave_up", "Failed, gave up"
        REFUSED = "refused", "Refused by the receiver"

    FINAL = (Outcome.DELIVERED, Outcome.GAVE_UP, Outcome.REFUSED)

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, db_index=False, related_name="webhook_attempts")
    assigned_at = models.DateTimeField(help_text="The assignment this attempt delivers (the lead's assigned_at).")
    contractor = models.ForeignKey(
        Contractor, on_delete=models.PROTECT, db_index=False, related_name="+", help_text="Whom it was posted to."
    )
    number = models.PositiveSmallIntegerField(help_text="1 for the first attempt of the assignment.")
    at = models.DateTimeField()
    url = models.URLField(max_length=500)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.IN_FLIGHT)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Blank: no HTTP answer.")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    next_at = models.DateTimeField(null=True, blank=True, help_text="Retries only: when the next attempt is due.")

    class Meta:
        ordering = ["lead", "assigned_at", "number"]
        constraints = [
            # What makes a claim exclusive: two delivery jobs cannot both write attempt n of an assignment.
            # Also the index the due scan's lateral lookup of the last attempt uses.
            models.UniqueConstraint(
                fields=["lead", "assigned_at", "number"], name="%(app_label)s_%(class)s_one_per_number"
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="%(app_label)s_%(class)s_number_positive"),
            models.CheckConstraint(
                condition=Q(outcome__in=["in_flight", "delivered", "retry", "gave_up", "refused"]),
                name="%(app_label)s_%(class)s_outcome_valid",
            ),
            models.CheckConstraint(
                condition=Q(outcome="retry", next_at__isnull=False) | (~Q(outcome="retry") & Q(next_at__isnull=True)),
                name="%(app_label)s_%(class)s_next_at_on_retry",
            ),
        ]

    def __str__(self) -> str:
        code = f" {self.status_code}" if self.status_code is not None else ""
        return f"Webhook attempt {self.number} of lead {self.lead_id}:{code} {self.get_outcome_display().lower()}"


class PriceList(models.Model):
    """The lead prices of one trade from `effective_from` on, until the trade's next list takes over. A
    lead is priced by the list in force when it is assigned (leads.pricing); a list in force is never
    edited, so a new price is a new list and what any lead cost stays explainable."""

    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="price_lists")
    effective_from = models.DateTimeField(help_text="From when leads assigned are priced by this list.")
    exploration_free = models.BooleanField(
        default=True, help_text="Exploration leads (drawn to learn from, not picked best first) cost nothing."
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["trade", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["trade", "effective_from"], name="%(app_label)s_%(class)s_one_per_start"),
        ]

    def __str__(self) -> str:
        return f"{self.trade} prices from {self.effective_from:%Y-%m-%d %H:%M}"


class Price(models.Model):
    """One band of a price list: leads scoring at least `min_score` (up to the next band) cost `amount`;
    a band marked urgent prices urgent leads, which take the urgent bands when the list has one."""

    price_list = models.ForeignKey(PriceList, on_delete=models.CASCADE, related_name="prices")
    min_score = models.FloatField(default=0, help_text="Leads scoring at least this (0-100), up to the next band.")
    urgent = models.BooleanField(default=False, help_text="Prices urgent leads only.")
    amount = models.DecimalField(max_digits=10, decimal_places=2, help_text="The price of one lead; 0: free.")

    class Meta:
        ordering = ["price_list", "urgent", "min_score"]
        constraints = [
            models.UniqueConstraint(
                fields=["price_list", "min_score", "urgent"], name="%(app_label)s_%(class)s_one_per_band"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="%(app_label)s_%(class)s_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(min_score__gte=0, min_score__lte=100), name="%(app_label)s_%(class)s_min_score_range"
            ),
        ]

    def __str__(self) -> str:
        band = f"{'urgent, ' if self.urgent else ''}score {self.min_score:g}+"
        return f"{band}: {self.amount} {settings.CURRENCY}"


class TerritoryFee(models.Model):
    """One tier of a price list's monthly territory fees: a ZIP whose demand (coverage's figure: properties
    scoring at least 70 for the trade) is at least `min_demand`, up to the next tier, costs its owner
    `monthly` a month, prorated by the share of the month it was owned (leads.services.statements)."""

    price_list = models.ForeignKey(PriceList, on_delete=models.CASCADE, related_name="fees")
    min_demand = models.PositiveIntegerField(default=0, help_text="ZIPs with at least this demand, to the next tier.")
    monthly = models.DecimalField(max_digits=10, decimal_places=2, help_text="The fee of a whole month; 0: none.")

    class Meta:
        ordering = ["price_list", "min_demand"]
        constraints = [
            models.UniqueConstraint(fields=["price_list", "min_demand"], name="%(app_label)s_%(class)s_one_per_tier"),
            models.CheckConstraint(condition=Q(monthly__gte=0), name="%(app_label)s_%(class)s_monthly_not_negative"),
        ]

    def __str__(self) -> str:
        return f"demand {self.min_demand}+: {self.monthly} {settings.CURRENCY} a month"


class LedgerEntry(models.Model):
    """One line of a contractor's account, never changed or deleted (a trigger refuses both, migration
    0012_money): a correction is a new entry. `amount` is what the entry adds to what the contractor owes:
    positive for a lead charge or a territory fee, negative for a credit or a payment, either for an
    adjustment. The balance is the sum of a contractor's entries."""

    class Kind(models.TextChoices):
        LEAD_CHARGE = "lead_charge", "Lead charge"
        LEAD_CREDIT = "lead_credit", "Lead credit (returned or withdrawn)"
        TERRITORY_FEE = "territory_fee", "Territory fee"
        PAYMENT = "payment", "Payment"
        ADJUSTMENT = "adjustment", "Adjustment"

    # Indexed by ledger_contractor_at (contractor, at); the other references are indexed only where read.
    contractor = models.ForeignKey(Contractor, on_delete=models.PROTECT, db_index=False, related_name="ledger_entries")
    kind = models.CharField(max_length=13, choices=Kind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    at = models.DateTimeField()
    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries")
    assigned_at = models.DateTimeField(
        null=True, blank=True, help_text="Lead charges: the assignment charged (the lead's assigned_at then)."
    )
    reverses = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="reversed_by",
        help_text="Lead credits: the charge it gives back (at most one credit a charge).",
    )
    territory = models.ForeignKey(
        Territory,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        help_text="Territory fees.",
    )
    period = models.DateField(null=True, blank=True, help_text="Territory fees: the month charged (its first day).")
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, db_index=False, related_name="+"
    )

    class Meta:
        ordering = ["contractor", "at", "id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["contractor", "at"], name="ledger_contractor_at"),
            # Staff's own entries (a user deleted sets them to NULL); charges and credits have none.
            models.Index(fields=["created_by"], condition=Q(created_by__isnull=False), name="ledger_created_by"),
        ]
        constraints = [
            # A lead is charged at most once per assignment.
            models.UniqueConstraint(
                fields=["lead", "assigned_at"],
                condition=Q(kind="lead_charge"),
                name="%(app_label)s_%(class)s_one_charge_per_assignment",
            ),
            # A charge is given back at most once.
            models.UniqueConstraint(
                fields=["reverses"],
                condition=Q(reverses__isnull=False),
                name="%(app_label)s_%(class)s_one_credit_per_charge",
            ),
            # A territory is charged at most once a month.
            models.UniqueConstraint(
                fields=["territory", "period"],
                condition=Q(kind="territory_fee"),
                name="%(app_label)s_%(class)s_one_fee_per_month",
            ),
            # Each kind its sign and what it names.
            models.CheckConstraint(
                condition=Q(
                    kind="lead_charge",
                    amount__gte=0,
                    lead__isnull=False,
                    assigned_at__isnull=False,
                    reverses__isnull=True,
                )
                | Q(
                    kind="lead_credit",
                    amount__lte=0,
                    lead__isnull=False,
                    assigned_at__isnull=True,
                    reverses__isnull=False,
                )
                | Q(
                    kind="territory_fee",
                    amount__gte=0,
                    lead__isnull=True,
                    reverses__isnull=True,
                    territory__isnull=False,
                    period__day=1,
                )
                | Q(kind="payment", amount__lt=0, lead__isnull=True, reverses__isnull=True)
                | (Q(kind="adjustment", lead__isnull=True, reverses__isnull=True) & ~Q(amount=0) & ~Q(note="")),
                name="%(app_label)s_%(class)s_kind_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {settings.CURRENCY} ({self.contractor})"


class Statement(models.Model):
    """A contractor's month, closed once (leads.services.statements.month_close): the balance it opened
    with, what the month's ledger entries of each kind added (in its time zone's month), and the balance it
    closed with, which the database checks adds up. Never changed once written."""

    contractor = models.ForeignKey(Contractor, on_delete=models.PROTECT, related_name="statements")
    month = models.DateField(help_text="The month, as its first day.")
    opening_balance = models.DecimalField(max_digits=12, decimal_places=2)
    lead_charges = models.DecimalField(max_digits=12, decimal_places=2)
    lead_credits = models.DecimalField(max_digits=12, decimal_places=2)
    territory_fees = models.DecimalField(max_digits=12, decimal_places=2)
    payments = models.DecimalField(max_digits=12, decimal_places=2)
    adjustments = models.DecimalField(max_digits=12, decimal_places=2)
    closing_balance = models.DecimalField(max_digits=12, decimal_places=2)
    leads_charged = models.PositiveIntegerField(help_text="Lead charges of the month.")
    by_trade = models.JSONField(
        default=dict, help_text='Per trade slug: {"leads": n, "charged": "0.00", "credited": "0.00", "fees": "0.00"}.'
    )
    closed_at = models.DateTimeField()

    class Meta:
        ordering = ["-month", "contractor"]
        constraints = [
            models.UniqueConstraint(fields=["contractor", "month"], name="%(app_label)s_%(class)s_one_per_month"),
            models.CheckConstraint(condition=Q(month__day=1), name="%(app_label)s_%(class)s_month_first_day"),
            models.CheckConstraint(
                condition=Q(
                    closing_balance=models.F("opening_balance")
                    + models.F("lead_charges")
                    + models.F("lead_credits")
                    + models.F("territory_fees")
                    + models.F("payments")
                    + models.F("adjustments")
                ),
                name="%(app_label)s_%(class)s_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contractor}, {self.month:%B %Y}"
