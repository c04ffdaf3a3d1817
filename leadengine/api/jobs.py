"""Staff start background runs (scoring, lead generation, the whole nightly run) and follow them:
/api/v1/runs/, through leadengine/services/jobs.py. A scoring run's partitions are scored on the workers;
its run waits (`waiting`) until they are done. A step of the nightly run names it (`chain`)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from contractors.api.authentication import CallerMixin
from core.api.fields import RoundedFloatField
from core.api.pagination import BoundedCursorPagination
from core.api.permissions import IsStaff
from leadengine.models import JobRun
from leadengine.services.jobs import JobError, job_run_request, job_trade_check
from leads.selectors import FUNNEL_STEPS
from scoring.models import Trade

_INTEGER = {"type": "integer"}
# What each job's run records in `counts` (leadengine.services.jobs.JOBS), key by key; a run that failed
# holds what it did before failing, a missed, skipped or queued one nothing.
COUNTS_BY_JOB: dict[str, dict[str, dict]] = {
    JobRun.Job.SCORING: {"scoring_run": _INTEGER, "properties_scored": _INTEGER, "scores_changed": _INTEGER},
    JobRun.Job.LEAD_GENERATION: {
        "leads_generated": _INTEGER, "leads_routed": _INTEGER, "leads_in_pool": _INTEGER,
        "webhook_run": {"type": "integer", "nullable": True, "description": "The delivery run posting the leads."},
    },
    JobRun.Job.LEAD_EXPIRY: {"unassigned_expired": _INTEGER, "unaccepted_expired": _INTEGER},
    JobRun.Job.OFFER_EXPIRY: {"offers_expired": _INTEGER, "territories_given": _INTEGER, "leads_routed": _INTEGER},
    JobRun.Job.WEBHOOK_DELIVERY: {"delivered": _INTEGER, "retried": _INTEGER, "gave_up": _INTEGER, "refused": _INTEGER},
    JobRun.Job.EMAIL_DIGEST: {"contractors_emailed": _INTEGER, "delivered": _INTEGER, "contractors_failed": _INTEGER},
    JobRun.Job.URGENT_EMAIL: {"contractors_emailed": _INTEGER, "delivered": _INTEGER, "contractors_failed": _INTEGER},
    JobRun.Job.DAILY_REPORT: {
        "day": {"type": "string", "format": "date", "description": "The day reported on."},
        **dict.fromkeys(FUNNEL_STEPS, _INTEGER),
        "runs_failed": _INTEGER, "overdue": _INTEGER, "webhook_failed": _INTEGER, "emailed": {"type": "boolean"},
    },
    JobRun.Job.OVERDUE_CHECK: {
        "overdue": _INTEGER, "newly_overdue": _INTEGER, "emailed": {"type": "boolean"},
        "overdue_jobs": {"type": "array", "items": {"type": "string"}, "description": "The overdue schedules' names."},
        "abandoned_closed": _INTEGER, "requeued": _INTEGER,
    },
    JobRun.Job.EVALUATION: {
        "evaluations": {"type": "integer", "description": "Evaluation runs recorded: one per version with outcomes."},
        "outcomes": {"type": "integer", "description": "Leads with a known outcome they cover, all versions."},
    },
    JobRun.Job.MONTH_CLOSE: {
        "statements": {"type": "integer", "description": "Contractors' months closed."},
        "territory_fees": {"type": "string", "format": "decimal", "description": "Territory fees charged."},
    },
    JobRun.Job.NIGHTLY_RUN: {
        "trades": {
            "type": "object", "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
            "description": "Per trade slug: each step's status (scoring, lead_generation) and the chain's "
            "(running, completed, stopped).",
        },
        "chains_completed": _INTEGER, "chains_stopped": _INTEGER, "chains_running": _INTEGER,
    },
}  # fmt: skip


def _counts_schema() -> dict:
    properties: dict[str, dict] = {}
    for keys in COUNTS_BY_JOB.values():
        properties.update(keys)
    by_job = "; ".join(f"{job}: {', '.join(keys)}" for job, keys in COUNTS_BY_JOB.items())
    return {
        "type": "object",
        "properties": dict(sorted(properties.items())),
        "additionalProperties": True,
        "description": f"What the run did, by job (every key optional: a failed run holds what it did before "
        f"failing; a queued, missed or skipped one none). {by_job}.",
    }


@extend_schema_field(_counts_schema())
class CountsField(serializers.JSONField):
    """A run's counts as recorded: integers mostly, also a date, a flag, a list of names (COUNTS_BY_JOB)."""


class JobRunSerializer(serializers.ModelSerializer):
    trade = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="None: a job of every trade."
    )
    requested_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="None: a schedule, or the system."
    )
    duration_seconds = RoundedFloatField(
        decimals=3, read_only=True, allow_null=True, help_text="From start to finish, to the millisecond."
    )
    counts = CountsField(read_only=True)
    chain = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The nightly run this run is a step of (none: a run of its own)."
    )

    class Meta:
        model = JobRun
        fields = [
            "id", "job", "trade", "status", "requested_by", "queued_at", "started_at", "finished_at",
            "duration_seconds", "counts", "error", "requeues", "chain", "waiting",
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
        help_text="For scoring and lead_generation (per trade); none for the jobs of every trade (lead_expiry, "
        "nightly_run...).",
    )

    def validate(self, data):
        try:
            job_trade_check(**data)
        except JobError as error:
            raise serializers.ValidationError({"trade": [str(error)]}) from None
        return data


class JobRunPagination(BoundedCursorPagination):
    ordering = ("-queued_at", "-id")


class JobRunViewSet(CallerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Background runs, newest first. Staff only."""

    serializer_class = JobRunSerializer
    permission_classes = [IsStaff]
    pagination_class = JobRunPagination
    queryset = JobRun.objects.select_related("trade", "requested_by")
    filterset_fields = ["job", "status"]

    @extend_schema(request=JobRunRequestSerializer, responses={202: JobRunSerializer})
    def create(self, request):
        """Start a run in the background: 202 with the queued run (poll its URL for the status), or 409
        job_busy when a run of the job for the trade is already queued or running. While the broker is down
        the run is recorded queued all the same (202) and sent once it is back."""
        body = JobRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = job_run_request(user=self.caller.user, **body.validated_data)
        location = reverse("jobrun-detail", args=[run.pk])
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
