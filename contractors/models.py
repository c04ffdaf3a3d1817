"""Contractors who buy exclusive territories and receive leads: their trades, users, API keys and status."""

import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from scoring.models import Trade


def default_time_zone() -> str:
    return settings.TIME_ZONE


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone such as America/Denver") from None


def validate_webhook_target(value: str) -> None:
    """Only a URL leads may be posted to: https, public addresses (contractors.services.webhook_targets)."""
    # Imported here: the services import the models.
    from contractors.services.webhook_targets import validate_webhook_url

    validate_webhook_url(value)


def webhook_secret_new() -> str:
    return secrets.token_urlsafe(32)


class ContractorQuerySet(models.QuerySet["Contractor"]):
    def receiving_assignments(self) -> "ContractorQuerySet":
        """Contractors that new territories (waitlist offers) and new leads may go to: active ones only."""
        return self.filter(status=Contractor.Status.ACTIVE)

    def serving(self, trade: Trade) -> "ContractorQuerySet":
        return self.filter(contractor_trades__trade=trade)


class Contractor(models.Model):
    """A home-improvement company that buys exclusive territories (ZIP x trade) and receives their leads.

    Status: active contractors get new assignments; paused ones keep their territories and API access
    but get nothing new; suspended ones also lose API access. Nothing is released automatically.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused (no new assignments)"
        SUSPENDED = "suspended", "Suspended (no new assignments, no API access)"

    class Billing(models.TextChoices):
        ARREARS = "arrears", "Billed in arrears"
        PREPAID = "prepaid", "Prepaid, with a credit limit"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    trades = models.ManyToManyField(Trade, through="ContractorTrade", related_name="contractors", blank=True)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=32, blank=True)
    is_demo = models.BooleanField(
        default=False, help_text="Made by the demo seeding; the demo commands act on demo contractors only."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(
        max_length=300, blank=True, help_text="Why the contractor is paused or suspended; API clients see it."
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    daily_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most leads per day in the contractor's time zone; blank: no cap."
    )
    weekly_cap = models.PositiveIntegerField(null=True, blank=True, help_text="Most leads per week; blank: no cap.")
    monthly_cap = models.PositiveIntegerField(null=True, blank=True, help_text="Most leads per month; blank: no cap.")
    time_zone = models.CharField(max_length=64, default=default_time_zone, validators=[validate_time_zone])
    billing = models.CharField(
        max_length=8,
        choices=Billing.choices,
        default=Billing.ARREARS,
        help_text="Billed in arrears (pays its statements) or prepaid (takes leads only while its balance allows).",
    )
    credit_limit = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=0,
        help_text="Prepaid only: how much it may owe at most; routing holds back a lead whose price would go past it. "
        "0: only what it has paid in advance.",
    )
    webhook_url = models.URLField(
        blank=True,
        validators=[validate_webhook_target],
        help_text="Where new leads are posted (https, a public address); blank: leads are pulled by API.",
    )
    # Kept in clear: it signs the webhook bodies (HMAC), so LeadEngine must be able to read it.
    webhook_secret = models.CharField(max_length=64, default=webhook_secret_new, editable=False)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ContractorQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "paused", "suspended"]), name="%(app_label)s_%(class)s_status_valid"
            ),
            # A cap of 0 would be a pause in disguise; pausing says so and is audited.
            models.CheckConstraint(
                condition=(Q(daily_cap__isnull=True) | Q(daily_cap__gte=1))
                & (Q(weekly_cap__isnull=True) | Q(weekly_cap__gte=1))
                & (Q(monthly_cap__isnull=True) | Q(monthly_cap__gte=1)),
                name="%(app_label)s_%(class)s_caps_positive",
            ),
            models.CheckConstraint(
                condition=(Q(daily_cap__isnull=True) | Q(weekly_cap__isnull=True) | Q(daily_cap__lte=F("weekly_cap")))
                & (Q(weekly_cap__isnull=True) | Q(monthly_cap__isnull=True) | Q(weekly_cap__lte=F("monthly_cap")))
                & (Q(daily_cap__isnull=True) | Q(monthly_cap__isnull=True) | Q(daily_cap__lte=F("monthly_cap"))),
                name="%(app_label)s_%(class)s_caps_ordered",
            ),
            models.CheckConstraint(
                condition=Q(billing__in=["arrears", "prepaid"], credit_limit__gte=0),
                name="%(app_label)s_%(class)s_billing_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ContractorTrade(models.Model):
    """A trade a contractor serves. Territories reference this row (territories' owner_serves_trade
    foreign key), so a contractor cannot own a territory of a trade it does not serve, nor stop serving
    a trade while it owns territories of it."""

    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, related_name="contractor_trades")
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="contractor_trades")

    class Meta:
        ordering = ["contractor", "trade"]
        constraints = [
            # Also the key that territories_territory_owner_serves_trade references.
            models.UniqueConstraint(fields=["contractor", "trade"], name="%(app_label)s_%(class)s_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.contractor} serves {self.trade}"


class ContractorStatusChange(models.Model):
    """One change of a contractor's status (pause, resume, suspend, reinstate): who, when and why."""

    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=10, choices=Contractor.Status.choices)
    to_status = models.CharField(max_length=10, choices=Contractor.Status.choices)
    reason = models.CharField(max_length=300, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_status=F("to_status")), name="%(app_label)s_%(class)s_changes_something"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contractor}: {self.from_status} -> {self.to_status} at {self.changed_at:%Y-%m-%d %H:%M}"


class Membership(models.Model):
    """A user who acts for a contractor (a contractor can have several). A user belongs to at most one
    contractor; staff users belong to none (services.contractor_member_add refuses them)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contractor_membership"
    )
    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["contractor", "user"]

    def __str__(self) -> str:
        return f"{self.user} at {self.contractor}"

    def clean(self) -> None:
        if self.user_id is not None and self.user.is_staff:
            raise ValidationError({"user": "Staff users belong to no contractor."})


class ApiKey(models.Model):
    """A key that calls the API: a contractor's systems' (`contractor`), or a staff user's own
    (`user`), which acts as that user. Exactly one owner (the one_owner constraint). Only the SHA-256 of
    the key is stored; the key is shown once when it is created. `prefix` (the key's first characters)
    tells keys apart."""

    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys")
    # A staff user's own key: it authenticates as the user, so it is refused once they leave staff.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True, help_text='What the key is for, e.g. "CRM sync".')
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["contractor", "user", "-created_at"]
        verbose_name = "API key"
        constraints = [
            # The lookup index of every authenticated request.
            models.UniqueConstraint(fields=["key_hash"], name="%(app_label)s_%(class)s_hash_unique"),
            # A hex digest, so a raw key (which starts with its "le_" prefix) can never be stored here.
            models.CheckConstraint(
                condition=Q(key_hash__regex=r"^[0-9a-f]{64}$"), name="%(app_label)s_%(class)s_hash_is_sha256"
            ),
            # A contractor's key or a staff user's, never both (a user key acting for a contractor) nor none.
            models.CheckConstraint(
                condition=Q(contractor__isnull=False, user__isnull=True)
                | Q(contractor__isnull=True, user__isnull=False),
                name="%(app_label)s_%(class)s_one_owner",
            ),
        ]

    def __str__(self) -> str:
        label = f"{self.prefix}… {self.name}".strip()
        label = f"{label} ({self.owner})"
        return f"{label} (revoked)" if self.revoked_at else label

    @property
    def owner(self):
        """The contractor or the staff user whose key this is."""
        return self.contractor if self.contractor_id is not None else self.user

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ContractorNotice(models.Model):
    """An event told to one contractor by one channel: a signed webhook POST of the event (type and
    payload) to its webhook URL, or an email to its contact address. The outbox of everything the
    contractor is told besides its assigned leads (leads.WebhookAttempt): written in the same
    transaction as the change it reports (contractors.services.notices), so a change that commits is
    told and one rolled back is not, then sent by the "Webhook delivery" job (and an email at once after
    the commit). `state` and `next_at` make the claim: a run locks due rows with SKIP LOCKED and marks
    them in flight until `next_at`, past which a row still in flight is a worker that died mid-send and
    is sent again with the same key (the webhook's Idempotency-Key)."""

    class Channel(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        EMAIL = "email", "Email"

    class Event(models.TextChoices):
        TERRITORY_OFFERED = "territory.offered", "Territory offered (waitlist)"
        TERRITORY_ASSIGNED = "territory.assigned", "Territory assigned (waitlist auto-claim)"
        LEAD_WITHDRAWN = "lead.withdrawn", "Lead withdrawn"
        BALANCE_HELD = "balance.held", "Leads held back for balance (prepaid)"
        CLAIM_APPROVED = "claim.approved", "Claim request approved"
        CLAIM_DENIED = "claim.denied", "Claim request denied"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "In flight"
        RETRY = "retry", "Failed, will retry"
        DELIVERED = "delivered", "Delivered"
        GAVE_UP = "gave_up", "Failed, gave up"
        REFUSED = "refused", "Refused"

    DUE = (State.PENDING, State.RETRY, State.IN_FLIGHT)  # with next_at come: what a run sends

    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, db_index=False, related_name="notices")
    channel = models.CharField(max_length=7, choices=Channel.choices)
    event = models.CharField(max_length=20, choices=Event.choices)
    payload = models.JSONField(help_text="The event's fields, as posted (after its type) and as the email says.")
    key = models.CharField(
        max_length=100, help_text="The event's own key: the same on every attempt (the webhook's Idempotency-Key)."
    )
    created_at = models.DateTimeField()
    state = models.CharField(max_length=9, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_at = models.DateTimeField(
        null=True, blank=True, help_text="While not final: when it is due (in flight: when it counts as stale)."
    )
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When it was delivered.")
    target = models.CharField(
        max_length=500, blank=True, help_text="Where the last attempt went: the webhook URL or the email address."
    )
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Blank: no HTTP answer.")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The delivery run's scan of due notices.
            models.Index(
                fields=["next_at"], condition=Q(state__in=["pending", "retry", "in_flight"]), name="notice_due"
            ),
            models.Index(fields=["contractor", "-created_at"], name="notice_contractor"),
        ]
        constraints = [
            # One notice per event and channel: recording an event twice is refused, and the key stays the
            # receiver's way of dropping a repeated POST.
            models.UniqueConstraint(fields=["key", "channel"], name="%(app_label)s_%(class)s_one_per_event"),
            models.CheckConstraint(
                condition=Q(channel__in=["webhook", "email"]), name="%(app_label)s_%(class)s_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(
                    event__in=[
                        "territory.offered",
                        "territory.assigned",
                        "lead.withdrawn",
                        "balance.held",
                        "claim.approved",
                        "claim.denied",
                    ]
                ),
                name="%(app_label)s_%(class)s_event_valid",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "in_flight", "retry"], next_at__isnull=False)
                | Q(state__in=["delivered", "gave_up", "refused"], next_at__isnull=True),
                name="%(app_label)s_%(class)s_next_at_while_open",
            ),
            models.CheckConstraint(
                condition=Q(state="delivered", sent_at__isnull=False)
                | (~Q(state="delivered") & Q(sent_at__isnull=True)),
                name="%(app_label)s_%(class)s_sent_at_when_delivered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.contractor} by {self.channel} ({self.get_state_display().lower()})"
