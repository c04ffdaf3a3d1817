from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count

from scoring.models import Factor, ImportRun, Permit, Property, Sale, ScoringModel, StormEvent, Trade, ZipCode
from scoring.services.scoring_models import scoring_model_activate, scoring_model_check


@admin.register(ZipCode)
class ZipCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "city", "state", "county", "kind", "active", "time_zone"]
    list_filter = ["kind", "active", "state"]
    search_fields = ["=code", "city", "county"]
    show_full_result_count = False
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


@admin.register(Property)
class PropertyAdmin(admin.ModelAdmin):
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
    list_filter = ["property_type", "owner_occupied", "zip_derived", "state"]
    # Exact parcel and ZIP lookups use their indexes; address is a prefix match.
    search_fields = ["=parcel_id", "=zip_code__code", "^address"]
    raw_id_fields = ["zip_code"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False
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


@admin.register(StormEvent)
class StormEventAdmin(admin.ModelAdmin):
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
    list_filter = ["kind"]
    search_fields = ["=event_id", "=zip_code__code"]
    date_hierarchy = "event_date"
    raw_id_fields = ["zip_code"]
    show_full_result_count = False


@admin.register(Permit)
class PermitAdmin(admin.ModelAdmin):
    list_display = ["permit_number", "property", "issued_date", "permit_type", "trade", "value"]
    list_filter = ["trade"]
    list_select_related = ["property", "trade"]
    search_fields = ["=permit_number", "=property__parcel_id"]
    date_hierarchy = "issued_date"
    raw_id_fields = ["property"]
    show_full_result_count = False


@admin.register(Sale)
class SaleAdmin(admin.ModelAdmin):
    list_display = ["property", "sale_date", "price"]
    list_select_related = ["property"]
    search_fields = ["=property__parcel_id"]
    date_hierarchy = "sale_date"
    raw_id_fields = ["property"]
    show_full_result_count = False


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
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
    list_filter = ["kind", "status"]
    search_fields = ["file_name"]
    date_hierarchy = "started_at"

    @admin.display(description="Seconds")
    def duration(self, run: ImportRun) -> str:
        return "" if run.duration_seconds is None else f"{run.duration_seconds:.1f}"

    def has_add_permission(self, request) -> bool:
        return False  # runs are made by import_data, never by hand

    def has_change_permission(self, request, obj=None) -> bool:
        return False


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

    list_display = ["trade", "version", "status", "factor_count", "activated_at", "created_at"]
    list_filter = ["trade", "status"]
    inlines = [FactorInline]
    actions = ["activate"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(number_of_factors=Count("factors"))

    @admin.display(description="Factors", ordering="number_of_factors")
    def factor_count(self, model: ScoringModel) -> int:
        return model.number_of_factors

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != ScoringModel.Status.DRAFT:
            return ["trade", "version", "status", "notes", "activated_at"]
        return ["status", "activated_at"]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        try:
            scoring_model_check(model=form.instance)
        except ValidationError as error:
            self.message_user(
                request, f"Saved as a draft that cannot be activated yet: {error.messages[0]}", messages.WARNING
            )

    @admin.action(description="Activate the selected version (retires its trade's active one)")
    def activate(self, request, queryset):
        for model in queryset.order_by("trade_id", "version"):
            try:
                scoring_model_activate(model=model)
            except ValidationError as error:
                self.message_user(request, error.messages[0], messages.ERROR)
            else:
                self.message_user(request, f"{model.trade} v{model.version} is now active.", messages.SUCCESS)
