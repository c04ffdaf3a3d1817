"""The market's data as imported: the ZIP reference, trades, properties with their permits and sales, storm
events. Tables of up to millions of rows: their change lists estimate their counts (core.admin.BigTableAdmin)."""

from django.contrib import admin, messages
from django.db.models import Q

from core.admin import BigTableAdmin
from core.fields import is_zip_code
from core.text import counted
from scoring.models import Permit, Property, Sale, ScoringModel, StormEvent, Trade, ZipCode
from scoring.services.scores import property_rescore

# Each property is scored by itself (a query per trade): more than this many are a run's work, `manage.py score`.
RESCORE_MAX = 100


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
    actions = ["rescore"]
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

    @admin.action(description="Rescore the selected properties", permissions=["change"])
    def rescore(self, request, queryset):
        """Each selected property scored again for every trade with an active model, as today's run would
        score it: for properties whose data were just corrected."""
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: RESCORE_MAX + 1])
        if len(ids) > RESCORE_MAX:
            self.message_user(
                request,
                f"Rescore at most {RESCORE_MAX} properties at a time; nothing was rescored. "
                "Score a whole trade with its scoring job (or manage.py score).",
                messages.ERROR,
            )
            return
        trades = set()
        for property_id in ids:
            scores = property_rescore(property_id=property_id)
            trades.update(score.trade.name for score in scores if score.model.status == ScoringModel.Status.ACTIVE)
        if not trades:
            self.message_user(request, "No trade has an active scoring model; nothing was rescored.", messages.WARNING)
            return
        self.message_user(
            request,
            f"{counted(len(ids), 'property', 'properties')} rescored for {', '.join(sorted(trades))}.",
            messages.SUCCESS,
        )


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
