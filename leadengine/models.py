from django.conf import settings
from django.db import models
from django.db.models import Q

from scoring.models import Trade


class JobRun(models.Model):
    """One run of a background job (leadengine.services.jobs.JOBS), for a trade or, for jobs that cover
    every trade, for none: who asked for it (none: a schedule), when it started and ended, what it did
    (`counts`) and why it failed. At most one run of a job per trade is waiting or running at a time. A
    "missed" run is a scheduled run beat could not hand to the broker: it records the miss and its reason,
    and one catch-up run follows once the broker is back."""

    class Job(models.TextChoices):
        SCORING = "scoring", "Score every property"
        LEAD_GENERATION = "lead_generation", "Generate and route leads"
        LEAD_EXPIRY = "lead_expiry", "Expire overdue leads"
        OFFER_EXPIRY = "offer_expiry", "Expire waitlist offers"
        WEBHOOK_DELIVERY = "webhook_delivery", "Deliver leads by webhook"
        EMAIL_DIGEST = "email_digest", "Email new leads to contractors without a webhook"
        DAILY_REPORT = "daily_report", "Email the daily report"
        OVERDUE_CHECK = "overdue_check", "Check for overdue jobs"
        EVALUATION = "evaluation", "Evaluate lead quality"
        URGENT_EMAIL = "urgent_email", "Email urgent leads to contractors without a webhook"
        NIGHTLY_RUN = "nightly_run", "Nightly run: score, then make and route leads, per trade"
        MONTH_CLOSE = "month_close", "Close last month's statements (territory fees, balances)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        MISSED = "missed", "Missed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    PER_TRADE = (Job.SCORING, Job.LEAD_GENERATION)

    job = models.CharField(max_length=20, choices=Job.choices)
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queued_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True, help_text="What the run did, e.g. leads generated.")
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last handed to the broker (none: not yet; it was down)."
    )
    requeues = models.PositiveSmallIntegerField(
        default=0, help_text="How many times the recovery sweep sent it again: its message was lost or its worker died."
    )
    task_id = models.CharField(
        max_length=64, blank=True, default="", help_text="The Celery task that recorded it (a scheduled run)."
    )
    # The nightly chain (leadengine/services/chains.py): a step's nightly run, and the runs that wait rather
    # than hold a worker: a scoring step while its partitions are scored on the workers, a nightly run while
    # its chains go on.
    chain = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="steps",
        help_text="The nightly run this run is a step of (none: a run of its own).",
    )  # fmt: skip
    scoring_run = models.ForeignKey(
        "scoring.ScoringRun", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="A scoring job's scoring run, whose partitions the workers score.",
    )  # fmt: skip
    waiting = models.BooleanField(
        default=False,
        help_text="Running without a worker of its own: it ends when its scoring run closes (a scoring job) or "
        "its chains end (a nightly run).",
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            # A second request for a job already waiting or running is refused, whatever process asks.
            models.UniqueConstraint(
                fields=["job", "trade"],
                condition=Q(status__in=["queued", "running"]),
                nulls_distinct=False,  # a job of every trade (no trade) is one line too
                name="%(app_label)s_%(class)s_one_active_per_trade",
            ),
            models.CheckConstraint(
                condition=Q(job__in=["scoring", "lead_generation"], trade__isnull=False)
                | (~Q(job__in=["scoring", "lead_generation"]) & Q(trade__isnull=True)),
                name="%(app_label)s_%(class)s_trade_when_per_trade",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "missed"], started_at__isnull=True)
                | Q(status__in=["running", "succeeded", "failed", "skipped"], started_at__isnull=False)
                | Q(status="failed", started_at__isnull=True),
                name="%(app_label)s_%(class)s_started_when_run",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running"], finished_at__isnull=True)
                | Q(status__in=["succeeded", "failed", "skipped", "missed"], finished_at__isnull=False),
                name="%(app_label)s_%(class)s_finished_when_closed",
            ),
            models.CheckConstraint(
                condition=Q(waiting=False) | Q(status="running"), name="%(app_label)s_%(class)s_waiting_when_running"
            ),
        ]
        indexes = [
            # The runs the recovery sweep moves on (leadengine.services.chains.chains_recover).
            models.Index(fields=["job"], condition=Q(waiting=True), name="leadengine_jobrun_waiting"),
            # A redelivered scheduled task finds the run it already recorded (job_run_scheduled).
            models.Index(fields=["task_id"], condition=~Q(task_id=""), name="leadengine_jobrun_task_id"),
            # The missed runs still waiting for their catch-up (leadengine.services.recovery.jobs_missed_catch_up).
            models.Index(
                fields=["job", "trade", "queued_at"], condition=Q(status="missed"), name="leadengine_jobrun_missed"
            ),
        ]

    def __str__(self) -> str:
        scope = f" for {self.trade}" if self.trade_id else ""
        return f"{self.get_job_display()}{scope} #{self.pk}: {self.get_status_display().lower()}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
