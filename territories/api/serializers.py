from rest_framework import serializers

from contractors.models import Contractor
from core.fields import validate_zip_code
from scoring.models import Trade
from territories.models import ClaimRequest, Territory, WaitlistEntry


class TerritorySerializer(serializers.ModelSerializer):
    zip_code = serializers.CharField(source="zip_code_id")
    trade = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    contractor = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Territory
        fields = ["id", "zip_code", "trade", "contractor", "started_at", "start_reason", "ended_at", "end_reason"]
        read_only_fields = fields


class AvailableZipSerializer(serializers.Serializer):
    zip_code = serializers.CharField()
    city = serializers.CharField()
    state = serializers.CharField()
    demand = serializers.IntegerField(help_text="Properties whose current score for the trade is at least min_score.")


class AvailableQuerySerializer(serializers.Serializer):
    trade = serializers.SlugRelatedField(slug_field="slug", queryset=Trade.objects.all())
    state = serializers.RegexField(r"^[A-Za-z]{2}$", required=False, help_text="A US state, e.g. CO.")
    zip_prefix = serializers.RegexField(r"^[0-9]{1,5}$", required=False, help_text="The first digits of the ZIPs.")
    min_score = serializers.FloatField(min_value=0, max_value=100, default=70)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)


class ClaimSerializer(serializers.Serializer):
    trade = serializers.SlugRelatedField(slug_field="slug", queryset=Trade.objects.all())
    zip_codes = serializers.ListField(
        child=serializers.CharField(validators=[validate_zip_code]),
        min_length=1,
        max_length=500,
        help_text="All or none.",
    )
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    contractor = serializers.SlugRelatedField(
        slug_field="slug", queryset=Contractor.objects.all(), required=False, help_text="Staff only: for whom."
    )


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class WaitlistEntrySerializer(serializers.ModelSerializer):
    zip_code = serializers.CharField(source="zip_code_id", validators=[validate_zip_code])
    trade = serializers.SlugRelatedField(slug_field="slug", queryset=Trade.objects.all())
    contractor = serializers.SlugRelatedField(
        slug_field="slug", queryset=Contractor.objects.all(), required=False, help_text="Staff only: for whom."
    )

    class Meta:
        model = WaitlistEntry
        fields = ["id", "zip_code", "trade", "contractor", "status", "joined_at", "offered_at", "offer_expires_at"]
        read_only_fields = ["id", "status", "joined_at", "offered_at", "offer_expires_at"]


class ClaimRequestSerializer(serializers.ModelSerializer):
    trade = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    contractor = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    zip_codes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ClaimRequest
        fields = ["id", "contractor", "trade", "zip_codes", "note", "status", "requested_at", "decided_at",
                  "decision_note"]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {"status": {"help_text": "pending until staff approve (the ZIPs become yours) or deny it."}}


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="", help_text="Why; the contractor sees it."
    )
