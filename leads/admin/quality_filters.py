"""Each trade's quality filters: which scored properties become leads."""

from django import forms
from django.contrib import admin, messages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.urls import reverse
from django.utils.html import format_html

from leads.errors import LearningRefused
from leads.models import LeadFilter
from leads.services.learning import model_learn
from scoring.models import Property


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
        "urgent_urgency": (0, 100),
        "max_per_zip_per_day": (1, None),
        "cooldown_days": (1, None),
        "capacity_factor": (0, None),  # and above 0: clean_capacity_factor
        "exploration_share": (0, 0.5),
    }

    class Meta:
        model = LeadFilter
        fields = [
            "trade",
            "enabled",
            "min_score",
            "min_urgency",
            "urgent_urgency",
            "owner_occupied_only",
            "property_types",
            "max_per_zip_per_day",
            "cooldown_days",
            "capacity_factor",
            "pool_leads_per_day",
            "uncapped_leads_per_zip",
            "exploration_share",
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

    def clean_capacity_factor(self) -> float | None:
        factor = self.cleaned_data.get("capacity_factor")
        if factor is not None and factor <= 0:
            raise forms.ValidationError("Above 0; leave it blank for no volume target.")
        return factor


@admin.register(LeadFilter)
class LeadFilterAdmin(admin.ModelAdmin):
    form = LeadFilterForm
    list_display = [
        "trade",
        "enabled",
        "min_score",
        "min_urgency",
        "urgent_urgency",
        "owner_occupied_only",
        "type_names",
        "max_per_zip_per_day",
        "cooldown_days",
        "capacity_factor",
        "exploration_share",
        "updated_at",
    ]
    list_select_related = ["trade"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "trade",
                    "enabled",
                    "min_score",
                    "min_urgency",
                    "urgent_urgency",
                    "owner_occupied_only",
                    "property_types",
                    "max_per_zip_per_day",
                    "cooldown_days",
                    "updated_at",
                ]
            },
        ),
        (
            "Volume",
            {
                "fields": ["capacity_factor", "pool_leads_per_day", "uncapped_leads_per_zip"],
                "description": "How many leads a day, best first: the owners' remaining room under their caps "
                "times the capacity factor in owned ZIPs, and the pool allowance in ZIPs nobody owns. The "
                "minimum score stays the floor.",
            },
        ),
        (
            "Exploration",
            {
                "fields": ["exploration_share"],
                "description": "A share of the day's leads drawn at random from the candidates below the cut "
                "and sold like the others, so that evaluation and learning see outcomes there too.",
            },
        ),
    ]
    actions = ["learn_model"]

    @admin.display(description="Property types")
    def type_names(self, lead_filter: LeadFilter) -> str:
        return ", ".join(Property.Type(value).label for value in lead_filter.property_types) or "All"

    def get_readonly_fields(self, request, obj=None):
        return ["trade", "updated_at"] if obj is not None else ["updated_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # generation would recreate the defaults; untick "enabled" to stop a trade's leads

    def has_learn_permission(self, request) -> bool:
        return request.user.has_perm("scoring.add_scoringmodel")

    @admin.action(description="Learn a new scoring model version from outcomes", permissions=["learn"])
    def learn_model(self, request, queryset):
        """A draft per selected trade, backtested beside the active version; staff compare in its preview."""
        for lead_filter in queryset.select_related("trade").order_by("trade__name"):
            try:
                learned = model_learn(trade=lead_filter.trade)
            except LearningRefused as error:
                self.message_user(request, f"{lead_filter.trade}: {error}", messages.ERROR)
                continue
            if learned.model is None:
                self.message_user(request, f"{lead_filter.trade}: {learned.why}", messages.WARNING)
                continue
            url = reverse("admin:scoring_scoringmodel_preview", args=[learned.model.pk])
            summary = str(learned).splitlines()
            self.message_user(
                request,
                format_html(
                    '{} <a href="{}">Compare it with the active version</a>. {} {}',
                    summary[0],
                    url,
                    summary[2],
                    summary[-1],
                ),
                messages.SUCCESS,
            )
