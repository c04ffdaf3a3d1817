from pathlib import Path

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from core.admin import BigTableAdmin
from core.fields import is_zip_code
from scoring.admin_imports import ImportUploadForm, import_run_page, import_run_progress, rejects_available
from scoring.models import (
    Factor,
    ImportProfile,
    ImportRun,
    Permit,
    Property,
    Sale,
    Score,
    ScoringModel,
    ScoringPartition,
    ScoringRun,
    StormEvent,
    Trade,
    ZipCode,
)
from scoring.services.imports.uploads import ImportUploadHandler, import_upload_queue
from scoring.services.preview import scoring_model_preview
from scoring.services.scoring_models import scoring_model_activate, scoring_model_check


@admin.register(ZipCode)
class ZipCodeAdmin(BigTableAdmin):
    list_display = ["code", "city", "state", "county", "kind", "active", "time_zone"]
    list_filter = ["kind", "active", "state"]
    search_fields = ["code__exact", "city", "county"]
    readonly_fields = ["code"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # reference data: the database refuses deletes; mark a ZIP inactive instead

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "permit_keywords"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]


class PermitInline(admin.TabularInline):
    model = Permit
    extra = 0
    fields = ["permit_number", "issued_date", "permit_type", "trade", "value"]
    ordering = ["-issued_date"]


class SaleInline(admin.TabularInline):
    model = Sale
    extra = 0
    ordering = ["-sale_date"]


class StateFilter(admin.SimpleListFilter):
    """The property's state, listed from the ZIP reference (tens of thousands of rows) rather than by a
    DISTINCT over every property on each page load, as the plain field filter would."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        states = ZipCode.objects.order_by("state").values_list("state", flat=True).distinct()
        return [(state, state) for state in states if state]

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() else queryset


@admin.register(Property)
class PropertyAdmin(BigTableAdmin):
    list_display = [
        "parcel_id",
        "address",
        "city",
        "state",
        "zip_code_id",
        "property_type",
        "year_built",
        "roof_year",
        "market_value",
        "owner_occupied",
        "last_sale_date",
    ]
    list_filter = ["property_type", "owner_occupied", "zip_derived", StateFilter]
    # What get_search_results searches, for the search box to show.
    search_fields = ["parcel_id__exact", "zip_code__exact", "^address"]
    search_help_text = "A parcel id or a ZIP code, exactly, or the start of an address."
    raw_id_fields = ["zip_code"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [PermitInline, SaleInline]
    fieldsets = [
        (
            None,
            {"fields": ["parcel_id", "address", "city", "state", "zip_code", "zip_derived", "latitude", "longitude"]},
        ),
        (
            "Building",
            {
                "fields": [
                    "property_type",
                    "year_built",
                    "roof_year",
                    "living_sqft",
                    "lot_sqft",
                    "bedrooms",
                    "bathrooms",
                    "stories",
                ]
            },
        ),
        ("Ownership and value", {"fields": ["owner_occupied", "market_value", "last_sale_date", "last_sale_price"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_search_results(self, request, queryset, search_term):
        """The whole term (not word by word, so that "12 Oak" is an address prefix): a parcel id through its
        unique index, first, as one probe; otherwise a ZIP code or the start of an address, which scan
        (properties have no index on either: 0.5 s at a million rows, measured by bench/admin.py)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_parcel = queryset.filter(parcel_id=term)
        if by_parcel.exists():
            return by_parcel, False
        if is_zip_code(term):
            # Digits have no case: a plain prefix, without upper-casing every address.
            return queryset.filter(Q(zip_code=term) | Q(address__startswith=term)), False
        return queryset.filter(address__istartswith=term), False


@admin.register(StormEvent)
class StormEventAdmin(BigTableAdmin):
    list_display = [
        "event_id",
        "event_date",
        "kind",
        "magnitude",
        "latitude",
        "longitude",
        "radius_miles",
        "zip_code_id",
    ]
    list_filter = ["kind", ("event_date", admin.DateFieldListFilter)]
    search_fields = ["event_id__exact", "zip_code__exact"]
    raw_id_fields = ["zip_code"]


@admin.register(Permit)
class PermitAdmin(BigTableAdmin):
    list_display = ["permit_number", "property", "issued_date", "permit_type", "trade", "value"]
    # Date filters rather than a date hierarchy: the hierarchy's year and month links are DISTINCT
    # queries over every row on each page load.
    list_filter = ["trade", ("issued_date", admin.DateFieldListFilter)]
    list_select_related = ["property", "trade"]
    search_fields = ["permit_number__exact", "property__parcel_id__exact"]
    raw_id_fields = ["property"]


@admin.register(Sale)
class SaleAdmin(BigTableAdmin):
    list_display = ["property", "sale_date", "price"]
    list_filter = [("sale_date", admin.DateFieldListFilter)]
    list_select_related = ["property"]
    search_fields = ["property__parcel_id__exact"]
    raw_id_fields = ["property"]


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


class FactorInline(admin.TabularInline):
    model = Factor
    extra = 0
    fields = ["position", "feature", "transform", "params", "weight", "reason"]
    ordering = ["position"]

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == ScoringModel.Status.DRAFT

    def has_add_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    """Drafts are edited here; active and retired versions are read-only (change by a new version)."""

    list_display = ["trade", "version", "status", "factor_count", "storm_window_days", "activated_at", "preview_link"]
    list_filter = ["trade", "status"]
    inlines = [FactorInline]
    actions = ["activate"]

    def get_urls(self):
        preview = path(
            "<int:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="scoring_scoringmodel_preview",
        )
        return [preview, *super().get_urls()]

    @admin.display(description="Preview")
    def preview_link(self, model: ScoringModel) -> str:
        if model.pk is None:
            return "Save the draft first."
        url = reverse("admin:scoring_scoringmodel_preview", args=[model.pk])
        return format_html('<a href="{}">Score a sample of the market</a>', url)

    def preview_view(self, request, object_id: int):
        model = get_object_or_404(ScoringModel.objects.select_related("trade"), pk=object_id)
        if not self.has_view_permission(request, model):
            return redirect("admin:index")
        try:
            preview = scoring_model_preview(model=model)
        except ValidationError as error:
            self.message_user(request, f"This version cannot be previewed yet: {error.messages[0]}", messages.ERROR)
            return redirect("admin:scoring_scoringmodel_change", model.pk)
        columns = [str(model)] + ([str(preview.active)] if preview.active else [])
        distributions = [preview.distribution] + ([preview.active_distribution] if preview.active else [])
        rows = [
            (label, [d.get(key, "") for d in distributions])
            for label, key in [("Properties", "count"), ("Mean score", "mean_score"), ("Mean urgency", "mean_urgency"),
                               ("10th percentile", "p10"), ("Median", "p50"), ("90th percentile", "p90"),
                               ("99th percentile", "p99")]
        ]  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Preview of {model}",
            "preview": preview,
            "chart": histogram_chart(preview.distribution, preview.active_distribution),
            "summary_columns": columns,
            "summary_rows": rows,
        }
        return TemplateResponse(request, "admin/scoring/scoringmodel/preview.html", context)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(number_of_factors=Count("factors"))

    @admin.display(description="Factors", ordering="number_of_factors")
    def factor_count(self, model: ScoringModel) -> int:
        return model.number_of_factors

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != ScoringModel.Status.DRAFT:
            return ["trade", "version", "status", "notes", "storm_window_days", "activated_at", "preview_link"]
        return ["status", "activated_at", "preview_link"]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        try:
            scoring_model_check(model=form.instance)
        except ValidationError as error:
            self.message_user(
                request, f"Saved as a draft that cannot be activated yet: {error.messages[0]}", messages.WARNING
            )

    @admin.action(description="Activate the selected version (retires its trade's active one)", permissions=["change"])
    def activate(self, request, queryset):
        for model in queryset.order_by("trade_id", "version"):
            try:
                scoring_model_activate(model=model)
            except ValidationError as error:
                self.message_user(request, error.messages[0], messages.ERROR)
            else:
                self.message_user(request, f"{model.trade} v{model.version} is now active.", messages.SUCCESS)


def histogram_chart(distribution: dict, compared: dict | None, *, width: int = 640, height: int = 180) -> dict:
    """Bars of a 10-point score histogram (and of a compared one beside them) as SVG coordinates."""
    labels = list((distribution.get("histogram") or {}).keys()) or [f"{10 * i}-{10 * i + 10}" for i in range(10)]
    counts = [distribution.get("histogram", {}).get(label, 0) for label in labels]
    other = [compared.get("histogram", {}).get(label, 0) for label in labels] if compared else None
    tallest = max(counts + (other or []) + [1])
    plot = height - 20
    slot = width / len(labels)
    bar = slot * (0.4 if other else 0.8)
    bars = []
    for index, (label, count) in enumerate(zip(labels, counts, strict=True)):
        x = index * slot + slot * 0.1
        bars.append(
            {
                "label": label,
                "count": count,
                "x": round(x, 1),
                "width": round(bar, 1),
                "height": round(plot * count / tallest, 1),
                "y": round(plot - plot * count / tallest, 1),
                "label_x": round(index * slot + slot / 2, 1),
                "active_count": other[index] if other else None,
                "active_x": round(x + bar, 1),
                "active_height": round(plot * other[index] / tallest, 1) if other else None,
                "active_y": round(plot - plot * other[index] / tallest, 1) if other else None,
            }
        )
    return {"width": width, "height": height, "label_y": height - 5, "bars": bars}


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

    list_display = ["id", "trade", "model", "status", "as_of", "properties_scored", "scores_changed", "duration",
                    "median_score", "started_at"]  # fmt: skip
    list_filter = ["status", "trade", "distributed"]
    list_select_related = ["trade", "model", "model__trade"]
    date_hierarchy = "started_at"
    inlines = [ScoringPartitionInline]
    readonly_fields = [
        *("trade", "model", "status", "distributed", "as_of", "partitions", "properties_scored", "scores_changed"),
        *("distribution", "error", "started_at", "heartbeat_at", "finished_at"),
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
    """Current scores, written by runs and rescoring only."""

    list_display = ["property", "trade", "score", "urgency", "model", "reason_texts", "scored_at"]
    list_filter = ["trade"]
    list_select_related = ["property", "trade", "model", "model__trade"]
    raw_id_fields = ["property"]
    search_fields = ["property__parcel_id__exact"]
    # By id, not by score: sorting a million scores on every page load is what the lead issue's
    # queries will index for, with the measurement that shows the cost to runs.
    ordering = ["-id"]
    readonly_fields = ["property", "trade", "model", "score", "urgency", "reasons", "scored_at", "digest"]

    @admin.display(description="Why")
    def reason_texts(self, score: Score) -> str:
        return "; ".join(reason.get("text", "") for reason in score.reasons)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ImportProfile)
class ImportProfileAdmin(admin.ModelAdmin):
    """How to read a source's files (`import_data KIND FILE --profile NAME`). The JSON of the form is
    checked by ImportProfile.clean; a shipped profile keeps its name, kind and converter, and stays."""

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
