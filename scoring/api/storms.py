"""POST /api/v1/storms/: staff (or a weather feed under a staff key) send storm reports as they arrive. They
are imported as a storm file would be (scoring.services.imports.records) and, once stored, start the storm
fast path: the properties they reach are rescored, their leads made and sent within seconds."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response

from core.api.permissions import IsStaff
from scoring.models import ImportRun, StormEvent
from scoring.services.imports.records import MOST_RECORDS, records_import


class StormReportSerializer(serializers.Serializer):
    """One report, in the storm file's columns (README, Importing data). Checked by the import's own rules:
    a wrong value is refused there, with its reason, not here."""

    event_id = serializers.CharField(max_length=64, help_text="The source's id: the same id again updates the report.")
    event_date = serializers.CharField(help_text="YYYY-MM-DD, not after today.")
    kind = serializers.CharField(help_text=f"One of {', '.join(StormEvent.Kind.values)} (or a known synonym).")
    magnitude = serializers.FloatField(help_text="Hail diameter in inches, or wind speed in mph.")
    latitude = serializers.FloatField(required=False, allow_null=True)
    longitude = serializers.FloatField(required=False, allow_null=True)
    radius_miles = serializers.FloatField(
        required=False, allow_null=True, help_text="Blank: the kind's default radius around the point."
    )
    zip = serializers.CharField(required=False, allow_blank=True, help_text="For a report located by ZIP only.")


class StormReportsSerializer(serializers.Serializer):
    events = StormReportSerializer(many=True, allow_empty=False, max_length=MOST_RECORDS)


class StormRejectSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The report's place in `events`, from 0.")
    field = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    reason = serializers.CharField()


class StormImportSerializer(serializers.Serializer):
    import_run = serializers.IntegerField(help_text="The import run (admin: Import runs) that recorded them.")
    status = serializers.ChoiceField(choices=ImportRun.Status.choices)
    inserted = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField(help_text="Reports already stored with these values: nothing to do.")
    rejected = serializers.IntegerField()
    rejects = StormRejectSerializer(many=True)
    rescoring = serializers.CharField(
        allow_blank=True,
        help_text='"pending": the properties they reach are being rescored and their leads sent; blank: nothing '
        'changed; "nightly": left to the nightly run.',
    )


class StormViewSet(viewsets.ViewSet):
    """Storm reports. Staff only."""

    permission_classes = [IsStaff]

    @extend_schema(
        request=StormReportsSerializer,
        responses={200: StormImportSerializer, 400: StormImportSerializer},
    )
    def create(self, request):
        """Store one or many storm reports ({"events": [...]}, at most 10,000) and start the storm fast path for
        what they change. 200 with the counts, and the reports refused with their reasons (the others are
        stored); 400 when every report was refused (nothing stored). The same reports again change nothing
        and send nothing."""
        body = StormReportsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        records = [{k: v for k, v in event.items() if v is not None} for event in body.validated_data["events"]]
        imported = records_import(kind=ImportRun.Kind.STORMS, records=records)
        run = imported.result.run
        answer = StormImportSerializer(
            {
                "import_run": run.pk,
                "status": run.status,
                "inserted": run.rows_inserted,
                "updated": run.rows_updated,
                "unchanged": run.rows_unchanged,
                "rejected": run.rows_rejected,
                "rejects": imported.rejects,
                "rescoring": run.rescoring,
            }
        ).data
        refused_all = run.rows_rejected == len(records)
        return Response(answer, status=status.HTTP_400_BAD_REQUEST if refused_all else status.HTTP_200_OK)
