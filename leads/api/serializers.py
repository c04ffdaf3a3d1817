from django.conf import settings
from rest_framework import serializers

from contractors.models import Contractor
from core.api.fields import RoundedFloatField
from leads.models import Lead, LeadEvent
from leads.representation import DECIMALS, EVENT_FIELDS, LEAD_BODY_FIELDS, PROPERTY_FIELDS
from scoring.models import Property


class PropertySerializer(serializers.ModelSerializer):
    zip_code = serializers.CharField(source="zip_code_id")
    latitude = RoundedFloatField(decimals=DECIMALS["latitude"], allow_null=True, required=False)
    longitude = RoundedFloatField(decimals=DECIMALS["longitude"], allow_null=True, required=False)
    bathrooms = RoundedFloatField(decimals=DECIMALS["bathrooms"], allow_null=True, required=False)

    class Meta:
        model = Property
        fields = PROPERTY_FIELDS


class LeadEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = LeadEvent
        fields = EVENT_FIELDS


class ReasonSerializer(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.JSONField(allow_null=True)
    points = RoundedFloatField(decimals=DECIMALS["points"])
    text = serializers.CharField()


class LeadSerializer(serializers.ModelSerializer):
    trade = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    score = RoundedFloatField(
        decimals=DECIMALS["score"], read_only=True, help_text="0-100: how well the home fits the trade; to hundredths."
    )
    urgency = RoundedFloatField(
        decimals=DECIMALS["urgency"],
        read_only=True,
        help_text="0-100: how much of the score comes from recent events (a storm); to hundredths.",
    )
    priority = RoundedFloatField(
        decimals=DECIMALS["priority"],
        read_only=True,
        help_text="The ranking value, 0.75 x score + 0.25 x urgency: best first; to 4 decimals, exact.",
    )
    property = PropertySerializer(read_only=True)
    reasons = ReasonSerializer(many=True, read_only=True, help_text="Why this lead: the top factors of its score.")
    return_pending = serializers.BooleanField(read_only=True)
    events = LeadEventSerializer(many=True, read_only=True)
    generated_at = serializers.DateTimeField(source="created_at", read_only=True)
    price = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text=f"What the lead costs you, in {settings.CURRENCY}: the price in force when it was assigned to you "
        "(kept when prices change later); 0.00 for a lead given free; null when its trade had no price.",
    )

    class Meta:
        model = Lead
        fields = LEAD_BODY_FIELDS
        read_only_fields = fields
        extra_kwargs = {
            "urgent": {
                "help_text": "True when its urgency was at or above its trade's urgent threshold when it was made "
                "(a storm just reached the home, say): sent at once, by webhook or an urgent-leads email."
            },
            "exploration": {
                "help_text": "True for a lead drawn at random from the homes below the day's cut, so that how such "
                "homes turn out is known too; false for a lead picked best first by its score."
            },
        }


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ContactSerializer(serializers.Serializer):
    note = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="", help_text="What happened, e.g. a visit booked."
    )


class ConvertSerializer(serializers.Serializer):
    job_value = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)


class ReturnSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=Lead.ReturnReason.choices)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AssignSerializer(serializers.Serializer):
    contractor = serializers.SlugRelatedField(slug_field="slug", queryset=Contractor.objects.all())
    reason = serializers.CharField(max_length=300, help_text="Why the lead is assigned by hand (in its history).")
    override = serializers.BooleanField(
        default=False,
        help_text="Give it even if the contractor does not own the ZIP, has reached a cap or, prepaid, its credit "
        "limit.",
    )
    comp = serializers.BooleanField(
        default=False, help_text="Give it free of charge (price 0) instead of at the price in force; in its history."
    )
