import django_filters

from leads.models import Lead


class LeadFilterSet(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=Lead.State.choices, distinct=False)
    trade = django_filters.CharFilter(field_name="trade__slug")
    zip_code = django_filters.CharFilter(
        field_name="zip_code", lookup_expr="startswith", help_text="A ZIP code, or its first digits."
    )
    min_score = django_filters.NumberFilter(field_name="score", lookup_expr="gte")
    generated_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    generated_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Lead
        fields = ["state", "trade", "zip_code", "min_score", "generated_after", "generated_before"]
