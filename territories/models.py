"""Exclusive territories (ZIP x trade) owned by contractors, their history, and the waitlist for them."""

import datetime as dt

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q

from contractors.models import Contractor
from scoring.models import Trade, ZipCode


class TerritoryQuerySet(models.QuerySet["Territory"]):
    def active(self) -> "TerritoryQuerySet":
        return self.filter(ended_at__isnull=True)


class Territory(models.Model):
    """One period of ownership: `contractor` owned (`zip_code`, `trade`) from `started_at` until
    `ended_at` (still owns it while that is empty). Rows are never deleted or reopened, so the table is
    the history of who owned what, when, and why it started and ended.

    At most one active row per (ZIP, trade): the partial unique constraint one_active_owner. An active
    row's (contractor, trade) must be a trade the contractor serves: the composite foreign key
    territories_territory_owner_serves_trade (migration 0001) from (contractor_id, active_trade_id) to
    contractors_contractortrade; `active_trade_id` is NULL on ended rows, so history is not checked.
    """

    class StartReason(models.TextChoices):
        CLAIM = "claim", "Claimed"
        TRANSFER = "transfer", "Transferred in"
        WAITLIST = "waitlist", "From the waitlist"

    class EndReason(models.TextChoices):
        RELEASE = "release", "Released"
        TRANSFER = "transfer", "Transferred out"

    zip_code = models.ForeignKey(ZipCode, on_delete=models.PROTECT, db_column="zip_code", related_name="+")
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="territories")
    contractor = models.ForeignKey(Contractor, on_delete=models.PROTECT, related_name="territories")
    started_at = models.DateTimeField()
    start_reason = models.CharField(max_length=10, choices=StartReason.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=10, choices=EndReason.choices, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    start_note = models.CharField(max_length=300, blank=True, help_text="Why the ownership started.")
    end_note = models.CharField(max_length=300, blank=True, help_text="Why the ownership ended.")
    active_trade_id = models.GeneratedField(
        expression=models.Case(models.When(ended_at__isnull=True, then=F("trade_id"))),
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
        help_text="trade_id while active, NULL once ended: what the owner-serves-trade foreign key checks.",
    )

    objects = TerritoryQuerySet.as_manager()

    class Meta:
        ordering = ["zip_code", "trade", "-started_at"]
        verbose_name_plural = "territories"
        indexes = [
            # A contractor's territories (admin inline, its API list); the unique index below serves ZIP lookups.
            models.Index(
                fields=["contractor", "trade"], condition=Q(ended_at__isnull=True), name="territory_owner_active"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["zip_code", "trade"],
                condition=Q(ended_at__isnull=True),
                name="%(app_label)s_%(class)s_one_active_owner",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True, end_reason="")
                | Q(ended_at__isnull=False, ended_at__gte=F("started_at"), end_reason__in=["release", "transfer"]),
                name="%(app_label)s_%(class)s_end_consistent",
            ),
            models.CheckConstraint(
                condition=Q(start_reason__in=["claim", "transfer", "waitlist"]),
                name="%(app_label)s_%(class)s_start_reason_valid",
            ),
        ]

    def __str__(self) -> str:
        period = "since" if self.ended_at is None else "until"
        when = self.started_at if self.ended_at is None else self.ended_at
        return f"{self.zip_code_id} {self.trade}: {self.contractor} ({period} {when:%Y-%m-%d})"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class WaitlistEntry(models.Model):
    """A contractor's place in line for a (ZIP, trade) someone else owns. When the territory is
    released, the first eligible entry by `joined_at` gets an offer (or the territory itself, per
    TERRITORY_WAITLIST_AUTO_CLAIM); an offer lapses at `offer_expires_at`."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        OFFERED = "offered", "Offered"
        CLAIMED = "claimed", "Claimed"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Offer expired"
        WITHDRAWN = "withdrawn", "Withdrawn"

    OPEN = (Status.WAITING, Status.OFFERED)

    zip_code = models.ForeignKey(ZipCode, on_delete=models.PROTECT, db_column="zip_code", related_name="+")
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="waitlist_entries")
    contractor = models.ForeignKey(Contractor, on_delete=models.CASCADE, related_name="waitlist_entries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    joined_at = models.DateTimeField()
    offered_at = models.DateTimeField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When the entry stopped waiting.")
    territory = models.ForeignKey(
        Territory, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="What it claimed."
    )

    class Meta:
        ordering = ["zip_code", "trade", "joined_at", "id"]
        verbose_name = "waitlist entry"
        verbose_name_plural = "waitlist"
        indexes = [
            # The line for a (ZIP, trade), in order.
            models.Index(
                fields=["zip_code", "trade", "joined_at", "id"],
                condition=Q(status__in=["waiting", "offered"]),
                name="waitlist_open_line",
            ),
            # territory_offers_expire's scan.
            models.Index(fields=["offer_expires_at"], condition=Q(status="offered"), name="waitlist_offers_due"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["zip_code", "trade", "contractor"],
                condition=Q(status__in=["waiting", "offered"]),
                name="%(app_label)s_%(class)s_one_open_per_contractor",
            ),
            models.UniqueConstraint(
                fields=["zip_code", "trade"],
                condition=Q(status="offered"),
                name="%(app_label)s_%(class)s_one_offer_per_territory",
            ),
            models.CheckConstraint(
                condition=Q(status="waiting", offered_at__isnull=True, closed_at__isnull=True)
                | Q(status="offered", offer_expires_at__gt=F("offered_at"), closed_at__isnull=True)
                | Q(status__in=["claimed", "declined", "expired", "withdrawn"], closed_at__isnull=False),
                name="%(app_label)s_%(class)s_status_consistent",
            ),
            models.CheckConstraint(
                condition=Q(status="claimed", territory__isnull=False)
                | (~Q(status="claimed") & Q(territory__isnull=True)),
                name="%(app_label)s_%(class)s_claim_names_territory",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contractor} for {self.zip_code_id} {self.trade} ({self.get_status_display().lower()})"

    def offer_open(self, now: dt.datetime) -> bool:
        """An offer the contractor may still take at `now`: offered and not past its expiry."""
        return self.status == self.Status.OFFERED and self.offer_expires_at is not None and self.offer_expires_at > now


class SelfService(models.Model):
    """Whether contractors may claim territories of a trade themselves through the API, and how many: a
    claim that keeps the contractor within `zip_limit` active territories of the trade is made at once;
    any other claim of a contractor becomes a ClaimRequest for staff to approve or deny. A trade without
    a row is not open for self-service."""

    trade = models.OneToOneField(Trade, on_delete=models.CASCADE, related_name="self_service")
    enabled = models.BooleanField(default=False, help_text="Contractors may claim free ZIPs of this trade at once.")
    zip_limit = models.PositiveIntegerField(
        default=10,
        help_text="Most active territories of this trade a contractor may hold through self-service; a claim "
        "past it waits for staff.",
    )

    class Meta:
        ordering = ["trade"]
        verbose_name = "self-service claims"
        verbose_name_plural = "self-service claims"
        constraints = [
            models.CheckConstraint(condition=Q(zip_limit__gte=1), name="%(app_label)s_%(class)s_zip_limit_positive")
        ]

    def __str__(self) -> str:
        return f"{self.trade}: {'open, up to ' + str(self.zip_limit) + ' ZIPs' if self.enabled else 'closed'}"


class ClaimRequest(models.Model):
    """A contractor's claim of ZIPs for a trade that waits for staff: approved, it claims them all through
    the claim service (exclusivity stays the database's), or none when one has been taken meanwhile."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for staff"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        WITHDRAWN = "withdrawn", "Withdrawn"

    contractor = models.ForeignKey(Contractor, on_delete=models.PROTECT, related_name="claim_requests")
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="claim_requests")
    zip_codes = ArrayField(models.CharField(max_length=5), help_text="All of them, or none.")
    note = models.CharField(max_length=300, blank=True, help_text="The contractor's words.")
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decision_note = models.CharField(max_length=300, blank=True, help_text="Why; the contractor sees it.")

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["trade", "requested_at"], condition=Q(status="pending"), name="claim_request_pending")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | Q(status__in=["approved", "denied", "withdrawn"], decided_at__isnull=False),
                name="%(app_label)s_%(class)s_decided_consistent",
            ),
            models.CheckConstraint(condition=Q(zip_codes__len__gte=1), name="%(app_label)s_%(class)s_zip_codes_given"),
        ]

    def __str__(self) -> str:
        count = len(self.zip_codes)
        return f"Claim request {self.pk}: {self.contractor}, {count} {self.trade} ZIP{'s' if count != 1 else ''}"
