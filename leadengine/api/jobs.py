"""Staff start background runs (scoring, lead generation) and follow them: /api/v1/runs/."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from leadengine.api.pagination import BoundedCursorPagination
from leadengine.api.permissions import IsStaff
from leadengine.models import JobRun
from leadengine.services.jobs import JobError, job_run_request, job_trade_check
from scoring.models import Trade


class JobRunSerializer(serializers.ModelSerializer):
    trade = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="What the run did: scoring_run, properties_scored, scores_changed; leads_generated, "
        "leads_routed, leads_in_pool; unassigned_expired, unaccepted_expired; offers_expired; delivered, retried, "
        "gave_up, refused.",
    )

    class Meta:
        model = JobRun
        fields = [
            "id", "job", "trade", "status", "requested_by", "queued_at", "started_at", "finished_at",
            "duration_seconds", "counts", "error",
        ]  # fmt: skip
        read_only_fields = fields


class JobRunRequestSerializer(serializers.Serializer):
    job = serializers.ChoiceField(choices=JobRun.Job.choices)
    trade = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Trade.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="For scoring and lead_generation (per trade); none for lead_expiry and offer_expiry.",
    )

    def validate(self, data):
        try:
            job_trade_check(**data)
        except JobError as error:
            raise serializers.ValidationError({"trade": [str(error)]}) from None
        return data


class JobRunPagination(BoundedCursorPagination):
    ordering = ("-queued_at", "-id")


class JobRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Background runs, newest first. Staff only."""

    serializer_class = JobRunSerializer
    permission_classes = [IsStaff]
    pagination_class = JobRunPagination
    queryset = JobRun.objects.select_related("trade", "requested_by")
    filterset_fields = ["job", "status"]

    @extend_schema(request=JobRunRequestSerializer, responses={202: JobRunSerializer})
    def create(self, request):
        """Start a run in the background: 202 with the queued run (poll its URL for the status), or 409
        job_busy when a run of the job for the trade is already queued or running."""
        body = JobRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = job_run_request(user=request.user, **body.validated_data)
        location = reverse("jobrun-detail", args=[run.pk])
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
