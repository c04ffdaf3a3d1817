"""The leads admin. Leads and their history are read-only here: every move goes through the lifecycle
services (the actions), which check the transition table and write the event; a selection is exported as
the API's CSV file (leads/export.py), without delivering anything. Each trade's quality
filters are edited here; the do-not-contact list is added to (one entry or a CSV file) through its
service, which withdraws the unassigned leads an entry matches."""

import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Q
from django.http import QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from contractors.models import Contractor
from core.admin import BigTableAdmin, service_form_response
from core.fields import is_zip_code
from core.text import counted
from leads.errors import LeadError, SuppressionImportError
from leads.export import lead_export_response
from leads.models import Lead, LeadEvent, LeadFilter, Suppression, WebhookAttempt, suppression_value_normalize
from leads.services.lifecycle import lead_assign, lead_return_approve, lead_return_deny, lead_withdraw
from leads.services.suppressions import (
    SuppressionSummary,
    suppression_add,
    suppression_entry_clean,
    suppressions_import_csv,
)
from scoring.models import Property

State, Actor = Lead.State, LeadEvent.Actor

# lead_assign adds "(overrode exclusivity and caps)" to the reason, and the event keeps 300 characters.
ASSIGN_REASON_LENGTH = 250
IMPORT_MAX_BYTES = 20 * 1024 * 1024
IMPORT_ERRORS_SHOWN = 50
MATCHING_LEADS_SHOWN = 50


def refusal_text(lead: Lead, error: LeadError) -> str:
    """The service's message, naming the lead when the message does not already."""
    text = str(error)
    return text if text.startswith(f"Lead {lead.pk} ") else f"Lead {lead.pk}: {text}"


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- Leads ------------------------------------------------------------------------------------------


class AssignForm(forms.Form):
    # Autocomplete: a select of every contractor grows with the business.
    contractor = forms.ModelChoiceField(
        Contractor.objects.all(), widget=AutocompleteSelect(Lead._meta.get_field("contractor"), admin.site)
    )
    reason = forms.CharField(
        max_length=ASSIGN_REASON_LENGTH, help_text="Why the leads are given by hand; kept in each lead's history."
    )
    override = forms.BooleanField(
        required=False,
        label="Override exclusivity and caps (recorded)",
        help_text="Give the leads even if the contractor does not own their ZIP codes or has reached its caps. "
        "Each lead's history records what was overridden.",
    )


class WithdrawForm(forms.Form):
    reason = forms.CharField(max_length=300, help_text="Why the leads are taken back; kept in each lead's history.")


class DenyReturnForm(forms.Form):
    note = forms.CharField(max_length=300, help_text="Why the return is refused; the contractor sees it.")


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


class LeadEventInline(admin.TabularInline):
    model = LeadEvent
    extra = 0
    fields = ["at", "action", "from_state", "to_state", "actor", "user", "contractor", "reason", "override"]
    readonly_fields = fields
    ordering = ["at", "id"]
    can_delete = False
    verbose_name_plural = "history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "contractor")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # events are written by the services, with the change they record

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    fields = ["assigned_at", "number", "at", "contractor", "url", "outcome", "status_code", "latency_ms", "error",
              "next_at"]  # fmt: skip
    readonly_fields = fields
    ordering = ["assigned_at", "number"]
    can_delete = False
    verbose_name_plural = "webhook attempts"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("contractor")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # written by the webhook delivery, never by hand

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Lead)
class LeadAdmin(BigTableAdmin):
    """Leads change only through the lifecycle services: the actions here call them and show each
    refusal as it is worded there."""

    list_display = [
        "id",
        "trade",
        "state",
        "zip_code",
        "contractor",
        "score",
        "urgency",
        "model_version",
        "created_at",
        "assigned_at",
    ]
    list_filter = [
        "trade",
        "state",
        ReturnWaitingFilter,
        WebhookFailedFilter,
        "contractor",
        ZipCodeFilter,
        ScoreBandFilter,
        # Date filters rather than a date hierarchy: the hierarchy's year and month links are DISTINCT
        # queries over every lead on each page load.
        ("created_at", admin.DateFieldListFilter),
        ("assigned_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["trade", "contractor"]
    search_fields = ["zip_code__exact", "property__parcel_id__exact"]  # as get_search_results searches them
    search_help_text = "A ZIP code or a parcel id, exactly."
    inlines = [LeadEventInline, WebhookAttemptInline]
    actions = ["assign", "withdraw", "approve_return", "deny_return", "export_csv"]
    fieldsets = [
        (None, {"fields": ["property", "trade", "zip_code", "state", "contractor"]}),
        (
            "Score when the lead was made",
            {"fields": ["score", "urgency", "priority", "model", "model_version", "reason_texts"]},
        ),
        (
            "Dates",
            {
                "fields": [
                    "generated_on",
                    "created_at",
                    "assigned_at",
                    "delivered_at",
                    "accepted_at",
                    "contacted_at",
                    "converted_at",
                    "closed_at",
                    "expires_at",
                ]
            },
        ),
        ("Return", {"fields": ["return_waiting", "return_reason", "return_note", "return_requested_at"]}),
        ("Conversion", {"fields": ["job_value"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    def get_search_results(self, request, queryset, search_term):
        """The ZIP (an index holds it) or the property found by its parcel id's unique index first, rather
        than a join of every lead to its property to compare parcel ids."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # The ids themselves rather than a subquery: the planner estimates the rows (the change list's
        # count) from them, where a subquery would be guessed at half the leads.
        parcels = list(Property.objects.filter(parcel_id=term).values_list("pk", flat=True))
        return queryset.filter(Q(zip_code=term) | Q(property__in=parcels)), False

    @admin.display(description="Why")
    def reason_texts(self, lead: Lead) -> str:
        return "; ".join(reason.get("text", "") for reason in lead.reasons) or "-"

    @admin.display(description="Waiting for approval", boolean=True)
    def return_waiting(self, lead: Lead) -> bool:
        return lead.return_pending

    def has_add_permission(self, request) -> bool:
        return False  # leads are made by generation

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a lead changes only through the actions, which record each move

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_move_permission(self, request) -> bool:
        """The actions: for staff who may change leads, although no field is edited by hand."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def _each(self, request, queryset, move, done: str) -> None:
        """`move(lead)` for each selected lead, oldest id first: the leads it moved in one message (`done`,
        with "{leads}" for their count), each refusal in a message of its own."""
        moved = []
        for lead in queryset.order_by("pk"):
            try:
                move(lead)
            except LeadError as error:
                self.message_user(request, refusal_text(lead, error), messages.ERROR)
            else:
                moved.append(lead.pk)
        if moved:
            text = sentence(done.replace("{leads}", counted(len(moved), "lead")))
            self.message_user(request, f"{text}: {', '.join(map(str, moved))}.", messages.SUCCESS)

    def _form_page(self, request, queryset, *, form, action: str, title: str, submit_label: str, intro: str):
        return service_form_response(
            self,
            request,
            form=form,
            title=title,
            submit_label=submit_label,
            intro=intro,
            objects=queryset.select_related("trade", "contractor").order_by("pk"),
            action=action,
        )

    @admin.action(description="Assign or reassign the selected leads to a contractor", permissions=["move"])
    def assign(self, request, queryset):
        form = AssignForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return self._form_page(
                request,
                queryset,
                form=form,
                action="assign",
                title="Assign leads",
                submit_label="Assign",
                intro="Unassigned leads are assigned, leads with another contractor are reassigned. The contractor "
                "must own each lead's ZIP code for its trade and have room under its caps, unless you override.",
            )
        data = form.cleaned_data
        contractor = data["contractor"]
        self._each(
            request,
            queryset,
            lambda lead: lead_assign(
                lead=lead, contractor=contractor, user=request.user, reason=data["reason"], override=data["override"]
            ),
            f"{{leads}} assigned to {contractor}",
        )
        return None

    @admin.action(description="Withdraw the selected leads", permissions=["move"])
    def withdraw(self, request, queryset):
        form = WithdrawForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return self._form_page(
                request,
                queryset,
                form=form,
                action="withdraw",
                title="Withdraw leads",
                submit_label="Withdraw",
                intro="Open leads are taken back for good; a withdrawn lead frees its contractor's cap slot.",
            )
        reason = form.cleaned_data["reason"]
        self._each(
            request,
            queryset,
            lambda lead: lead_withdraw(lead=lead, actor=Actor.STAFF, user=request.user, reason=reason),
            "{leads} withdrawn",
        )
        return None

    @admin.action(description="Approve the selected leads' waiting returns", permissions=["move"])
    def approve_return(self, request, queryset):
        self._each(
            request, queryset, lambda lead: lead_return_approve(lead=lead, user=request.user), "{leads} returned"
        )

    @admin.action(description="Deny the selected leads' waiting returns", permissions=["move"])
    def deny_return(self, request, queryset):
        form = DenyReturnForm(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return self._form_page(
                request,
                queryset,
                form=form,
                action="deny_return",
                title="Deny returns",
                submit_label="Deny",
                intro="The leads stay with their contractors and their return requests are cleared.",
            )
        note = form.cleaned_data["note"]
        self._each(
            request,
            queryset,
            lambda lead: lead_return_deny(lead=lead, user=request.user, note=note),
            "return denied for {leads}",
        )
        return None

    @admin.action(description="Export the selected leads as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        """The API's export file (same columns, formula escaping, streaming), for staff: a look at the
        leads, so nothing is delivered, whatever their state."""
        return lead_export_response(queryset, deliver=False)


# --- Quality filters --------------------------------------------------------------------------------


class LeadFilterForm(forms.ModelForm):
    property_types = forms.MultipleChoiceField(
        choices=Property.Type.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Property types that may become leads; none ticked: all.",
    )

    # The database's check constraints, as errors on the field concerned (model validation would
    # report them only as the constraint's name, above the form).
    BOUNDS = {
        "min_score": (0, 100),
        "min_urgency": (0, 100),
        "max_per_zip_per_day": (1, None),
        "cooldown_days": (1, None),
    }

    class Meta:
        model = LeadFilter
        fields = [
            "trade",
            "enabled",
            "min_score",
            "min_urgency",
            "owner_occupied_only",
            "property_types",
            "max_per_zip_per_day",
            "cooldown_days",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, (low, high) in self.BOUNDS.items():
            field = self.fields.get(name)
            if field is None:
                continue
            field.validators = [v for v in field.validators if not isinstance(v, MinValueValidator | MaxValueValidator)]
            field.validators.append(MinValueValidator(low))
            field.widget.attrs["min"] = low
            if high is not None:
                field.validators.append(MaxValueValidator(high))
                field.widget.attrs["max"] = high


@admin.register(LeadFilter)
class LeadFilterAdmin(admin.ModelAdmin):
    form = LeadFilterForm
    list_display = [
        "trade",
        "enabled",
        "min_score",
        "min_urgency",
        "owner_occupied_only",
        "type_names",
        "max_per_zip_per_day",
        "cooldown_days",
        "updated_at",
    ]
    list_select_related = ["trade"]

    @admin.display(description="Property types")
    def type_names(self, lead_filter: LeadFilter) -> str:
        return ", ".join(Property.Type(value).label for value in lead_filter.property_types) or "All"

    def get_readonly_fields(self, request, obj=None):
        return ["trade", "updated_at"] if obj is not None else ["updated_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # generation would recreate the defaults; untick "enabled" to stop a trade's leads


# --- The do-not-contact list ------------------------------------------------------------------------


class SuppressionForm(forms.Form):
    kind = forms.ChoiceField(choices=Suppression.Kind.choices)
    value = forms.CharField(
        max_length=300,
        help_text="The parcel id, street address or owner name; kept upper-case, punctuation as spaces.",
    )
    zip_code = forms.CharField(
        max_length=5, required=False, label="ZIP code", help_text="Addresses only: the ZIP; blank: any ZIP."
    )
    note = forms.CharField(max_length=300, required=False, help_text="Who asked, and how.")

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                suppression_entry_clean(
                    kind=data["kind"], value=data["value"], zip_code=data["zip_code"], note=data["note"]
                )
            except LeadError as error:
                raise forms.ValidationError(sentence(str(error))) from None
        return data


class SuppressionImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="A header of kind,value and optionally zip,note; kind is parcel, address or owner. "
        "One bad row and nothing is imported.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB.")
        return upload


@admin.register(Suppression)
class SuppressionAdmin(BigTableAdmin):
    """Entries are added through the service (one by one here, or a CSV file), which withdraws the
    unassigned leads they match; they are not edited afterwards. Lifting one is a delete."""

    change_list_template = "admin/leads/suppression/change_list.html"
    list_display = ["value", "kind", "zip_code", "note", "source", "created_by", "created_at"]
    list_filter = ["kind", "source"]
    list_select_related = ["created_by"]
    search_fields = ["value"]
    search_help_text = "Part of a value, in any case and punctuation."

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        # Values are stored normalized: "123 Main St." finds "123 MAIN ST".
        return super().get_search_results(request, queryset, suppression_value_normalize(search_term))

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="leads_suppression_import"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SuppressionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                summary = suppression_add(
                    kind=data["kind"],
                    value=data["value"],
                    zip_code=data["zip_code"],
                    note=data["note"],
                    created_by=request.user,
                )
            except LeadError as error:
                form.add_error(None, sentence(str(error)))
            else:
                listed = "added to" if summary.added else "already on"
                value = suppression_value_normalize(data["value"])
                self.message_user(request, f"{value} {listed} the do-not-contact list: {summary}.", messages.SUCCESS)
                self._matching_leads_message(request, summary)
                return redirect("admin:leads_suppression_changelist")
        return service_form_response(
            self,
            request,
            form=form,
            title="Add to the do-not-contact list",
            submit_label="Add",
            intro="Unassigned leads the entry matches are withdrawn at once; leads already with contractors "
            "are listed for you to decide.",
        )

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = SuppressionImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                summary = suppressions_import_csv(data=form.cleaned_data["file"].read(), created_by=request.user)
            except SuppressionImportError as error:
                form.add_error("file", self._import_errors(error))
            else:
                self.message_user(request, f"Do-not-contact file imported: {summary}.", messages.SUCCESS)
                self._matching_leads_message(request, summary)
                return redirect("admin:leads_suppression_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import a do-not-contact file",
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/leads/suppression/import.html", context)

    @staticmethod
    def _import_errors(error: SuppressionImportError) -> list[str]:
        shown = [f"Line {line}: {message}" for line, message in error.errors[:IMPORT_ERRORS_SHOWN]]
        more = len(error.errors) - IMPORT_ERRORS_SHOWN
        tail = [f"... and {more} more bad rows."] if more > 0 else []
        return [f"{len(error.errors)} bad row(s); nothing was imported.", *shown, *tail]

    def _matching_leads_message(self, request, summary: SuppressionSummary) -> None:
        """Open leads with contractors that match are left to staff: link them, to withdraw if need be."""
        ids = summary.assigned_leads
        if not ids:
            return
        url = f"{reverse('admin:leads_lead_changelist')}?id__in={','.join(map(str, ids))}"
        shown = ", ".join(map(str, ids[:MATCHING_LEADS_SHOWN]))
        more = f" and {len(ids) - MATCHING_LEADS_SHOWN} more" if len(ids) > MATCHING_LEADS_SHOWN else ""
        self.message_user(
            request,
            format_html(
                '{} with contractors match and were left to you (withdraw them if need be): <a href="{}">{}{}</a>.',
                sentence(counted(len(ids), "lead")),
                url,
                shown,
                more,
            ),
            messages.WARNING,
        )
