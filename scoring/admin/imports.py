"""Import runs (of import_data and of files staff upload here) and the profiles that say how to read a
source's files."""

import copy
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from scoring.admin.import_pages import ImportUploadForm, import_run_page, import_run_progress, rejects_available
from scoring.models import ImportProfile, ImportRun
from scoring.services.imports.profiles import import_profile_check
from scoring.services.imports.uploads import ImportUploadHandler, import_upload_queue


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    """Runs of import_data and of files staff upload here ("Import a file": imported by a Celery worker). A run
    is written by its import alone; its page shows the progress while it runs, refreshed, then its counts, its
    error, and its rejects file to download."""

    change_list_template = "admin/scoring/importrun/change_list.html"
    change_form_template = "admin/scoring/importrun/change_form.html"
    list_display = [
        "started_at",
        "kind",
        "file_name",
        "status",
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "rows_unchanged",
        "rows_rejected",
        "duration",
    ]
    list_filter = ["kind", "status", "origin"]
    search_fields = ["file_name"]
    date_hierarchy = "started_at"
    fieldsets = [
        (None, {"fields": ["kind", "file_name", "file_size", "origin", "profile", "as_of", "status", "progress",
                           "error"]}),
        ("Rows", {"fields": ["rows_read", "rows_inserted", "rows_updated", "rows_unchanged", "rows_duplicate",
                             "rows_older", "rows_skipped", "rows_rejected", "rejects", "ignored_columns"]}),
        ("Time", {"fields": ["started_at", "finished_at", "duration", "heartbeat_at"]}),
        ("Rescoring (storm fast path)", {"fields": ["rescoring", "rescoring_note", "rescored_at"]}),
    ]  # fmt: skip
    readonly_fields = ["progress", "rejects", "duration"]

    @admin.display(description="Seconds")
    def duration(self, run: ImportRun) -> str:
        return "" if run.duration_seconds is None else f"{run.duration_seconds:.1f}"

    @admin.display(description="Progress")
    def progress(self, run: ImportRun) -> str:
        return import_run_progress(run) or "-"

    @admin.display(description="Rejected rows file")
    def rejects(self, run: ImportRun) -> str:
        if not run.rejects_file:
            return "-"
        if not rejects_available(run):
            return f"{run.rejects_file} (not on this server any more)"
        url = reverse("admin:scoring_importrun_rejects", args=[run.pk])
        return format_html('<a href="{}" class="rejects-download">Download rejects</a> ({})', url, run.rejects_file)

    def has_add_permission(self, request) -> bool:
        return False  # runs are made by their imports, never by hand

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_upload_permission(self, request) -> bool:
        """Uploading a file to import is adding a run (the Ops role's "add" on import runs)."""
        return request.user.has_perm(f"{self.opts.app_label}.add_{self.opts.model_name}")

    def get_urls(self):
        return [
            # Exempt from the CSRF middleware, which would read the body before the view picks its upload
            # handler; upload_view checks the token itself once it has.
            path("upload/", self.admin_site.admin_view(csrf_exempt(self.upload_view)), name="scoring_importrun_upload"),
            path(
                "<int:object_id>/rejects/",
                self.admin_site.admin_view(self.rejects_view),
                name="scoring_importrun_rejects",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "has_upload_permission": self.has_upload_permission(request)}
        return super().changelist_view(request, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(import_run_page(obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def upload_view(self, request):
        """The file is written to disk as it arrives (IMPORT_UPLOAD_DIR), refused past IMPORT_UPLOAD_MAX_BYTES;
        a user who may not upload is turned away before a byte of it is read."""
        if not self.has_upload_permission(request):
            raise PermissionDenied
        handler = ImportUploadHandler(request)
        request.upload_handlers = [handler]
        return csrf_protect(self._upload)(request, handler)

    def _upload(self, request, handler: ImportUploadHandler):
        if request.method == "POST":
            form = ImportUploadForm(request.POST, request.FILES, too_large=handler.too_large)
        else:
            form = ImportUploadForm()
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run = import_upload_queue(
                    upload=data["file"], kind=data["kind"], profile=data["profile"], as_of=data["as_of"]
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                queued = f"Run {run.pk} queued: a worker imports {Path(data['file'].name).name} in the background."
                self.message_user(request, queued, messages.SUCCESS)
                return redirect("admin:scoring_importrun_change", run.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import a file",
            "form": form,
            "media": self.media + form.media,
            "max_bytes": settings.IMPORT_UPLOAD_MAX_BYTES,
        }
        return TemplateResponse(request, "admin/scoring/importrun/upload.html", context)

    def rejects_view(self, request, object_id: int):
        """The run's rejects CSV, from the path the run recorded (never one the request names)."""
        run = get_object_or_404(ImportRun, pk=object_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        if not rejects_available(run):
            raise Http404("This run has no rejects file on this server.")
        path = Path(run.rejects_file)
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="text/csv")


class ImportProfileForm(forms.ModelForm):
    """A profile as edited: its column map and options checked by the import's own rules
    (import_profile_check) before it is saved, each problem shown at its field."""

    class Meta:
        model = ImportProfile
        fields = ["name", "kind", "description", "column_map", "options"]

    def clean(self) -> dict:
        cleaned = super().clean()
        profile = copy.copy(self.instance)
        for name, value in cleaned.items():
            setattr(profile, name, value)
        try:
            import_profile_check(profile=profile)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                self.add_error(field if field in self.fields else None, problems)
        return cleaned


@admin.register(ImportProfile)
class ImportProfileAdmin(admin.ModelAdmin):
    """How to read a source's files (`import_data KIND FILE --profile NAME`). The JSON of the form is
    checked by the import's rules (ImportProfileForm); a shipped profile keeps its name, kind and converter,
    and stays."""

    form = ImportProfileForm

    list_display = ["name", "kind", "shipped", "description", "updated_at"]
    list_filter = ["kind", "shipped"]
    search_fields = ["name"]
    ordering = ["kind", "name"]
    fields = ["name", "kind", "description", "column_map", "options", "shipped"]

    def get_readonly_fields(self, request, obj=None):
        return ["name", "kind", "shipped"] if obj is not None and obj.shipped else ["shipped"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.shipped)

    def delete_queryset(self, request, queryset) -> None:
        shipped = list(queryset.filter(shipped=True).values_list("name", flat=True))
        if shipped:
            self.message_user(request, f"Shipped profiles stay: {', '.join(shipped)}.", messages.WARNING)
        super().delete_queryset(request, queryset.filter(shipped=False))
