"""Territories through the API: mine, the ZIPs still for sale with their demand (cached until a claim,
release or scoring run changes them), claim (at once where self-service allows, otherwise a claim request
for staff), release, the waitlist, and the claim requests."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from contractors.api.authentication import CallerMixin
from contractors.caller import Caller
from core.api.pagination import BoundedCursorPagination
from core.api.permissions import IsAuthenticatedClient, IsStaff
from core.cache import SCORES, TERRITORIES, cached
from leadengine import flows
from territories.api.serializers import (
    AvailableQuerySerializer,
    AvailableZipSerializer,
    ClaimRequestSerializer,
    ClaimSerializer,
    DecisionSerializer,
    NoteSerializer,
    TerritorySerializer,
    WaitlistEntrySerializer,
)
from territories.models import ClaimRequest, WaitlistEntry
from territories.selectors import (
    claim_requests_visible,
    territories_visible,
    territory_coverage,
    waitlist_entries_visible,
)
from territories.services.requests import claim_request_deny, claim_request_withdraw
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

    @extend_schema(
        request=ClaimSerializer,
        responses={
            201: OpenApiResponse(TerritorySerializer(many=True), description="Claimed: the ZIPs are yours now."),
            202: OpenApiResponse(
                ClaimRequestSerializer,
                description="Asked for: the trade is not open for self-service (or the claim would pass its "
                "self-service ZIP limit), so the claim waits for staff as a claim request.",
            ),
        },
    )
    @action(detail=False, methods=["post"], pagination_class=None, filterset_fields=None)
    def claim(self, request):
        """Claim ZIPs for a trade, all or none; 409 naming every ZIP already owned or on offer. A contractor's
        claim is made at once only where its trade is open for self-service, within the trade's ZIP limit;
        otherwise it becomes a claim request (202) that staff approve or deny. Staff claim at once."""
        body = ClaimSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if self.caller.is_staff:
            claimed = flows.territories_claim(  # the new ZIPs' waiting leads go to their owner
                contractor=acting_contractor(self.caller, data.get("contractor")),
                trade=data["trade"],
                zip_codes=data["zip_codes"],
                claimed_by=staff_user(self.caller),
                note=data["note"],
            )
        else:
            claimed = flows.territories_claim_or_request(
                contractor=acting_contractor(self.caller, None),
                trade=data["trade"],
                zip_codes=data["zip_codes"],
                note=data["note"],
                requested_by=self.caller.user,
            )
            if isinstance(claimed, ClaimRequest):
                return Response(ClaimRequestSerializer(claimed).data, status=status.HTTP_202_ACCEPTED)
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


class ClaimRequestPagination(BoundedCursorPagination):
    ordering = ("-requested_at", "-id")


class ClaimRequestViewSet(
    CallerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """My claims waiting for staff, and what staff decided: list, read, withdraw one still waiting
    (DELETE). Staff see every request and approve or deny it."""

    serializer_class = ClaimRequestSerializer
    permission_classes = [IsAuthenticatedClient]
    pagination_class = ClaimRequestPagination
    filterset_fields = {"status": ["exact"], "trade__slug": ["exact"]}

    def get_queryset(self):
        return claim_requests_visible(caller=self.caller).select_related("trade", "contractor")

    def perform_destroy(self, instance):
        claim_request_withdraw(request=instance, user=staff_user(self.caller))

    @extend_schema(request=DecisionSerializer, responses={200: TerritorySerializer(many=True)})
    @action(detail=True, methods=["post"], permission_classes=[IsStaff])
    def approve(self, request, pk=None):
        """Staff: claim the request's ZIPs for its contractor, all or none (409 naming the ZIPs taken since),
        and route their waiting leads. The contractor is told (event claim.approved)."""
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        approved = flows.claim_request_approve(
            request=self.get_object(), user=self.caller.user, note=body.validated_data["note"]
        )
        return Response(TerritorySerializer(approved.result, many=True).data)

    @extend_schema(request=DecisionSerializer, responses={200: ClaimRequestSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsStaff])
    def deny(self, request, pk=None):
        """Staff: refuse the request, saying why (a note is required). The contractor is told (event
        claim.denied)."""
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        denied = claim_request_deny(request=self.get_object(), user=self.caller.user, note=body.validated_data["note"])
        return Response(ClaimRequestSerializer(denied).data)
