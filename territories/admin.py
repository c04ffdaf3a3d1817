import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from contractors.admin import ApiKeyInline, ContractorAdmin, ContractorForm, MembershipInline, StatusChangeInline
from contractors.models import Contractor
from core.admin import BigTableAdmin, action_form, service_form_response
from core.fields import ZipCodeFormField, is_zip_code
from leadengine import flows
from leads.selectors import lead_pool_by_zip
from scoring.models import Trade
from territories.errors import TerritoryError
from territories.models import ClaimRequest, SelfService, Territory, WaitlistEntry
from territories.selectors import DEFAULT_DEMAND_MIN_SCORE, DEFAULT_UNOWNED_LIMIT, territory_coverage_cached
from territories.services.requests import claim_request_deny
from territories.services.waitlist import waitlist_join

ZIP_SEPARATORS = re.compile(r"[\s,;]+")


def contractor_field(**kwargs) -> forms.ModelChoiceField:
    # Autocomplete: a select of every contractor grows with the business.
    return forms.ModelChoiceField(
        Contractor.objects.all(),
        widget=AutocompleteSelect(Territory._meta.get_field("contractor"), admin.site),
        **kwargs,
    )


class ClaimForm(forms.Form):
    contractor = contractor_field()
    trade = forms.ModelChoiceField(Trade.objects.all())
    zip_codes = forms.CharField(
        label="ZIP codes",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="Separated by spaces, commas or new lines. All of them are claimed, or none.",
    )
    note = forms.CharField(max_length=300, required=False, help_text="Why, e.g. the order number.")

    def clean_zip_codes(self) -> list[str]:
        codes = [code for code in ZIP_SEPARATORS.split(self.cleaned_data["zip_codes"].strip()) if code]
        malformed = [code for code in codes if not is_zip_code(code)]
        if malformed:
            raise forms.ValidationError(f"Not five-digit ZIP codes: {', '.join(malformed)}")
        return codes


class NoteForm(forms.Form):
    note = forms.CharField(max_length=300, required=False, help_text="Why; kept in the territory's history.")


class TransferForm(NoteForm):
    to_contractor = contractor_field(label="New owner")
    field_order = ["to_contractor", "note"]


class JoinForm(forms.Form):
    contractor = contractor_field()
    trade = forms.ModelChoiceField(Trade.objects.all())
    zip_code = ZipCodeFormField()


class CoverageForm(forms.Form):
    trade = forms.ModelChoiceField(Trade.objects.all())
    min_score = forms.FloatField(
        min_value=0,
        max_value=100,
        initial=DEFAULT_DEMAND_MIN_SCORE,
        help_text="Demand counts properties scoring this or more.",
    )
    state = forms.CharField(max_length=2, required=False, help_text="Two-letter US state; blank for all.")
    limit = forms.IntegerField(min_value=1, max_value=1000, initial=DEFAULT_UNOWNED_LIMIT, label="Unowned ZIPs shown")


def routing_report(model_admin: admin.ModelAdmin, request, hand_over: flows.HandOver) -> None:
    """Say what the new owners got of the unassigned leads waiting in their new ZIPs (flows route them)."""
    if hand_over.routing.assigned:
        model_admin.message_user(request, f"Unassigned leads of these ZIPs: {hand_over.routing}.")


class OwnershipFilter(admin.SimpleListFilter):
    title = "ownership"
    parameter_name = "ownership"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        if self.value() in ("active", "ended"):
            return queryset.filter(ended_at__isnull=self.value() == "active")
        return queryset


@admin.register(Territory)
class TerritoryAdmin(BigTableAdmin):
    """Ownership history is read-only; claims, releases and transfers go through the services (the
    claim form and the actions), which report conflicts as messages."""

    change_list_template = "admin/territories/territory/change_list.html"
    list_display = [
        "zip_code_id",
        "place",
        "trade",
        "contractor",
        "is_active",
        "started_at",
        "start_reason",
        "ended_at",
        "end_reason",
    ]
    list_filter = [
        "trade",
        OwnershipFilter,
        ("zip_code__state", admin.AllValuesFieldListFilter),
        ("contractor", admin.RelatedOnlyFieldListFilter),
        "contractor__status",
        "start_reason",
        "end_reason",
    ]
    list_select_related = ["zip_code", "trade", "contractor"]
    search_fields = ["zip_code__exact", "contractor__name", "contractor__slug"]
    date_hierarchy = "started_at"
    actions = ["release", "transfer"]

    @admin.display(description="ZIP", ordering="zip_code")
    def zip_code_id(self, territory: Territory) -> str:
        return territory.zip_code_id

    @admin.display(description="Place")
    def place(self, territory: Territory) -> str:
        return f"{territory.zip_code.city}, {territory.zip_code.state}"

    @admin.display(description="Active", boolean=True, ordering="ended_at")
    def is_active(self, territory: Territory) -> bool:
        return territory.is_active

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # history: rows change only through the services

    def has_manage_permission(self, request) -> bool:
        """Release and transfer: for staff who may change territories, although no row is edited by hand."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path("claim/", self.admin_site.admin_view(self.claim_view), name="territories_territory_claim"),
            path("coverage/", self.admin_site.admin_view(self.coverage_view), name="territories_territory_coverage"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:territories_territory_claim")

    def claim_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ClaimForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                claimed = flows.territories_claim(
                    contractor=data["contractor"],
                    trade=data["trade"],
                    zip_codes=data["zip_codes"],
                    claimed_by=request.user,
                    note=data["note"],
                )
            except TerritoryError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                codes = ", ".join(territory.zip_code_id for territory in claimed.result)
                self.message_user(request, f"{data['contractor']} now owns {data['trade']} in {codes}.")
                routing_report(self, request, claimed)
                changelist = reverse("admin:territories_territory_changelist")
                return redirect(f"{changelist}?contractor__id__exact={data['contractor'].pk}&ownership=active")
        return service_form_response(
            self,
            request,
            form=form,
            title="Claim territories",
            submit_label="Claim",
            intro="Give a contractor exclusive rights to ZIP codes for a trade.",
        )

    def coverage_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = CoverageForm(request.GET or None)
        coverage, pool_rows = None, []
        if form.is_valid():
            data = form.cleaned_data
            coverage = territory_coverage_cached(
                trade=data["trade"],
                min_score=data["min_score"],
                limit=data["limit"],
                state=data["state"].upper() or None,
            )
            pool = lead_pool_by_zip(trade=data["trade"], state=data["state"].upper() or None)
            owners = {row.zip_code: row.contractor_name for row in coverage.owned}
            # The unassigned leads by ZIP, most first: owned ZIPs whose owner is paused or at its caps,
            # and unowned ZIPs (nobody to route to until the territory is sold).
            pool_rows = sorted(
                ((code, count, owners.get(code, "")) for code, count in pool.items()),
                key=lambda row: (-row[1], row[0]),
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Coverage",
            "form": form,
            "coverage": coverage,
            "pool_rows": pool_rows,
            "pool_total": sum(row[1] for row in pool_rows),
        }
        return TemplateResponse(request, "admin/territories/territory/coverage.html", context)

    @admin.action(description="Release the selected territories", permissions=["manage"])
    def release(self, request, queryset):
        data, page = action_form(
            self,
            request,
            queryset.select_related("trade", "contractor"),
            form_class=NoteForm,
            action="release",
            title="Release territories",
            intro="These ownerships end now; each territory goes to its waitlist, if any. All or none.",
        )
        if data is None:
            return page
        try:
            released = flows.territories_release(territories=queryset, released_by=request.user, note=data["note"])
        except TerritoryError as error:
            self.message_user(request, str(error), messages.ERROR)
            return None
        self.message_user(request, f"Released {len(released.result.territories)} territories.")
        for promotion in released.result.promotions:
            self.message_user(request, f"Waitlist: {promotion}.")
        routing_report(self, request, released)
        return None

    @admin.action(description="Transfer the selected territories to another contractor", permissions=["manage"])
    def transfer(self, request, queryset):
        data, page = action_form(
            self,
            request,
            queryset.select_related("trade", "contractor"),
            form_class=TransferForm,
            action="transfer",
            title="Transfer territories",
            intro="These ownerships move to the new owner at one instant. All or none.",
        )
        if data is None:
            return page
        try:
            transferred = flows.territories_transfer(
                territories=queryset,
                to_contractor=data["to_contractor"],
                transferred_by=request.user,
                note=data["note"],
            )
        except TerritoryError as error:
            self.message_user(request, str(error), messages.ERROR)
            return None
        self.message_user(request, f"Transferred {len(transferred.result)} territories to {data['to_contractor']}.")
        routing_report(self, request, transferred)
        return None


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(BigTableAdmin):
    change_list_template = "admin/territories/waitlistentry/change_list.html"
    list_display = ["zip_code_id", "trade", "contractor", "status", "joined_at", "offer_expires_at", "closed_at"]
    list_filter = ["status", "trade", "contractor__status"]
    list_select_related = ["trade", "contractor"]
    search_fields = ["zip_code__exact", "contractor__name"]
    actions = ["accept_offer", "leave"]

    @admin.display(description="ZIP", ordering="zip_code")
    def zip_code_id(self, entry: WaitlistEntry) -> str:
        return entry.zip_code_id

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the line changes only through the services

    def has_manage_permission(self, request) -> bool:
        """The actions: for staff who may change waitlist entries, although no row is edited by hand."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path("join/", self.admin_site.admin_view(self.join_view), name="territories_waitlistentry_join"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:territories_waitlistentry_join")

    def join_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = JoinForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                entry = waitlist_join(contractor=data["contractor"], trade=data["trade"], zip_code=data["zip_code"])
            except TerritoryError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"{entry.contractor} is in line for {entry.zip_code_id} {entry.trade}.")
                return redirect("admin:territories_waitlistentry_changelist")
        return service_form_response(
            self,
            request,
            form=form,
            title="Join a waitlist",
            submit_label="Join",
            intro="Queue a contractor for a ZIP code another contractor owns.",
        )

    @admin.action(description="Accept the selected offers on the contractor's behalf", permissions=["manage"])
    def accept_offer(self, request, queryset):
        for entry in queryset.order_by("pk"):
            try:
                accepted = flows.waitlist_offer_accept(entry=entry, accepted_by=request.user)
            except TerritoryError as error:
                self.message_user(request, f"{entry}: {error}", messages.ERROR)
            else:
                territory = accepted.result
                self.message_user(
                    request, f"{territory.contractor} now owns {territory.zip_code_id} {territory.trade}."
                )
                routing_report(self, request, accepted)

    @admin.action(description="Take the selected contractors out of line (declines an offer)", permissions=["manage"])
    def leave(self, request, queryset):
        for entry in queryset.order_by("pk"):
            try:
                left = flows.waitlist_leave(entry=entry)
            except TerritoryError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"{entry.contractor} left the line for {entry.zip_code_id} {entry.trade}.")
                for promotion in left.result:
                    self.message_user(request, f"Waitlist: {promotion}.")
                routing_report(self, request, left)


# --- The contractor's page, completed with what territories know of the contractor -----------------------
# A contractor's page shows its territories and waitlist places, and refuses to drop a trade the contractor
# still owns territories of, naming the ZIPs. Territories sit above contractors, so that part of the page is
# added here: the contractors app's ContractorAdmin with these inlines and this check, registered in its place.


class DenyForm(forms.Form):
    note = forms.CharField(max_length=300, help_text="Why the requests are denied; the contractors see it.")


@admin.register(ClaimRequest)
class ClaimRequestAdmin(BigTableAdmin):
    """Contractors' claims waiting for staff. Approving claims each request's ZIPs through the claim service
    (all of a request or none of it) and routes their waiting leads; denying needs a reason. Either is told
    to the contractor."""

    list_display = ["id", "contractor", "trade", "zip_list", "note", "status", "requested_at", "decided_at"]
    list_filter = ["status", "trade"]
    list_select_related = ["trade", "contractor"]
    search_fields = ["contractor__name"]
    actions = ["approve", "deny"]
    fields = ["contractor", "trade", "zip_codes", "note", "status", "requested_at", "requested_by", "decided_at",
              "decided_by", "decision_note"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="ZIPs")
    def zip_list(self, request: ClaimRequest) -> str:
        shown = ", ".join(request.zip_codes[:8])
        return shown + (f" and {len(request.zip_codes) - 8} more" if len(request.zip_codes) > 8 else "")

    def has_add_permission(self, request) -> bool:
        return False  # contractors ask through the API; staff claim directly (Territories, "Claim")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_decide_permission(self, request) -> bool:
        return request.user.has_perm("territories.add_territory")  # deciding claims territories

    @admin.action(description="Approve the selected claim requests", permissions=["decide"])
    def approve(self, request, queryset):
        for claim in queryset.select_related("contractor", "trade").order_by("requested_at", "pk"):
            try:
                approved = flows.claim_request_approve(request=claim, user=request.user)
            except TerritoryError as error:
                self.message_user(request, f"Claim request {claim.pk}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"Claim request {claim.pk} approved: {len(approved.result)} territories "
                                  f"to {claim.contractor}.", messages.SUCCESS)  # fmt: skip
                routing_report(self, request, approved)

    @admin.action(description="Deny the selected claim requests", permissions=["decide"])
    def deny(self, request, queryset):
        data, page = action_form(
            self,
            request,
            queryset.select_related("trade", "contractor"),
            form_class=DenyForm,
            action="deny",
            title="Deny claim requests",
            intro="The contractors are told, with your reason.",
        )
        if data is None:
            return page
        for claim in queryset.order_by("requested_at", "pk"):
            try:
                claim_request_deny(request=claim, user=request.user, note=data["note"])
            except TerritoryError as error:
                self.message_user(request, f"Claim request {claim.pk}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"Claim request {claim.pk} denied.", messages.SUCCESS)
        return None


@admin.register(SelfService)
class SelfServiceAdmin(admin.ModelAdmin):
    list_display = ["trade", "enabled", "zip_limit"]


class ContractorWithTerritoriesForm(ContractorForm):
    def clean_served_trades(self):
        trades = self.cleaned_data["served_trades"]
        if self.instance.pk:
            # The service and the database refuse this too; checked here so the form says which ZIPs.
            owned = list(
                Territory.objects.active()
                .filter(contractor=self.instance)
                .exclude(trade__in=trades)
                .order_by("trade__name", "zip_code_id")
                .values_list("trade__name", "zip_code_id")
            )
            if owned:
                listed = ", ".join(f"{code} {trade}" for trade, code in owned[:20])
                more = f" and {len(owned) - 20} more" if len(owned) > 20 else ""
                raise forms.ValidationError(
                    f"It still owns territories of the trades removed: {listed}{more}. Release or transfer them first."
                )
        return trades


class TerritoryInline(admin.TabularInline):
    model = Territory
    fk_name = "contractor"
    extra = 0
    fields = ["zip_code", "trade", "started_at", "start_reason"]
    readonly_fields = fields
    ordering = ["trade__name", "zip_code"]
    show_change_link = True
    can_delete = False
    verbose_name_plural = "territories owned"

    def get_queryset(self, request):
        return super().get_queryset(request).active().select_related("trade", "zip_code", "contractor")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # claims go through the claim form, which reports conflicts


class WaitlistInline(admin.TabularInline):
    model = WaitlistEntry
    extra = 0
    fields = ["zip_code", "trade", "status", "joined_at", "offer_expires_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False
    verbose_name_plural = "waitlist places"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(status__in=WaitlistEntry.OPEN)
            .select_related("trade", "zip_code", "contractor")
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


admin.site.unregister(Contractor)


@admin.register(Contractor)
class ContractorWithTerritoriesAdmin(ContractorAdmin):
    form = ContractorWithTerritoriesForm
    inlines = [MembershipInline, TerritoryInline, WaitlistInline, ApiKeyInline, StatusChangeInline]
