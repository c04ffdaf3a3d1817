import re
from collections.abc import Callable
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from contractors.admin import ApiKeyInline, ContractorAdmin, ContractorForm, MembershipInline, StatusChangeInline
from contractors.models import Contractor
from core.admin import BigTableAdmin, ObjectActionsAdmin, RelatedAutocompleteFilter, action_form, service_form_response
from core.fields import ZipCodeFormField, is_zip_code
from leadengine import flows
from leads.selectors import contractors_at_cap, lead_pool_by_zip
from scoring.models import Trade
from territories.errors import TerritoryError
from territories.market_map import STATUSES, market_map, zip_status
from territories.models import ClaimRequest, SelfService, Territory, WaitlistEntry
from territories.selectors import (
    DEFAULT_DEMAND_MIN_SCORE,
    OFFER_EXPIRING_HOURS,
    MarketZip,
    coverage_default_trade,
    market_zips,
    waitlist_offers_expiring,
)
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


# The coverage table's orders: (value, label); the first is the default.
COVERAGE_SORTS = [("demand", "Demand, most first"), ("unassigned", "Unassigned leads, most first"), ("zip", "ZIP code")]
COVERAGE_PAGE_SIZE = 100


class CoverageForm(forms.Form):
    trade = forms.ModelChoiceField(Trade.objects.order_by("name"))
    min_score = forms.FloatField(
        min_value=0,
        max_value=100,
        required=False,
        help_text="Demand counts properties scoring this or more.",
    )
    state = forms.CharField(max_length=2, required=False, help_text="Two-letter US state; blank for all.")
    status = forms.ChoiceField(choices=[("", "Every ZIP"), *STATUSES.items()], required=False, label="ZIPs listed")
    zip = ZipCodeFormField(required=False, help_text="That ZIP's row alone, whatever its status.")
    contractor = contractor_field(required=False, help_text="Its ZIPs outlined on the map.")
    sort = forms.ChoiceField(choices=COVERAGE_SORTS, required=False)

    def clean_min_score(self) -> float:
        score = self.cleaned_data["min_score"]
        return DEFAULT_DEMAND_MIN_SCORE if score is None else score

    def clean_state(self) -> str:
        return self.cleaned_data["state"].upper()


def coverage_query(query: QueryDict) -> QueryDict | None:
    """The coverage page's parameters with its defaults filled in: the default trade (so that the page opens
    on a market, not an empty form), the default demand threshold and order. None when there is no trade."""
    query = query.copy()
    if not query.get("trade"):
        trade = coverage_default_trade()
        if trade is None:
            return None
        query["trade"] = str(trade.pk)
    query.setdefault("min_score", str(DEFAULT_DEMAND_MIN_SCORE))
    query.setdefault("sort", COVERAGE_SORTS[0][0])
    return query


def coverage_row_link(
    trade: Trade, *, contractor: Contractor | None = None, relative: bool = False, **query: str
) -> Callable[[MarketZip], str]:
    """A map circle's link: the coverage page on the ZIP's row (its anchor), with `query` kept; `relative`
    (only the query) from the coverage page itself, which keeps a market's thousands of links short."""
    page = "" if relative else reverse("admin:territories_territory_coverage")
    kept = {"trade": str(trade.pk), **({"contractor": str(contractor.pk)} if contractor else {}), **query}
    prefix = f"{page}?{urlencode(kept)}&zip="  # encoded once: a ZIP code is five digits
    return lambda row: f"{prefix}{row.zip_code}#zip-{row.zip_code}"


def claim_link(row: MarketZip, trade: Trade, contractor: Contractor | None) -> str:
    """The claim form, filled in with this ZIP and trade (and the highlighted contractor), for a free ZIP
    nobody is in line for; blank for any other."""
    if row.contractor_id is not None or row.waitlisted:
        return ""
    query = {"trade": trade.pk, "zip_codes": row.zip_code, **({"contractor": contractor.pk} if contractor else {})}
    return f"{reverse('admin:territories_territory_claim')}?{urlencode(query)}"


def routing_report(model_admin: admin.ModelAdmin, request, hand_over: flows.HandOver) -> None:
    """Say what the new owners got of the unassigned leads waiting in their new ZIPs (flows route them)."""
    if hand_over.routing.assigned:
        model_admin.message_user(request, f"Unassigned leads of these ZIPs: {hand_over.routing}.")


class OfferExpiringFilter(admin.SimpleListFilter):
    """Open offers about to lapse (waitlist_offers_expiring): the dashboard's "needs attention" links here."""

    title = "offer"
    parameter_name = "offer"

    def lookups(self, request, model_admin):
        return [("expiring", f"Expires within {OFFER_EXPIRING_HOURS} hours")]

    def queryset(self, request, queryset):
        if self.value() == "expiring":
            return queryset.filter(pk__in=waitlist_offers_expiring(now=timezone.now()).values("pk"))
        return queryset


class CapReachedFilter(admin.SimpleListFilter):
    """Active contractors with no room left under a cap now (leads.selectors.contractors_at_cap)."""

    title = "caps"
    parameter_name = "cap"

    def lookups(self, request, model_admin):
        return [("reached", "A cap reached")]

    def queryset(self, request, queryset):
        if self.value() == "reached":
            return queryset.filter(pk__in=contractors_at_cap(now=timezone.now()))
        return queryset


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
class TerritoryAdmin(ObjectActionsAdmin, BigTableAdmin):
    """Ownership history is read-only; claims, releases and transfers go through the services (the
    claim form and the actions), which report conflicts as messages. A territory's page offers its
    release and transfer while it is held."""

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
        ("contractor", RelatedAutocompleteFilter),
        "contractor__status",
        "start_reason",
        "end_reason",
    ]
    list_select_related = ["zip_code", "trade", "contractor"]
    search_fields = ["zip_code__exact", "contractor__name", "contractor__slug"]
    date_hierarchy = "started_at"
    actions = ["release", "transfer"]
    object_actions = {
        "release": ("Release", lambda territory: territory.is_active),
        "transfer": ("Transfer", lambda territory: territory.is_active),
    }

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
        form = ClaimForm(request.POST or None, initial=request.GET.dict())  # coverage's claim links fill it in
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
        """One trade's market: the map, and every ZIP in a table (paginated; by demand, by the leads waiting
        in the pool or by code), with its unassigned leads and, free, its claim link."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = coverage_query(request.GET)
        form = CoverageForm(query)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Coverage", "form": form}
        if query is not None and form.is_valid():
            context.update(self._coverage(request, form.cleaned_data))
        return TemplateResponse(request, "admin/territories/territory/coverage.html", context)

    def _coverage(self, request, data: dict) -> dict:
        trade, contractor, chosen = data["trade"], data["contractor"], data["zip"]
        zips = market_zips(trade=trade, min_score=data["min_score"], state=data["state"] or None)
        defaults = {"min_score": DEFAULT_DEMAND_MIN_SCORE, "state": "", "sort": COVERAGE_SORTS[0][0]}
        kept = {key: str(data[key]) for key, default in defaults.items() if data[key] != default}  # links stay short
        market = market_map(
            f"{trade} ZIPs: owned, free, free with demand, waitlisted",
            zips,
            link=coverage_row_link(trade, contractor=contractor, relative=True, **kept),
            highlight=contractor.pk if contractor else None,
            highlight_label=f"{contractor}'s ZIPs",
            selected=chosen or None,
        )
        if chosen:
            listed = [row for row in zips if row.zip_code == chosen]
        else:
            listed = [row for row in zips if not data["status"] or zip_status(row) == data["status"]]
        # The unassigned leads by ZIP: in owned ZIPs whose owner is paused or at its caps, and in unowned
        # ZIPs (nobody to route to until the territory is sold).
        pool = lead_pool_by_zip(trade=trade, state=data["state"] or None)
        if data["sort"] == "demand":  # zips come by code
            listed.sort(key=lambda row: -row.demand)
        elif data["sort"] == "unassigned":
            listed.sort(key=lambda row: -pool.get(row.zip_code, 0))
        page = Paginator(listed, COVERAGE_PAGE_SIZE).get_page(request.GET.get("page"))
        may_claim = self.has_add_permission(request)
        return {
            "trade": trade,
            "min_score": data["min_score"],
            "market": market,
            "chosen_zip": chosen,
            "page": page,
            "rows": [
                (
                    row,
                    STATUSES[zip_status(row)],
                    claim_link(row, trade, contractor) if may_claim else "",
                    pool.get(row.zip_code, 0),
                )
                for row in page.object_list
            ],
            "pool_total": sum(pool.values()),
            "sorts": COVERAGE_SORTS,
        }

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
class WaitlistEntryAdmin(ObjectActionsAdmin, BigTableAdmin):
    """A place in line changes only through the waitlist services; its page offers accepting an open
    offer (waitlist_offer_accept's rule) and leaving the line while the entry is open."""

    change_list_template = "admin/territories/waitlistentry/change_list.html"
    list_display = ["zip_code_id", "trade", "contractor", "status", "joined_at", "offer_expires_at", "closed_at"]
    list_filter = ["status", OfferExpiringFilter, "trade", "contractor__status"]
    list_select_related = ["trade", "contractor"]
    search_fields = ["zip_code__exact", "contractor__name"]
    actions = ["accept_offer", "leave"]
    object_actions = {
        "accept_offer": ("Accept the offer", lambda entry: entry.offer_open(timezone.now())),
        "leave": ("Take out of line", lambda entry: entry.status in WaitlistEntry.OPEN),
    }

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
    list_filter = [*ContractorAdmin.list_filter, CapReachedFilter]
    inlines = [MembershipInline, TerritoryInline, WaitlistInline, ApiKeyInline, StatusChangeInline]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        return [*fieldsets, ("Market", {"fields": ["market_maps"]})] if obj is not None else fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "market_maps"]

    @admin.display(description="Its ZIPs on the map")
    def market_maps(self, contractor: Contractor) -> SafeString:
        """A map of each trade the contractor serves, its own ZIPs outlined: of the metros it owns ZIPs in,
        or of the whole market when it owns none yet. A circle opens the ZIP's coverage row."""
        maps = []
        for trade in contractor.trades.order_by("name"):
            drawn = market_map(
                f"{trade} ZIPs, {contractor}'s outlined",
                market_zips(trade=trade),
                link=coverage_row_link(trade, contractor=contractor),
                highlight=contractor.pk,
                highlight_label=f"{contractor}'s ZIPs",
            )
            regions = [region for region in drawn.regions if region.highlighted] or drawn.regions
            maps.append(
                render_to_string(
                    "admin/territories/market_map.html", {"title": trade, "market": drawn, "regions": regions}
                )
            )
        return mark_safe("".join(maps)) if maps else mark_safe("<p>It serves no trade yet.</p>")
