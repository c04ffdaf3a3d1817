from django.contrib import admin, messages
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from leadengine.models import JobRun
from leadengine.selectors import jobs_overdue, schedule_states

ALERT_STYLE = '<strong style="color: #ba2121;">{}</strong>'


def overdue_warn(request) -> None:
    """Tell staff, at the top of the page, which job schedules are overdue."""
    overdue = jobs_overdue()
    if overdue:
        names = ", ".join(state.name for state in overdue)
        messages.warning(request, f"Overdue (not succeeded since due): {names}. Check that beat and a worker run.")


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
            return format_html(ALERT_STYLE, label)
        return label

    @admin.display(description="Duration (s)")
    def duration(self, run: JobRun) -> str:
        seconds = run.duration_seconds
        return "" if seconds is None else f"{seconds:,.1f}"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        overdue_warn(request)
        return super().changelist_view(request, extra_context)


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """django-celery-beat's schedules, where ops enable, disable, re-time and run jobs now, with each job
    schedule's last success and whether it is overdue (leadengine.selectors.schedule_states)."""

    def get_list_display(self, request):
        """The columns, with each job schedule's state read once for the page."""
        states = {state.task_id: state for state in schedule_states()}

        @admin.display(description="Last success")
        def last_success(task: PeriodicTask):
            state = states.get(task.pk)
            return state.last_success_at if state else None

        @admin.display(description="On time")
        def on_time(task: PeriodicTask) -> str:
            state = states.get(task.pk)
            if state is None:
                return ""  # not a job schedule, or disabled
            return format_html(ALERT_STYLE, "Overdue") if state.overdue else "Yes"

        return ["name", "enabled", "scheduler", "last_run_at", last_success, on_time, "one_off"]

    def changelist_view(self, request, extra_context=None):
        overdue_warn(request)
        return super().changelist_view(request, extra_context)
