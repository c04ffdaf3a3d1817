"""The lead change list's filters that are not a plain field's: score bands, returns waiting, failed
webhooks, a typed ZIP code, a contractor chosen by typing its name, and the funnel step reached in a period
(the dashboard's figures link there)."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters

from core.admin import form_filter_choice
from core.fields import is_zip_code
from leads.selectors import FUNNEL_STEPS, leads_reached


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
            return queryset.return_waiting()
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
        yield {"value": self.value() or "", **form_filter_choice(changelist, self.parameter_name)}

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        if not re.fullmatch(r"[0-9]{1,5}", value):
            return queryset.none()
        return queryset.filter(zip_code=value) if is_zip_code(value) else queryset.filter(zip_code__startswith=value)


class StepReachedFilter(admin.SimpleListFilter):
    """The leads that reached a funnel step in a period of whole local days: the set behind a figure of the
    dashboard (leads_reached, as the funnel counts). `reached_since` and `reached_before` are dates
    (YYYY-MM-DD, in TIME_ZONE), the first day in and the first day out; shown only while in use."""

    title = "step reached"
    parameter_name = "reached"
    SINCE, BEFORE = "reached_since", "reached_before"

    def __init__(self, request, params, model, model_admin):
        self.window = {name: params.pop(name)[-1] for name in (self.SINCE, self.BEFORE) if name in params}
        super().__init__(request, params, model, model_admin)
        zone = ZoneInfo(settings.TIME_ZONE)
        self.bounds = {}
        for name, value in self.window.items():
            try:
                day = dt.date.fromisoformat(value)
            except ValueError as error:
                raise IncorrectLookupParameters(f"{name} must be a date (YYYY-MM-DD), not {value[:20]!r}") from error
            self.bounds[name] = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        if self.value() is not None and self.value() not in FUNNEL_STEPS:
            raise IncorrectLookupParameters(f"reached must be one of {', '.join(FUNNEL_STEPS)}")
        if self.window and self.value() is None:
            raise IncorrectLookupParameters("reached_since and reached_before need a step (reached)")

    def expected_parameters(self):
        return [self.parameter_name, self.SINCE, self.BEFORE]

    def has_output(self) -> bool:
        return self.value() is not None

    def lookups(self, request, model_admin):
        since, before = self.window.get(self.SINCE), self.window.get(self.BEFORE)
        period = f" ({since or '…'} to before {before or '…'})" if self.window else ""
        return [(step, f"{step}{period}") for step in FUNNEL_STEPS]

    def queryset(self, request, queryset):
        step = self.value()
        if step is None:
            return queryset
        start = self.bounds.get(self.SINCE, dt.datetime.min.replace(tzinfo=dt.UTC))
        end = self.bounds.get(self.BEFORE, dt.datetime.max.replace(tzinfo=dt.UTC))
        return queryset.filter(pk__in=leads_reached(step=step, start=start, end=end))
