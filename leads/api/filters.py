import datetime as dt

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from core.api.filters import SharedFilterSet
from leads.models import Lead

MAX_UTC_OFFSET = dt.timedelta(hours=14)


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, as UTC: offsets beyond ±14:00 (none exists; PostgreSQL refuses them) and
    instants outside the years 1-9999 once in UTC are invalid, not a database error."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        if abs(value.utcoffset()) > MAX_UTC_OFFSET:
            raise ValidationError("A UTC offset is at most ±14:00.", code="invalid")
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise ValidationError("The date-time is out of range.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class LeadFilterSet(SharedFilterSet):
    state = django_filters.MultipleChoiceFilter(choices=Lead.State.choices, distinct=False)
    trade = django_filters.CharFilter(field_name="trade__slug")
    zip_code = django_filters.CharFilter(
        field_name="zip_code", lookup_expr="startswith", help_text="A ZIP code, or its first digits."
    )
    min_score = django_filters.NumberFilter(field_name="score", lookup_expr="gte")
    urgent = django_filters.BooleanFilter(help_text="Only urgent leads (true), or only the others (false).")
    generated_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    generated_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Lead
        fields = ["state", "trade", "zip_code", "min_score", "urgent", "generated_after", "generated_before"]
