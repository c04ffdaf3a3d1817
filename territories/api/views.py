"""Territories through the API: mine, the ZIPs still for sale with their demand (cached until a claim,
release or scoring run changes them), claim, release, and the waitlist."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from contractors.api.authentication import CallerMixin
from contractors.caller import Caller
from core.api.pagination import BoundedCursorPagination
from core.api.permissions import IsAuthenticatedClient
from core.cache import SCORES, TERRITORIES, cached
from leadengine import flows
from territories.api.serializers import (
    AvailableQuerySerializer,
    AvailableZipSerializer,
    ClaimSerializer,
    NoteSerializer,
    TerritorySerializer,
    WaitlistEntrySerializer,
)
from territories.models import WaitlistEntry
from territories.selectors import territories_visible, territory_coverage, waitlist_entries_visible
from territories.services.waitlist import waitlist_join


def acting_contractor(caller: Caller, chosen):
    """The contractor a write is for: the caller's own; staff name one."""
    if caller.contractor is not None:
        return caller.contractor
    if chosen is None:
        raise ValidationError({"contractor": ["Staff say for which contractor."]})
    return chosen


def staff_user(caller: Caller):
    return caller.user if caller.is_staff else None


class TerritoryPagination(BoundedCursorPagination):
    ordering = ("-started_at", "-id")


class TerritoryViewSet(CallerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TerritorySerializer
    permission_classes = [IsAuthenticatedClient]
    pagination_class = TerritoryPagination
    filterset_fields = {"trade__slug": ["exact"], "zip_code": ["exact"]}

    def get_queryset(self):
        queryset = territories_visible(caller=self.caller).select_related("trade", "contractor")
        return queryset if self.request.query_params.get("ended") == "true" else queryset.active()

    @extend_schema(parameters=[AvailableQuerySerializer], responses=AvailableZipSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None, filterset_fields=None)
    def available(self, request):
        """ZIPs nobody owns for a trade, most demand first."""
        query = AvailableQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        state, prefix = data.get("state", "").upper(), data.get("zip_prefix", "")

        def compute():
            coverage = territory_coverage(
                trade=data["trade"], min_score=data["min_score"], limit=100_000, state=state or None
            )
            rows = [row for row in coverage.unowned if row.zip_code.startswith(prefix)][: data["limit"]]
            return AvailableZipSerializer(rows, many=True).data

        parts = (data["trade"].pk, state, prefix, data["min_score"], data["limit"])
        return Response(cached("available", parts, depends_on=(SCORES, TERRITORIES), compute=compute))

    @extend_schema(request=ClaimSerializer, responses={201: TerritorySerializer(many=True)})
    @action(detail=False, methods=["post"], pagination_class=None, filterset_fields=None)
    def claim(self, request):
        """Claim ZIPs for a trade, all or none; 409 naming every ZIP already owned or on offer."""
        body = ClaimSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        contractor = acting_contractor(self.caller, data.get("contractor"))
        claimed = flows.territories_claim(  # the new ZIPs' waiting leads go to their owner
            contractor=contractor,
            trade=data["trade"],
            zip_codes=data["zip_codes"],
            claimed_by=staff_user(self.caller),
            note=data["note"],
        )
        return Response(TerritorySerializer(claimed.result, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=NoteSerializer, responses=TerritorySerializer)
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """End my ownership of this territory now; it goes to its waitlist, if any."""
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        released = flows.territories_release(
            territories=[self.get_object()], released_by=staff_user(self.caller), **body.validated_data
        )
        return Response(TerritorySerializer(released.result.territories[0]).data)


class WaitlistViewSet(
    CallerMixin, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """My places in line for ZIPs other contractors own: join (POST), leave (DELETE)."""

    serializer_class = WaitlistEntrySerializer
    permission_classes = [IsAuthenticatedClient]
    pagination_class = None

    def get_queryset(self):
        return (
            waitlist_entries_visible(caller=self.caller)
            .filter(status__in=WaitlistEntry.OPEN)
            .select_related("trade", "contractor")
            .order_by("joined_at", "pk")
        )

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = waitlist_join(
            contractor=acting_contractor(self.caller, data.get("contractor")),
            trade=data["trade"],
            zip_code=data["zip_code_id"],
        )

    def perform_destroy(self, instance):
        flows.waitlist_leave(entry=instance)  # an offer declined passes to the next in line

    @extend_schema(request=None, responses={201: TerritorySerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Accept the offer of this waitlist entry: the territory becomes mine (refused once the offer has
        expired or was declined). The `accept_url` of a `territory.offered` webhook event."""
        accepted = flows.waitlist_offer_accept(entry=self.get_object(), accepted_by=staff_user(self.caller))
        return Response(TerritorySerializer(accepted.result).data, status=status.HTTP_201_CREATED)
