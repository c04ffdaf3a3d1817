"""The leads a caller holds: list, detail, and the lifecycle moves a contractor makes. Reading a lead
through the API delivers it (leads_deliver) when it was not yet delivered."""

import orjson
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from contractors.api.authentication import CallerMixin
from contractors.caller import caller_contractor_ids
from core.api.fields import path_id
from core.api.pagination import BoundedCursorPagination, StableOrderingFilter
from core.api.permissions import IsAuthenticatedClient, IsStaff
from leads.api.filters import LeadFilterSet
from leads.api.renderers import LeadCsvRenderer, LeadListSchema
from leads.api.serializers import (
    AssignSerializer,
    ContactSerializer,
    ConvertSerializer,
    LeadSerializer,
    RejectSerializer,
    ReturnSerializer,
)
from leads.export import lead_export_response
from leads.models import Lead, LeadEvent
from leads.representation import lead_bodies
from leads.selectors import leads_visible
from leads.services.lifecycle import (
    lead_accept,
    lead_assign,
    lead_contact,
    lead_convert,
    lead_reject,
    lead_return,
    leads_deliver,
)

Actor = LeadEvent.Actor


# What a page of the list reads before the leads themselves: ids, states, and every column it may be
# ordered by (ordering_fields and LeadPagination.ordering).
PAGE_COLUMNS = ("id", "state", "score", "urgency", "created_at")


class LeadPagination(BoundedCursorPagination):
    ordering = ("-created_at", "-id")


class LeadViewSet(CallerMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LeadSerializer
    permission_classes = [IsAuthenticatedClient]
    pagination_class = LeadPagination
    filterset_class = LeadFilterSet
    filter_backends = [*viewsets.GenericViewSet.filter_backends, StableOrderingFilter]
    ordering_fields = ["score", "urgency", "created_at"]
    schema = LeadListSchema()

    def get_renderers(self):
        # The list alone also answers CSV (its export): ?format=csv or Accept: text/csv.
        renderers = super().get_renderers()
        return [*renderers, LeadCsvRenderer()] if self.action == "list" else renderers

    def get_queryset(self):
        # The one visibility rule: another contractor's lead is not found (404), never forbidden.
        return leads_visible(caller=self.caller)

    def filter_queryset(self, queryset):
        # Filters and ordering shape the list; a lead named by its id is found whatever the query string says.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def actor(self) -> str:
        return Actor.STAFF if self.caller.is_staff else Actor.CONTRACTOR

    def deliver(self, leads: list[tuple[int, str]]) -> None:
        """A contractor reading its assigned leads ((id, state) pairs) has received them."""
        assigned = [lead_id for lead_id, state in leads if state == Lead.State.ASSIGNED]
        if assigned and self.actor() == Actor.CONTRACTOR:  # most reads deliver nothing: no transaction
            leads_deliver(lead_ids=assigned, via="api")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                enum=["json", "csv"],
                description="`csv` (or `Accept: text/csv`): every lead the filters select, in the ordering asked "
                "for, as one CSV download; `cursor` and `page_size` are ignored.",
            )
        ],
        responses={
            (200, "application/json"): LeadSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The leads as CSV, one row each."),
        },
    )
    def list(self, request, *args, **kwargs):
        if isinstance(request.accepted_renderer, LeadCsvRenderer):
            queryset = self.filter_queryset(self.get_queryset())
            return lead_export_response(queryset, deliver=self.actor() == Actor.CONTRACTOR)
        # The page as plain rows (its cursor needs the ordering's columns), its delivery (one statement that
        # moves only leads still assigned), then the leads' bodies as they are after it.
        rows = self.paginate_queryset(self.filter_queryset(self.get_queryset()).values(*PAGE_COLUMNS))
        self.deliver([(row["id"], row["state"]) for row in rows])
        bodies = lead_bodies([row["id"] for row in rows])
        return self.get_paginated_response([orjson.Fragment(body) for _, _, body in bodies])

    def retrieve(self, request, *args, **kwargs):
        # The lead's body, visible to the caller or not found (get_object's rule without a model instance: half
        # of a detail's CPU); read again only when reading it delivered it.
        lead_id = path_id(kwargs[self.lookup_field])
        contractor_ids = caller_contractor_ids(caller=self.caller)
        found = lead_bodies([lead_id], contractor_ids=contractor_ids) if lead_id is not None else []
        if not found:
            raise NotFound
        (_, state, body) = found[0]
        if state == Lead.State.ASSIGNED and self.actor() == Actor.CONTRACTOR:
            self.deliver([(lead_id, state)])
            (_, _, body) = lead_bodies([lead_id])[0]
        return Response(orjson.Fragment(body))

    def answer(self, lead: Lead) -> Response:
        return Response(orjson.Fragment(lead_bodies([lead.pk])[0][2]))

    @extend_schema(request=None, responses=LeadSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Accept a delivered lead: the contractor is working it."""
        return self.answer(lead_accept(lead=self.get_object(), actor=self.actor(), user=self.caller.user))

    @extend_schema(request=RejectSerializer, responses=LeadSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Decline a delivered lead (it keeps its cap slot; a bad lead is returned instead)."""
        lead, data = self.get_object(), self.valid(RejectSerializer)  # another's lead: 404 before any 400
        return self.answer(lead_reject(lead=lead, actor=self.actor(), user=self.caller.user, **data))

    @extend_schema(request=ContactSerializer, responses=LeadSerializer)
    @action(detail=True, methods=["post"])
    def contact(self, request, pk=None):
        """Record a contact with the homeowner of an accepted lead, with a note; the lead stays accepted."""
        lead, data = self.get_object(), self.valid(ContactSerializer)
        return self.answer(lead_contact(lead=lead, actor=self.actor(), user=self.caller.user, **data))

    @extend_schema(request=ConvertSerializer, responses=LeadSerializer)
    @action(detail=True, methods=["post"])
    def convert(self, request, pk=None):
        """The job was sold: record its value."""
        lead, data = self.get_object(), self.valid(ConvertSerializer)
        return self.answer(lead_convert(lead=lead, actor=self.actor(), user=self.caller.user, **data))

    @extend_schema(request=ReturnSerializer, responses=LeadSerializer)
    @action(detail=True, methods=["post"], url_path="return")
    def return_(self, request, pk=None):
        """Return a delivered or accepted lead within the return window, with a reason; beyond the monthly
        return rate the return waits for staff approval (return_pending)."""
        lead, data = self.get_object(), self.valid(ReturnSerializer)
        outcome = lead_return(lead=lead, actor=self.actor(), user=self.caller.user, **data)
        return self.answer(outcome.lead)

    @extend_schema(request=AssignSerializer, responses=LeadSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsStaff])
    def assign(self, request, pk=None):
        """Staff only: give the lead (in the pool, or another contractor's: a reassignment) to a contractor,
        with a reason, at the price in force (or free, `comp`). Refused (409) when the contractor does not own
        the ZIP, is at its cap or, prepaid, at its credit limit, unless `override`; the lead's history records
        what was overridden."""
        lead, data = self.get_object(), self.valid(AssignSerializer)
        return self.answer(lead_assign(lead=lead, user=self.caller.user, **data))

    def valid(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
