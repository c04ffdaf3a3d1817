from django.contrib import admin
from django.utils.html import format_html

from leadengine.models import JobRun


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    """Background runs: a record of what ran, is running or waits; written by the jobs, never edited."""

    list_display = ["id", "job", "trade", "outcome", "requested_by", "queued_at", "started_at", "duration", "error"]
    list_filter = ["status", "job", "trade"]
    list_select_related = ["trade", "requested_by"]
    date_hierarchy = "queued_at"
    readonly_fields = [field.name for field in JobRun._meta.fields] + ["duration"]

    @admin.display(description="Status", ordering="status")
    def outcome(self, run: JobRun) -> str:
        label = run.get_status_display()
        if run.status == JobRun.Status.FAILED:
            return format_html('<strong style="color: #ba2121;">{}</strong>', label)
        return label

    @admin.display(description="Duration (s)")
    def duration(self, run: JobRun) -> str:
        seconds = run.duration_seconds
        return "" if seconds is None else f"{seconds:,.1f}"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
