"""Scoring runs and the current scores they write: read here, never edited."""

from django.contrib import admin

from core.admin import BigTableAdmin
from scoring.models import Score, ScoringPartition, ScoringRun


class ScoringPartitionInline(admin.TabularInline):
    model = ScoringPartition
    extra = 0
    can_delete = False
    fields = ["number", "first_id", "last_id", "status", "properties_scored", "scores_changed", "attempts", "error"]
    readonly_fields = fields
    ordering = ["number"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    """Runs are made by `manage.py score` and the schedules; staff read them here."""

    list_display = ["id", "trade", "kind", "model", "challenger", "status", "as_of", "properties_scored",
                    "scores_changed", "duration", "median_score", "started_at"]  # fmt: skip
    list_filter = ["status", "kind", "trade", "distributed"]
    list_select_related = ["trade", "model", "model__trade", "challenger", "challenger__trade"]
    date_hierarchy = "started_at"
    inlines = [ScoringPartitionInline]
    readonly_fields = [
        *("trade", "kind", "cause", "model", "challenger", "status", "distributed", "as_of", "partitions"),
        "properties_scored",
        *("scores_changed", "distribution", "shadow_distribution", "error", "started_at", "heartbeat_at"),
        "finished_at",
    ]

    @admin.display(description="Seconds")
    def duration(self, run: ScoringRun) -> str:
        return "" if run.duration_seconds is None else f"{run.duration_seconds:.1f}"

    @admin.display(description="Median score")
    def median_score(self, run: ScoringRun):
        return run.distribution.get("p50", "")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Score)
class ScoreAdmin(BigTableAdmin):
    """Current scores, written by runs and by rescoring (the properties' Rescore action, `score --property`)."""

    list_display = ["property", "trade", "score", "urgency", "model", "reason_texts", "scored_at"]
    list_filter = ["trade"]
    list_select_related = ["property", "trade", "model", "model__trade"]
    raw_id_fields = ["property"]
    search_fields = ["property__parcel_id__exact"]
    # Newest first by id rather than by score: no index holds the scores in order (score_trade_band holds
    # each trade's bands), so ordering by score would sort every current score on each page load.
    ordering = ["-id"]
    readonly_fields = ["property", "trade", "model", "score", "urgency", "reasons", "scored_at", "digest"]

    @admin.display(description="Why")
    def reason_texts(self, score: Score) -> str:
        return "; ".join(reason.get("text", "") for reason in score.reasons)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
