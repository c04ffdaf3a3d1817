"""Money in the back office: price lists (added through the service, read-only once in force), the
contractors' ledger (read-only; staff add payments and adjustments through the service) and their monthly
statements (read-only, printable, as CSV)."""

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime, AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from contractors.models import Contractor
from core.admin import BigTableAdmin, service_form_response
from core.text import sentence
from leads.errors import LeadError
from leads.export import statement_csv_response
from leads.models import LedgerEntry, Price, PriceList, Statement, TerritoryFee
from leads.selectors import statement_entries
from leads.services.billing import Band, FeeTier, ledger_entry_add, price_list_create
from scoring.models import Trade

T = TypeVar("T")


def lines_parse(text: str, parse: Callable[[list[str]], T | None], shape: str) -> list[T]:
    """One item a line as staff type it (words split by spaces or commas; blank lines skipped), each made by
    `parse` from its words (None, or a ValueError, when they are not `shape`); every bad line named at once."""
    items, errors = [], []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.replace(",", " ").split()
        if not words:
            continue
        try:
            item = parse(words)
        except (ValueError, InvalidOperation):
            item = None
        if item is None:
            errors.append(f'line {number}: "{line.strip()}" is not {shape}')
        else:
            items.append(item)
    if errors:
        raise forms.ValidationError(errors)
    return items


def _band(words: list[str]) -> Band | None:
    urgent = words[-1].lower() == "urgent"
    words = words[:-1] if urgent else words
    if len(words) != 2:
        return None
    band = Band(float(words[0]), Decimal(words[1]), urgent=urgent)
    return band if band.amount.is_finite() and math.isfinite(band.min_score) else None


def _fee_tier(words: list[str]) -> FeeTier | None:
    tier = FeeTier(int(words[0]), Decimal(words[1])) if len(words) == 2 else None
    return tier if tier is not None and tier.monthly.is_finite() else None


class PriceListForm(forms.Form):
    trade = forms.ModelChoiceField(Trade.objects.all())
    effective_from = forms.SplitDateTimeField(
        widget=AdminSplitDateTime,
        help_text="Leads assigned from then on get these prices (now or later; leads already assigned keep theirs).",
    )
    bands = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 40}),
        help_text=f"One band a line: the lowest score it prices, then the price in {settings.CURRENCY}, and "
        '"urgent" for a band of urgent leads only. The bands start at 0, e.g. "0 20.00", "80 35.00", '
        '"0 50.00 urgent".',
    )
    fees = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        label="Territory fees",
        help_text=f"One tier a line: the lowest ZIP demand it charges (properties scoring 70+ for the trade), then "
        f'the monthly fee in {settings.CURRENCY}, e.g. "0 49.00", "25 99.00". Blank: territories cost nothing.',
    )
    exploration_free = forms.BooleanField(
        required=False,
        initial=True,
        label="Exploration leads free",
        help_text=PriceList.exploration_free.field.help_text,
    )
    note = forms.CharField(max_length=300, required=False)

    def clean_bands(self) -> list[Band]:
        return lines_parse(self.cleaned_data["bands"], _band, '"<lowest score> <price>" [urgent]')

    def clean_fees(self) -> list[FeeTier]:
        return lines_parse(self.cleaned_data["fees"], _fee_tier, '"<lowest demand> <monthly fee>"')


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0
    fields = ["min_score", "urgent", "amount"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TerritoryFeeInline(PriceInline):
    model = TerritoryFee
    fields = ["min_demand", "monthly"]
    readonly_fields = fields


@admin.register(PriceList)
class PriceListAdmin(admin.ModelAdmin):
    """A price list is added through price_list_create and never edited: a new price is a new list. A
    list not yet in force may be deleted."""

    list_display = ["trade", "effective_from", "in_force", "band_texts", "fee_texts", "exploration_free", "note",
                    "created_by"]  # fmt: skip
    list_filter = ["trade"]
    list_select_related = ["trade", "created_by"]
    inlines = [PriceInline, TerritoryFeeInline]
    fields = ["trade", "effective_from", "exploration_free", "note", "created_at", "created_by"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("prices", "fees")

    @admin.display(description="Territory fees")
    def fee_texts(self, price_list: PriceList) -> str:
        return "; ".join(str(fee) for fee in price_list.fees.all()) or "none"

    @admin.display(description="Prices")
    def band_texts(self, price_list: PriceList) -> str:
        return "; ".join(str(price) for price in price_list.prices.all())

    @admin.display(description="Started", boolean=True)
    def in_force(self, price_list: PriceList) -> bool:
        return price_list.effective_from <= timezone.now()

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        started = obj is not None and obj.effective_from <= timezone.now()
        return not started and super().has_delete_permission(request, obj)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PriceListForm(request.POST or None, initial={"effective_from": timezone.now()})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                price_list = price_list_create(
                    trade=data["trade"],
                    bands=data["bands"],
                    effective_from=data["effective_from"],
                    fees=data["fees"],
                    exploration_free=data["exploration_free"],
                    note=data["note"],
                    user=request.user,
                )
            except LeadError as error:
                form.add_error(None, sentence(str(error)))
            else:
                self.message_user(request, f"{price_list} added.", messages.SUCCESS)
                return redirect("admin:leads_pricelist_changelist")
        return service_form_response(
            self,
            request,
            form=form,
            title="Add a price list",
            submit_label="Add",
            intro="The list prices the trade's leads assigned from its start until the trade's next list. It is "
            "never edited once it starts: to change a price, add a new list.",
        )


class LedgerEntryForm(forms.Form):
    contractor = forms.ModelChoiceField(
        Contractor.objects.all(), widget=AutocompleteSelect(LedgerEntry._meta.get_field("contractor"), admin.site)
    )
    kind = forms.ChoiceField(choices=[(kind.value, kind.label) for kind in (LedgerEntry.Kind.PAYMENT,
                                                                            LedgerEntry.Kind.ADJUSTMENT)])  # fmt: skip
    amount = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text=f"In {settings.CURRENCY}. A payment: the amount received. An adjustment: positive adds to what "
        "the contractor owes, negative takes off.",
    )
    note = forms.CharField(max_length=300, help_text="A payment's reference, an adjustment's reason.")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(BigTableAdmin):
    """The ledger, read-only: entries are never edited or deleted (the database refuses); a correction is
    a new adjustment."""

    list_display = ["at", "contractor", "kind", "amount", "lead", "note", "created_by"]
    list_filter = ["kind", ("at", admin.DateFieldListFilter)]
    list_select_related = ["contractor", "created_by"]
    search_fields = ["contractor__name", "lead__id__exact"]
    autocomplete_fields = ["contractor"]
    fields = ["contractor", "kind", "amount", "at", "lead", "assigned_at", "reverses", "note", "created_by"]
    readonly_fields = fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = LedgerEntryForm(request.POST or None, initial={"contractor": request.GET.get("contractor")})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                entry = ledger_entry_add(
                    contractor=data["contractor"],
                    kind=data["kind"],
                    amount=data["amount"],
                    note=data["note"],
                    user=request.user,
                )
            except LeadError as error:
                form.add_error(None, sentence(str(error)))
            else:
                self.message_user(request, f"{entry} recorded.", messages.SUCCESS)
                return redirect("admin:leads_ledgerentry_changelist")
        return service_form_response(
            self,
            request,
            form=form,
            title="Record a payment or an adjustment",
            submit_label="Record",
            intro="Entries are never edited or deleted: a mistake is corrected by another adjustment.",
        )


@admin.register(Statement)
class StatementAdmin(BigTableAdmin):
    """Monthly statements, closed by the "Month close" job (or `manage.py close_months`), read-only: each as a
    printable page and as CSV."""

    list_display = ["month", "contractor", "opening_balance", "lead_charges", "lead_credits", "territory_fees",
                    "payments", "adjustments", "closing_balance", "print_link"]  # fmt: skip
    list_filter = ["month"]
    list_select_related = ["contractor"]
    search_fields = ["contractor__name"]
    actions = ["export_csv"]
    fields = ["contractor", "month", "opening_balance", "lead_charges", "lead_credits", "territory_fees", "payments",
              "adjustments", "closing_balance", "leads_charged", "by_trade", "closed_at", "print_link"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Statement")
    def print_link(self, statement: Statement) -> str:
        url = reverse("admin:leads_statement_print", args=[statement.pk])
        return format_html('<a href="{}">Printable page</a>', url)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        view = self.admin_site.admin_view(self.print_view)
        return [path("<int:pk>/print/", view, name="leads_statement_print"), *super().get_urls()]

    def print_view(self, request, pk: int):
        statement = get_object_or_404(Statement.objects.select_related("contractor"), pk=pk)
        if not self.has_view_permission(request, statement):
            raise PermissionDenied
        context = {
            "statement": statement,
            "entries": statement_entries(statement=statement),
            "currency": settings.CURRENCY,
            "zone": ZoneInfo(statement.contractor.time_zone),
        }
        return TemplateResponse(request, "admin/leads/statement/print.html", context)

    @admin.action(description="Export the selected statement as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        chosen = list(queryset.select_related("contractor")[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select one statement to export.", messages.ERROR)
            return None
        return statement_csv_response(chosen[0])
