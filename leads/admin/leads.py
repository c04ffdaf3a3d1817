"""Leads and their history, read-only: every move goes through the lifecycle services (the actions), which
check the transition table and write the event; a selection is exported as the API's CSV file
(leads/export.py), without delivering anything."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import Q
from django.template.response import TemplateResponse

from contractors.models import Contractor
from core.admin import BigTableAdmin, ObjectActionsAdmin, RelatedAutocompleteFilter, action_form
from core.text import counted, sentence
from leads.admin.list_filters import (
    ReturnWaitingFilter,
    ScoreBandFilter,
    StepReachedFilter,
    WebhookFailedFilter,
    ZipCodeFilter,
)
from leads.errors import LeadError
from leads.export import lead_export_response
from leads.models import Lead, LeadEvent, WebhookAttempt
from leads.services.lifecycle import lead_assign, lead_return_approve, lead_return_deny, lead_withdraw
from leads.transitions import staff_may
from scoring.models import Property

Actor = LeadEvent.Actor

# lead_assign adds "(overrode exclusivity and caps and credit limit) (free of charge)" to the reason, and the
# event keeps 300 characters.
ASSIGN_REASON_LENGTH = 220


def refusal_text(lead: Lead, error: LeadError) -> str:
    """The service's message, naming the lead when the message does not already."""
    text = str(error)
    return text if text.startswith(f"Lead {lead.pk} ") else f"Lead {lead.pk}: {text}"


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
        label="Override exclusivity, caps and credit limit (recorded)",
        help_text="Give the leads even if the contractor does not own their ZIP codes, has reached its caps or, "
        "prepaid, its credit limit. Each lead's history records what was overridden.",
    )
    comp = forms.BooleanField(
        required=False,
        label="Free of charge",
        help_text="Price the leads at 0 instead of the price list's price (a make-good); recorded in their history.",
    )


class WithdrawForm(forms.Form):
    reason = forms.CharField(max_length=300, help_text="Why the leads are taken back; kept in each lead's history.")


class DenyReturnForm(forms.Form):
    note = forms.CharField(max_length=300, help_text="Why the return is refused; the contractor sees it.")


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
class LeadAdmin(ObjectActionsAdmin, BigTableAdmin):
    """Leads change only through the lifecycle services: the actions here call them and show each
    refusal as it is worded there. A lead's page offers the moves its state allows staff (the
    transition table) and, for a return, only while one waits (as lead_return_approve and _deny check)."""

    # Columns that fit a 1440 px screen beside the filters; the rest is on the lead's page.
    list_display = ["id", "trade", "state", "zip_code", "contractor", "score", "created_at"]
    list_filter = [
        "trade",
        "state",
        ReturnWaitingFilter,
        WebhookFailedFilter,
        StepReachedFilter,
        ("contractor", RelatedAutocompleteFilter),
        ZipCodeFilter,
        ScoreBandFilter,
        "urgent",
        "exploration",
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
    object_actions = {
        "assign": ("Assign or reassign", lambda lead: staff_may(lead, "assign") or staff_may(lead, "reassign")),
        "withdraw": ("Withdraw", lambda lead: staff_may(lead, "withdraw")),
        "approve_return": (
            "Approve the return",
            lambda lead: lead.return_pending and staff_may(lead, "return_approve"),
        ),
        "deny_return": ("Deny the return", lambda lead: lead.return_pending and staff_may(lead, "return_deny")),
    }
    fieldsets = [
        (None, {"fields": ["property", "trade", "zip_code", "state", "contractor"]}),
        (
            "Score when the lead was made",
            {
                "fields": [
                    "score",
                    "urgency",
                    "urgent",
                    "priority",
                    "model",
                    "model_version",
                    "reason_texts",
                    "exploration",
                    "sampling_weight",
                ]
            },
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
        ("Price and conversion", {"fields": ["price", "job_value"]}),
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

    def _ask(self, request, queryset, **page) -> tuple[dict | None, TemplateResponse | None]:
        """action_form, listing the selected leads oldest id first with their trade and contractor."""
        return action_form(self, request, queryset.select_related("trade", "contractor").order_by("pk"), **page)

    @admin.action(description="Assign or reassign the selected leads to a contractor", permissions=["move"])
    def assign(self, request, queryset):
        data, page = self._ask(
            request,
            queryset,
            form_class=AssignForm,
            action="assign",
            title="Assign leads",
            submit_label="Assign",
            intro="Unassigned leads are assigned, leads with another contractor are reassigned. The contractor "
            "must own each lead's ZIP code for its trade and have room under its caps and, prepaid, its credit limit, "
            "unless you override. Each lead is charged the price in force, unless given free of charge.",
        )
        if page is not None:
            return page
        contractor = data["contractor"]
        self._each(
            request,
            queryset,
            lambda lead: lead_assign(
                lead=lead,
                contractor=contractor,
                user=request.user,
                reason=data["reason"],
                override=data["override"],
                comp=data["comp"],
            ),
            f"{{leads}} assigned to {contractor}",
        )
        return None

    @admin.action(description="Withdraw the selected leads", permissions=["move"])
    def withdraw(self, request, queryset):
        data, page = self._ask(
            request,
            queryset,
            form_class=WithdrawForm,
            action="withdraw",
            title="Withdraw leads",
            submit_label="Withdraw",
            intro="Open leads are taken back for good; a withdrawn lead frees its contractor's cap slot.",
        )
        if page is not None:
            return page
        self._each(
            request,
            queryset,
            lambda lead: lead_withdraw(lead=lead, actor=Actor.STAFF, user=request.user, reason=data["reason"]),
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
        data, page = self._ask(
            request,
            queryset,
            form_class=DenyReturnForm,
            action="deny_return",
            title="Deny returns",
            submit_label="Deny",
            intro="The leads stay with their contractors and their return requests are cleared.",
        )
        if page is not None:
            return page
        self._each(
            request,
            queryset,
            lambda lead: lead_return_deny(lead=lead, user=request.user, note=data["note"]),
            "return denied for {leads}",
        )
        return None

    @admin.action(description="Export the selected leads as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        """The API's export file (same columns, formula escaping, streaming), for staff: a look at the
        leads, so nothing is delivered, whatever their state."""
        return lead_export_response(queryset, deliver=False)
