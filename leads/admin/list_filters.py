"""The lead change list's filters that are not a plain field's: score bands, returns waiting, failed
webhooks and a typed ZIP code."""

import re

from django.contrib import admin
from django.http import QueryDict

from core.fields import is_zip_code
from leads.models import Lead

State = Lead.State


class ScoreBandFilter(admin.SimpleListFilter):
    title = "score"
    parameter_name = "score"
    BANDS = {
        "90": ("90 and up", 90, None),
        "80": ("80 to 90", 80, 90),
        "70": ("70 to 80", 70, 80),
        "0": ("Below 70", None, 70),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _, _) in self.BANDS.items()]

    def queryset(self, request, queryset):
        band = self.BANDS.get(self.value())
        if band is None:
            return queryset
        _, low, high = band
        if low is not None:
            queryset = queryset.filter(score__gte=low)
        if high is not None:
            queryset = queryset.filter(score__lt=high)
        return queryset


class ReturnWaitingFilter(admin.SimpleListFilter):
    """Returns over the contractor's monthly rate, waiting for staff: the same rule as Lead.return_pending
    (a lead that moved on, withdrawn say, has no return waiting even if one was asked for)."""

    title = "return"
    parameter_name = "return"

    def lookups(self, request, model_admin):
        return [("waiting", "Return waiting for approval")]

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return queryset.filter(return_requested_at__isnull=False, state__in=[State.DELIVERED, State.ACCEPTED])
        return queryset


class WebhookFailedFilter(admin.SimpleListFilter):
    """Assigned leads whose webhook refused them or stopped answering: the same rule as
    Lead.objects.webhook_failed() (per assignment: a reassigned lead is not flagged)."""

    title = "webhook"
    parameter_name = "webhook"

    def lookups(self, request, model_admin):
        return [("failed", "Webhook failed")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.webhook_failed()
        return queryset


class ZipCodeFilter(admin.SimpleListFilter):
    """A ZIP code, or its first digits, typed in: a list of every ZIP that has leads would be thousands long
    (and a scan of the leads to build)."""

    title = "ZIP code"
    parameter_name = "zip"
    template = "admin/leads/lead/text_filter.html"

    def lookups(self, request, model_admin):
        return []

    def has_output(self) -> bool:
        return True

    def choices(self, changelist):
        # The other filters, the search and the ordering go along with the typed value.
        others = QueryDict(changelist.get_query_string(remove=[self.parameter_name, "p"]).lstrip("?"))
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "hidden": [(name, value) for name, values in others.lists() for value in values],
            "clear_query_string": changelist.get_query_string(remove=[self.parameter_name, "p"]),
        }

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        if not re.fullmatch(r"[0-9]{1,5}", value):
            return queryset.none()
        return queryset.filter(zip_code=value) if is_zip_code(value) else queryset.filter(zip_code__startswith=value)
