import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask, SolarSchedule

from core.admin import BigTableAdmin, service_form_response
from leadengine.models import JobRun
from leadengine.schedule_words import crontab_text, periodic_task_words
from leadengine.selectors import jobs_overdue, schedule_states
from leadengine.services.jobs import JobError, job_run_request
from leadengine.services.schedules import schedules_default, schedules_seed
from scoring.models import Trade

ALERT_STYLE = '<strong class="status-alert">{}</strong>'  # leadengine/static/leadengine/admin.css


def crontab_label(crontab: CrontabSchedule) -> str:
    """A crontab as a choice: "every day at 02:00 UTC (0 2 * * *)", or django-celery-beat's text when not
    phrased ("0 2 1 * 1 (m/h/dM/MY/d) UTC")."""
    words = periodic_task_words(PeriodicTask(crontab=crontab))
    return str(crontab) if words is None else f"{words} ({crontab_text(crontab)})"


def overdue_warn(request) -> None:
    """Tell staff, at the top of the page, which job schedules are overdue."""
    overdue = jobs_overdue()
    if overdue:
        names = ", ".join(state.name for state in overdue)
        messages.warning(request, f"Overdue (not succeeded since due): {names}. Check that beat and a worker run.")


class QueuedWithinFilter(admin.SimpleListFilter):
    """Runs queued lately: the dashboard's failed runs "in the last 24 hours" link here."""

    title = "queued"
    parameter_name = "within"
    HOURS = {"24h": ("In the last 24 hours", 24), "7d": ("In the last 7 days", 24 * 7)}

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.HOURS.items()]

    def queryset(self, request, queryset):
        if self.value() in self.HOURS:
            _, hours = self.HOURS[self.value()]
            return queryset.filter(queued_at__gte=timezone.now() - dt.timedelta(hours=hours))
        return queryset


class OverdueFilter(admin.SimpleListFilter):
    """Job schedules that are overdue now (jobs_overdue), as the "On time" column says."""

    title = "on time"
    parameter_name = "on_time"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(pk__in=[state.task_id for state in jobs_overdue()])
        return queryset


class RunJobForm(forms.Form):
    job = forms.ChoiceField(choices=JobRun.Job.choices)
    trade = forms.ModelChoiceField(
        Trade.objects.all(), required=False, help_text="Scoring and lead generation run per trade; the others for all."
    )


@admin.register(JobRun)
class JobRunAdmin(BigTableAdmin):
    """Background runs: a record of what ran, is running or waits; written by the jobs, never edited.
    Staff who may add runs start one now (the form, or the action on runs) through job_run_request."""

    change_list_template = "admin/leadengine/jobrun/change_list.html"
    list_display = ["id", "job", "trade", "outcome", "requested_by", "queued_at", "started_at", "duration", "error"]
    list_filter = ["status", QueuedWithinFilter, "job", "trade"]
    list_select_related = ["trade", "requested_by"]
    date_hierarchy = "queued_at"
    readonly_fields = [field.name for field in JobRun._meta.fields] + ["duration"]
    actions = ["run_again"]

    @admin.display(description="Status", ordering="status")
    def outcome(self, run: JobRun) -> str:
        label = run.get_status_display()
        if run.waiting:  # no worker holds it: its scoring run's partitions, or its chains, are under way
            waits_for = "its chains" if run.job == JobRun.Job.NIGHTLY_RUN else "its scoring run"
            label += f" (waiting for {waits_for})"
        if run.status == JobRun.Status.FAILED:
            return format_html(ALERT_STYLE, label)
        return label

    @admin.display(description="Duration (s)")
    def duration(self, run: JobRun) -> str:
        seconds = run.duration_seconds
        return "" if seconds is None else f"{seconds:,.1f}"

    def has_add_permission(self, request) -> bool:
        return False  # a run is recorded by job_run_request (the run form), never typed in

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_run_permission(self, request) -> bool:
        """Running a job now is adding a run (the Ops role's "add" on job runs)."""
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def get_urls(self):
        run = path("run/", self.admin_site.admin_view(self.run_view), name="leadengine_jobrun_run")
        return [run, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        overdue_warn(request)
        extra_context = {**(extra_context or {}), "has_run_permission": self.has_run_permission(request)}
        return super().changelist_view(request, extra_context)

    def _request(self, request, *, job: str, trade: Trade | None) -> JobRun | None:
        """job_run_request, its outcome as a message: the run queued, or why it was refused."""
        scope = f" for {trade}" if trade else ""
        try:
            run = job_run_request(job=job, trade=trade, user=request.user)
        except JobError as refused:
            self.message_user(request, f"{JobRun.Job(job).label}{scope} not started: {refused}", messages.ERROR)
            return None
        self.message_user(request, f"{run.get_job_display()}{scope} queued as run {run.pk}.", messages.SUCCESS)
        return run

    def run_view(self, request):
        if not self.has_run_permission(request):
            raise PermissionDenied
        form = RunJobForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            run = self._request(request, job=form.cleaned_data["job"], trade=form.cleaned_data["trade"])
            if run is not None:
                return redirect(reverse("admin:leadengine_jobrun_changelist"))
        return service_form_response(
            self,
            request,
            form=form,
            title="Run a job now",
            submit_label="Run now",
            intro="The run is queued for a worker at once; a job already waiting or running is not started twice.",
        )

    @admin.action(description="Run the selected runs' jobs again now", permissions=["run"])
    def run_again(self, request, queryset):
        pairs = list(queryset.order_by("job", "trade_id").values_list("job", "trade_id").distinct())
        trades = Trade.objects.in_bulk({trade_id for _, trade_id in pairs if trade_id})
        for job, trade_id in pairs:
            self._request(request, job=job, trade=trades.get(trade_id))


# Schedules are crontabs (every default one) or intervals: sun-relative ("Solar events") and one-time
# ("Clocked") schedules have no use here, and their menu entries only puzzled staff.
admin.site.unregister([PeriodicTask, SolarSchedule, ClockedSchedule])


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """django-celery-beat's schedules, where ops enable, disable, re-time and run jobs now, with each job
    schedule's last success and whether it is overdue (leadengine.selectors.schedule_states), and each
    schedule in words beside its cron text (leadengine.schedule_words)."""

    list_filter = [OverdueFilter, *BeatPeriodicTaskAdmin.list_filter]
    # django-celery-beat's form with its crontab help script as a static file (Content-Security-Policy).
    change_form_template = "admin/django_celery_beat/periodictask/change_form.html"

    def get_fieldsets(self, request, obj=None):
        """django-celery-beat's, without the solar and clocked schedules (not registered, above), unless this
        schedule, made some other way, has one: it must show (and be cleared to choose another)."""
        unused = {name for name in ("solar", "clocked") if obj is None or getattr(obj, f"{name}_id") is None}
        return [
            (name, {**options, "fields": [field for field in options["fields"] if field not in unused]})
            for name, options in super().get_fieldsets(request, obj)
        ]

    @admin.display(description="Schedule")
    def schedule(self, task: PeriodicTask) -> str:
        """In words, beside the cron text; the cron text alone, with its zone, when not phrased."""
        words = periodic_task_words(task)
        if task.crontab is None:
            return words or str(task.interval or task.solar or task.clocked or "")
        if words is None:
            return str(task.crontab)
        return format_html('{} <span class="schedule-cron">{}</span>', words, crontab_text(task.crontab))

    @admin.display(description="Crontab in words")
    def crontab_translation(self, task: PeriodicTask | None) -> str:
        return self.schedule(task) if task is not None and task.crontab is not None else ""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Crontabs to choose from in words, then as cron text."""
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "crontab":
            field.label_from_instance = crontab_label
        return field

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        """The crontab chosen, in words under the field (the form's script): ours rather than
        django-celery-beat's, which reads "At 02:00 AM UTC" for a time of the crontab's own zone."""
        readable = {}
        for crontab in CrontabSchedule.objects.all():
            words = periodic_task_words(PeriodicTask(crontab=crontab))
            if words is not None:
                readable[crontab.pk] = words
        context["readable_crontabs"] = readable
        return super().render_change_form(request, context, add, change, form_url, obj)

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

        return ["name", "enabled", "schedule", "last_run_at", last_success, on_time, "one_off"]

    def changelist_view(self, request, extra_context=None):
        overdue_warn(request)
        extra_context = {**(extra_context or {}), "has_seed_permission": self.has_add_permission(request)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        seed = path("seed/", self.admin_site.admin_view(self.seed_view), name="django_celery_beat_periodictask_seed")
        return [seed, *super().get_urls()]

    def seed_view(self, request):
        """Create the default schedules that are missing (schedules_seed, as `seed_schedules` does), without a
        shell: e.g. the "Nightly run" deleted by mistake. Existing ones, edited or disabled, stay as they are."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            created = schedules_seed()
            if created:
                self.message_user(request, f"Created: {', '.join(created)}.", messages.SUCCESS)
            else:
                self.message_user(request, "Every default schedule exists already.", messages.INFO)
            return redirect(reverse("admin:django_celery_beat_periodictask_changelist"))
        existing = set(PeriodicTask.objects.values_list("name", flat=True))
        missing = [default.name for default in schedules_default() if default.name not in existing]
        return service_form_response(
            self,
            request,
            form=forms.Form(),
            title="Create the missing default schedules",
            submit_label="Create them",
            intro=(f"Missing: {', '.join(missing)}." if missing else "Every default schedule exists already.")
            + " Schedules that exist are left as they are; the nightly run covers every trade with an active "
            "model, so a new trade needs no schedule of its own.",
        )
