from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q

from contractors.errors import ApiKeyOwnerInvalid, ContractorError, MembershipError
from contractors.models import ApiKey, Contractor, ContractorNotice, ContractorStatusChange, Membership
from contractors.services.api_keys import api_key_create, api_key_revoke
from contractors.services.contractors import (
    contractor_member_add,
    contractor_member_remove,
    contractor_status_change,
    contractor_status_may,
    contractor_trades_set,
    contractor_webhook_secret_rotate,
)
from contractors.services.webhook_targets import validate_webhook_url
from core.admin import ObjectActionsAdmin, RelatedAutocompleteFilter, action_form
from scoring.models import Trade


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        required=False,
        help_text="Recorded with the change; a suspended contractor's API clients see it.",
    )


class WebhookUrlField(forms.URLField):
    """A webhook URL whose target is checked first, so that any spelling of an internal address (such as
    2130706433) is refused with the reason; the model's validators, Django's URL syntax among them, run
    after it."""

    default_validators = [validate_webhook_url]


class ContractorForm(forms.ModelForm):
    # Not the model's `trades`: that relation has its own table and is written by contractor_trades_set.
    served_trades = forms.ModelMultipleChoiceField(
        Trade.objects.all(), required=False, label="Trades", widget=FilteredSelectMultiple("trades", is_stacked=False)
    )

    webhook_url = WebhookUrlField(
        required=False, assume_scheme="https", help_text=Contractor._meta.get_field("webhook_url").help_text
    )

    class Meta:
        model = Contractor
        fields = [
            "name",
            "slug",
            "served_trades",
            "contact_email",
            "contact_phone",
            "daily_cap",
            "weekly_cap",
            "monthly_cap",
            "billing",
            "credit_limit",
            "time_zone",
            "webhook_url",
            "notes",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["served_trades"].initial = list(self.instance.trades.all())


class MembershipInline(admin.TabularInline):
    """The contractor's users: a row added, its user replaced or the row deleted is saved through
    contractor_member_add and contractor_member_remove (ContractorAdmin.save_formset)."""

    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["created_at"]
    verbose_name = "user"
    verbose_name_plural = "users"


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["prefix", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # a key is created on its own page, which shows it once


class StatusChangeInline(admin.TabularInline):
    model = ContractorStatusChange
    extra = 0
    fields = ["changed_at", "from_status", "to_status", "reason", "changed_by"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "status history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Contractor)
class ContractorAdmin(ObjectActionsAdmin):
    """Status changes only through the actions (each is audited); trades through the service, which
    refuses to drop a trade the contractor still owns territories of. The page offers the status changes
    contractor_status_change accepts from the present status."""

    form = ContractorForm
    list_display = [
        "name",
        "slug",
        "status",
        "trade_names",
        "territory_count",
        "daily_cap",
        "weekly_cap",
        "monthly_cap",
        "contact_email",
    ]
    list_filter = ["status", "trades"]
    search_fields = ["name", "slug", "contact_email"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["status", "status_reason", "status_changed_at", "webhook_secret", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "served_trades", "contact_email", "contact_phone", "time_zone", "notes"]}),
        ("Status", {"fields": ["status", "status_reason", "status_changed_at"]}),
        ("Lead caps", {"fields": ["daily_cap", "weekly_cap", "monthly_cap"]}),
        ("Billing", {"fields": ["billing", "credit_limit"]}),
        ("Lead delivery", {"fields": ["webhook_url", "webhook_secret"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    # territories/admin.py registers this page with the contractor's territories and waitlist places too.
    inlines = [MembershipInline, ApiKeyInline, StatusChangeInline]
    actions = ["pause", "resume", "suspend", "rotate_webhook_secret"]
    object_actions = {
        "pause": ("Pause", lambda contractor: contractor_status_may(contractor, Contractor.Status.PAUSED)),
        "resume": ("Resume", lambda contractor: contractor_status_may(contractor, Contractor.Status.ACTIVE)),
        "suspend": ("Suspend", lambda contractor: contractor_status_may(contractor, Contractor.Status.SUSPENDED)),
        "rotate_webhook_secret": ("Rotate the webhook secret", lambda contractor: bool(contractor.webhook_url)),
    }

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_territories=Count("territories", filter=Q(territories__ended_at__isnull=True)))
            .prefetch_related("trades")
            .order_by("name", "pk")  # the annotation drops Meta.ordering; autocomplete pages need one
        )

    @admin.display(description="Trades")
    def trade_names(self, contractor: Contractor) -> str:
        return ", ".join(trade.name for trade in contractor.trades.all())

    @admin.display(description="Territories", ordering="active_territories")
    def territory_count(self, contractor: Contractor) -> int:
        return contractor.active_territories

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        try:
            contractor_trades_set(contractor=form.instance, trades=form.cleaned_data["served_trades"])
        except ContractorError as error:
            self.message_user(request, f"Trades not changed: {error}", messages.ERROR)

    def save_formset(self, request, form, formset, change):
        if formset.model is Membership:
            self._save_memberships(request, form.instance, formset)
        else:
            super().save_formset(request, form, formset, change)

    def _save_memberships(self, request, contractor: Contractor, formset) -> None:
        """The users deleted, replaced or added in the inline, through the services: a replaced user leaves
        and the new one joins. The form has refused staff users and members of another contractor already;
        the service's refusal (a user who joined another contractor meanwhile) is shown as a message."""
        formset.save(commit=False)  # sorts the rows into new, changed and deleted ones; writes nothing
        replaced = [membership for membership, _ in formset.changed_objects]
        for membership in [*formset.deleted_objects, *replaced]:
            contractor_member_remove(membership=membership)
        for membership in [*replaced, *formset.new_objects]:
            try:
                joined = contractor_member_add(contractor=contractor, user=membership.user)
            except MembershipError as error:
                self.message_user(request, f"User not added: {error}", messages.ERROR)
            else:
                membership.pk, membership.created_at = joined.pk, joined.created_at  # for the change's log entry

    def _change_status(self, request, queryset, status: str, reason: str) -> None:
        for contractor in queryset.order_by("pk"):
            try:
                contractor = contractor_status_change(
                    contractor=contractor, status=status, reason=reason, changed_by=request.user
                )
            except ContractorError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"{contractor} is now {contractor.get_status_display().lower()}.")

    def _status_with_reason(self, request, queryset, *, status: str, action: str, title: str):
        data, page = action_form(
            self, request, queryset, form_class=ReasonForm, action=action, title=title, submit_label=title
        )
        if page is not None:
            return page
        self._change_status(request, queryset, status, data["reason"])
        return None

    @admin.action(description="Pause the selected contractors (no new assignments)", permissions=["change"])
    def pause(self, request, queryset):
        return self._status_with_reason(
            request, queryset, status=Contractor.Status.PAUSED, action="pause", title="Pause contractors"
        )

    @admin.action(description="Resume the selected contractors", permissions=["change"])
    def resume(self, request, queryset):
        self._change_status(request, queryset, Contractor.Status.ACTIVE, "")

    @admin.action(
        description="Suspend the selected contractors (no assignments, no API access)", permissions=["change"]
    )
    def suspend(self, request, queryset):
        return self._status_with_reason(
            request, queryset, status=Contractor.Status.SUSPENDED, action="suspend", title="Suspend contractors"
        )

    @admin.action(description="Rotate the webhook signing secret", permissions=["change"])
    def rotate_webhook_secret(self, request, queryset):
        for contractor in queryset.order_by("pk"):
            contractor_webhook_secret_rotate(contractor=contractor)
        self.message_user(
            request, f"New webhook secrets for {queryset.count()} contractors; tell them before the next delivery."
        )


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return [("no", "Usable"), ("yes", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


class OwnerKindFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        return [("contractor", "Contractors"), ("staff", "Staff users")]

    def queryset(self, request, queryset):
        if self.value() in ("contractor", "staff"):
            return queryset.filter(user__isnull=self.value() == "contractor")
        return queryset


class ApiKeyAddForm(forms.ModelForm):
    """A contractor's key, or (for_me) the staff user's own: a key acts as its owner, so staff make keys
    for themselves only, never for another staff user."""

    for_me = forms.BooleanField(
        required=False,
        label="My own key",
        help_text="A staff key of your own instead of a contractor's: it acts as you, while you are active staff.",
    )

    class Meta:
        model = ApiKey
        fields = ["contractor", "for_me", "name"]

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("contractor")) == bool(cleaned.get("for_me")):
            raise forms.ValidationError("Choose a contractor, or tick “My own key”: a key has exactly one owner.")
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Adding a key shows it once, in a message; afterwards only its prefix and hash exist."""

    list_display = ["prefix", "name", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = [RevokedFilter, OwnerKindFilter, ("contractor", RelatedAutocompleteFilter)]
    list_select_related = ["contractor", "user"]
    search_fields = ["=prefix", "name", "contractor__name", "user__username"]
    autocomplete_fields = ["contractor"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["contractor", "for_me", "name"]
        return ["owner", "name", "prefix", "key_hash", "created_at", "created_by", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["owner", "prefix", "key_hash", "created_at", "created_by", "last_used_at", "revoked_at"]

    @admin.display(description="Owner")
    def owner(self, key: ApiKey) -> str:
        if key.user_id is not None:
            return f"{key.user.get_username()} (staff)"
        return str(key.contractor)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the key's record (who had it, when it was used) stays

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)  # only the name is editable
            return
        owner = {"user": request.user} if form.cleaned_data["for_me"] else {"contractor": obj.contractor}
        try:
            key, raw_key = api_key_create(**owner, name=obj.name, created_by=request.user)
        except ApiKeyOwnerInvalid as error:
            # Staff who reach this page are active staff; kept for a user demoted while the form was open.
            raise PermissionDenied(str(error)) from None
        # The admin goes on with `obj` (its log entry, the redirect): make it the saved key.
        obj.__dict__.update({field.attname: getattr(key, field.attname) for field in ApiKey._meta.concrete_fields})
        obj._state.adding = False
        self.message_user(
            request,
            f"API key for {self.owner(key)}: {raw_key} — copy it now; it is shown only this once.",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        for key in queryset.order_by("pk"):
            api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} API keys.")


@admin.register(ContractorStatusChange)
class ContractorStatusChangeAdmin(admin.ModelAdmin):
    list_display = ["changed_at", "contractor", "from_status", "to_status", "reason", "changed_by"]
    list_filter = ["to_status"]
    list_select_related = ["contractor", "changed_by"]
    search_fields = ["contractor__name"]

    def has_add_permission(self, request) -> bool:
        return False  # made by the status actions

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ContractorNotice)
class ContractorNoticeAdmin(admin.ModelAdmin):
    """The contractors' outbox of events (waitlist offers, territories given, withdrawn leads), read-only:
    notices are written with the change they report and sent by the "Webhook delivery" job."""

    list_display = ["created_at", "contractor", "event", "channel", "state", "attempts", "status_code", "sent_at",
                    "next_at", "error"]  # fmt: skip
    list_filter = ["event", "channel", "state", ("contractor", RelatedAutocompleteFilter)]
    list_select_related = ["contractor"]
    search_fields = ["contractor__name", "key"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in ContractorNotice._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # recorded by the services that make the change

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
