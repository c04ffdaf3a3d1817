from django.contrib import admin

from scoring.models import ImportRun, Permit, Property, Sale, StormEvent, Trade, ZipCode


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
