"""A contractor's monthly statements through the API: the list, one statement with its figures per trade,
and the statement as CSV (its ledger entries between the opening and the closing balance). Scoped as
everything else: another contractor's statement is 404."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action

from contractors.api.authentication import CallerMixin
from core.api.pagination import BoundedCursorPagination
from core.api.permissions import IsAuthenticatedClient
from leads.export import statement_csv_response
from leads.models import Statement
from leads.selectors import statements_visible

MONEY = {"max_digits": 12, "decimal_places": 2, "read_only": True}


class StatementSerializer(serializers.ModelSerializer):
    contractor = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    currency = serializers.SerializerMethodField(help_text="The currency of every amount (CURRENCY).")
    opening_balance = serializers.DecimalField(**MONEY, help_text="What was owed when the month began.")
    lead_charges = serializers.DecimalField(**MONEY, help_text="The month's leads, at their prices.")
    lead_credits = serializers.DecimalField(**MONEY, help_text="Given back (negative): returns, withdrawals.")
    territory_fees = serializers.DecimalField(**MONEY, help_text="Monthly territory fees, prorated.")
    payments = serializers.DecimalField(**MONEY, help_text="Payments received (negative).")
    adjustments = serializers.DecimalField(**MONEY)
    closing_balance = serializers.DecimalField(**MONEY, help_text="What was owed when the month ended.")
    by_trade = serializers.DictField(
        child=serializers.DictField(),
        read_only=True,
        help_text='Per trade slug: {"leads": n, "charged": "0.00", "credited": "0.00", "fees": "0.00"}.',
    )

    class Meta:
        model = Statement
        fields = ["id", "contractor", "month", "currency", "opening_balance", "lead_charges", "lead_credits",
                  "territory_fees", "payments", "adjustments", "closing_balance", "leads_charged", "by_trade",
                  "closed_at"]  # fmt: skip
        read_only_fields = fields

    def get_currency(self, statement: Statement) -> str:
        return settings.CURRENCY


class StatementPagination(BoundedCursorPagination):
    ordering = ("-month", "-id")


class StatementViewSet(CallerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """My monthly statements, newest first, each closed on the 1st in my time zone."""

    serializer_class = StatementSerializer
    permission_classes = [IsAuthenticatedClient]
    pagination_class = StatementPagination
    filterset_fields = {"month": ["exact", "gte", "lte"]}

    def get_queryset(self):
        return statements_visible(caller=self.caller).select_related("contractor")

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The statement as CSV.")}
    )
    @action(detail=True, methods=["get"], url_path="csv", filterset_fields=None)
    def csv(self, request, pk=None):
        """The statement as CSV: a row per ledger entry of the month (at, kind, amount, currency, lead_id, trade,
        zip_code, note) between an opening_balance and a closing_balance row."""
        return statement_csv_response(self.get_object())
