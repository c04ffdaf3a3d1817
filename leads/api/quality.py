"""Lead quality for staff: /api/v1/quality/evaluations/, the evaluation runs (leads.services.quality) with
their figures, newest first. Contractors are refused: the figures span every contractor's leads."""

import django_filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets

from contractors.api.authentication import CallerMixin
from core.api.fields import RoundedFloatField
from core.api.filters import SharedFilterSet
from core.api.pagination import BoundedCursorPagination
from core.api.permissions import IsStaff
from core.numbers import floats_rounded
from scoring.models import EvaluationRun

# Rates, AUCs, lifts, weights and every float of the figures are answered to 4 decimals (a rate of 0.1234 is
# 12.34%): finer than any figure a few thousand leads can support, and no floating-point tail.
FIGURE_DECIMALS = 4

_RATE = {"type": "number", "nullable": True, "description": "Weighted by sampling weight; null: no lead."}
_SHARE = {
    "type": "object",
    "nullable": True,
    "properties": {
        "outcomes": {"type": "integer"},
        "conversions": {"type": "integer"},
        "weight": {"type": "number"},
        "conversion_rate": _RATE,
    },
}
FIGURES_SCHEMA = {
    "type": "object",
    "description": "The run's tables. A figure the leads cannot support yet is null, and `missing` says why.",
    "properties": {
        "weight": {"type": "number", "description": "The leads' sampling weights added up."},
        "returns": {"type": "integer"},
        "return_rate": _RATE,
        "auc_interval": {
            "type": "object",
            "description": "How auc_low and auc_high were found.",
            "properties": {"level": {"type": "number"}, "resamples": {"type": "integer"}, "method": {"type": "string"}},
        },
        "deciles": {
            "type": "array",
            "nullable": True,
            "description": "Ten shares of equal weight by score, best first (number 1).",
            "items": {
                "type": "object",
                "properties": {
                    "number": {"type": "integer"},
                    "leads": {"type": "integer"},
                    "weight": {"type": "number"},
                    "conversions": {"type": "integer"},
                    "conversion_rate": _RATE,
                    "return_rate": _RATE,
                    "lowest_score": {"type": "number", "nullable": True},
                    "highest_score": {"type": "number", "nullable": True},
                },
            },
        },
        "calibration": {
            "type": "array",
            "nullable": True,
            "description": "The observed conversion rate per 10-point score band with leads, best band first.",
            "items": {
                "type": "object",
                "properties": {
                    "low": {"type": "number"},
                    "high": {"type": "number"},
                    "leads": {"type": "integer"},
                    "weight": {"type": "number"},
                    "conversions": {"type": "integer"},
                    "mean_score": {"type": "number"},
                    "conversion_rate": {"type": "number"},
                },
            },
        },
        "reasons": {
            "type": "array",
            "nullable": True,
            "description": "Per reason feature, the leads whose reasons include it; most leads first.",
            "items": {
                "type": "object",
                "properties": {
                    "feature": {"type": "string"},
                    "leads": {"type": "integer"},
                    "weight": {"type": "number"},
                    "conversions": {"type": "integer"},
                    "conversion_rate": {"type": "number"},
                    "lift": {"type": "number", "nullable": True, "description": "Its rate over the rate of all."},
                },
            },
        },
        "best_first": {**_SHARE, "description": "The leads picked best first."},
        "exploration": {**_SHARE, "description": "The exploration leads (drawn below the day's cut)."},
        "missing": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Figure name -> why it is null (e.g. auc: no conversion yet).",
        },
    },
}


@extend_schema_field(FIGURES_SCHEMA)
class FiguresField(serializers.JSONField):
    """An evaluation run's tables as recorded (leads.services.quality.evaluation_figures), floats rounded."""

    def to_representation(self, value):
        return floats_rounded(super().to_representation(value), FIGURE_DECIMALS)


class EvaluationRunSerializer(serializers.ModelSerializer):
    trade = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.IntegerField(source="model.version", read_only=True)
    model_status = serializers.CharField(source="model.status", read_only=True)
    conversion_rate = RoundedFloatField(
        decimals=FIGURE_DECIMALS, read_only=True, allow_null=True, help_text="Weighted by sampling weight."
    )
    auc = RoundedFloatField(decimals=FIGURE_DECIMALS, read_only=True, allow_null=True)
    auc_low = RoundedFloatField(
        decimals=FIGURE_DECIMALS, read_only=True, allow_null=True, help_text="95% interval of the AUC."
    )
    auc_high = RoundedFloatField(decimals=FIGURE_DECIMALS, read_only=True, allow_null=True)
    top_decile_lift = RoundedFloatField(decimals=FIGURE_DECIMALS, read_only=True, allow_null=True)
    figures = FiguresField(read_only=True)

    class Meta:
        model = EvaluationRun
        fields = [
            "id", "trade", "model", "model_version", "model_status", "first_day", "last_day", "outcomes",
            "conversions", "exploration_outcomes", "conversion_rate", "auc", "auc_low", "auc_high",
            "top_decile_lift", "figures", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class EvaluationRunFilterSet(SharedFilterSet):
    trade = django_filters.CharFilter(field_name="trade__slug", help_text="A trade's slug.")
    model = django_filters.NumberFilter(field_name="model_id", help_text="A scoring model version's id.")

    class Meta:
        model = EvaluationRun
        fields = ["trade", "model"]


class EvaluationRunPagination(BoundedCursorPagination):
    ordering = ("-created_at", "-id")


class EvaluationRunViewSet(CallerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Evaluation runs of lead quality, newest first, with their figures. Staff only."""

    serializer_class = EvaluationRunSerializer
    permission_classes = [IsStaff]
    pagination_class = EvaluationRunPagination
    filterset_class = EvaluationRunFilterSet
    queryset = EvaluationRun.objects.select_related("trade", "model")
