"""A contractor's own record through the API: caps with their usage in each window (its time zone),
and pausing or resuming new leads."""

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from contractors.api.authentication import CallerMixin
from contractors.models import Contractor
from contractors.services.contractors import contractor_status_change
from core.api.permissions import IsAuthenticatedClient
from core.api.schema import ApiSchema
from leads.selectors import contractor_cap_usage_cached


class UsageSerializer(serializers.Serializer):
    today = serializers.IntegerField()
    this_week = serializers.IntegerField()
    this_month = serializers.IntegerField()
    room = serializers.IntegerField(allow_null=True, help_text="Leads it may still get now; null: no cap.")


class ProfileSerializer(serializers.ModelSerializer):
    trades = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    usage = serializers.SerializerMethodField()
    # Plain strings: blank when not set, which the email and URL formats would not allow.
    contact_email = serializers.CharField(read_only=True, help_text="An email address, or blank.")
    webhook_url = serializers.CharField(
        read_only=True, help_text="Where new leads are posted; blank: leads are pulled by the API."
    )

    class Meta:
        model = Contractor
        fields = [
            "name", "slug", "status", "status_reason", "trades", "contact_email", "contact_phone", "daily_cap",
            "weekly_cap", "monthly_cap", "time_zone", "webhook_url", "usage",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema(responses=UsageSerializer)
    def get_usage(self, contractor: Contractor) -> dict:
        usage = contractor_cap_usage_cached(contractor=contractor, now=timezone.now())
        return UsageSerializer(usage).data


class StatusReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ProfileSchema(ApiSchema):
    def _is_list_view(self, serializer=None) -> bool:
        return False  # the profile is one object, though served by the viewset's list route


class ProfileViewSet(CallerMixin, viewsets.GenericViewSet):
    serializer_class = ProfileSerializer
    permission_classes = [IsAuthenticatedClient]
    pagination_class = None
    queryset = Contractor.objects.none()  # the profile is the caller's own contractor (contractor())
    schema = ProfileSchema()

    def contractor(self) -> Contractor:
        contractor = self.caller.contractor
        if contractor is None:
            raise NotFound("Only a contractor has a profile; staff use the admin.")
        return Contractor.objects.prefetch_related("trades").get(pk=contractor.pk)

    @extend_schema(responses=ProfileSerializer, operation_id="api_v1_profile_list")
    def list(self, request):
        """My contractor record, caps and their usage."""
        return Response(self.get_serializer(self.contractor()).data)

    def change(self, status: str) -> Response:
        body = StatusReasonSerializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            contractor_status_change(contractor=self.contractor(), status=status, **body.validated_data)
        return Response(self.get_serializer(self.contractor()).data)

    @extend_schema(request=StatusReasonSerializer, responses=ProfileSerializer)
    @action(detail=False, methods=["post"])
    def pause(self, request):
        """Stop getting new leads (territories are kept); 409 if already paused."""
        return self.change(Contractor.Status.PAUSED)

    @extend_schema(request=StatusReasonSerializer, responses=ProfileSerializer)
    @action(detail=False, methods=["post"])
    def resume(self, request):
        """Get new leads again; 409 if already active."""
        return self.change(Contractor.Status.ACTIVE)
