"""The API's fast lead representation (leads/representation.py) answers exactly what LeadSerializer,
which documents it, makes of the same leads: every state, events, reasons, nulls, job values, a return
waiting for approval, and a site time zone other than UTC."""

import datetime as dt
import json

import pytest
from django.db import connection
from django.test import override_settings

from leads.api.serializers import LeadSerializer
from leads.models import Lead, LeadEvent
from leads.representation import BODIES, lead_bodies, leads_represented
from leads.services.lifecycle import lead_contact
from scoring.models import Property, Trade
from tests.leads.factories import owner
from tests.leads.test_lifecycle import lead_in

State = Lead.State


def serialized(leads: list[Lead]) -> list[dict]:
    found = Lead.objects.select_related("trade", "property").prefetch_related("events").in_bulk([x.pk for x in leads])
    return json.loads(json.dumps([LeadSerializer(found[lead.pk]).data for lead in leads]))


@pytest.fixture
def leads(roofing):
    acme = owner(roofing, "80202")
    made = [lead_in(roofing, state, contractor=acme, score=90.0 - n) for n, state in enumerate(State.values)]
    made.append(lead_in(roofing, State.DELIVERED, contractor=acme, pending_return=True, score=50.25))
    made.append(lead_in(roofing, State.ACCEPTED, contractor=acme, pending_return=True, score=50.5))
    Property.objects.filter(pk=made[0].property_id).update(
        latitude=None, owner_occupied=None, last_sale_date=dt.date(2019, 6, 30), last_sale_price=412_000,
        bathrooms=2.5, owner_name="O'Neil & Sons",
    )  # fmt: skip
    Lead.objects.filter(pk=made[1].pk).update(
        reasons=[{"feature": "roof_age", "value": None, "points": 35, "text": "Roof age unknown"}]
    )
    # Whole seconds: ISO 8601 as DRF writes it leaves the fraction out.
    Lead.objects.filter(pk=made[2].pk).update(assigned_at=dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC))
    # PostgreSQL's text of a fraction drops its trailing zeros (.1); ISO 8601 as DRF writes it has six digits.
    Lead.objects.filter(pk=made[3].pk).update(
        assigned_at=dt.datetime(2026, 11, 2, 8, 0, 0, 100_000, tzinfo=dt.UTC),
        delivered_at=dt.datetime(2026, 11, 2, 8, 0, 0, 5, tzinfo=dt.UTC),
        expires_at=dt.datetime(2026, 11, 9, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    )
    return made


def test_the_fast_representation_is_the_serializers_for_every_kind_of_lead(leads):
    ordered = sorted(leads, key=lambda lead: lead.pk)
    expected = serialized(ordered)

    answered = json.loads(json.dumps(leads_represented([lead.pk for lead in ordered])))

    assert [lead["state"] for lead in answered] == [lead.state for lead in Lead.objects.order_by("pk")]
    assert {"converted", "returned", "withdrawn"} <= {lead["state"] for lead in answered}
    for mine, theirs in zip(answered, expected, strict=True):
        assert mine == theirs
        assert list(mine) == list(theirs)  # and in the same key order
        assert list(mine["property"]) == list(theirs["property"])


@override_settings(TIME_ZONE="America/Denver")
def test_the_fast_representation_answers_in_the_sites_time_zone_as_the_serializer(leads):
    expected = serialized(leads[:3])

    answered = json.loads(json.dumps(leads_represented([lead.pk for lead in leads[:3]])))

    assert answered == expected
    assert answered[1]["assigned_at"].endswith(("-07:00", "-06:00"))
    assert answered[2]["assigned_at"] == "2026-11-02T01:00:00-07:00"


def test_fractions_of_a_second_have_six_digits_or_none_as_the_serializer_writes_them(leads):
    (answered,) = leads_represented([leads[3].pk])

    assert answered == serialized([leads[3]])[0]
    assert [answered[name] for name in ("assigned_at", "delivered_at", "expires_at")] == [
        "2026-11-02T08:00:00.100000Z", "2026-11-02T08:00:00.000005Z", "2026-11-09T23:59:59.999999Z",
    ]  # fmt: skip


def test_leads_come_back_in_the_order_asked_and_unknown_ids_are_left_out(leads):
    ids = [leads[2].pk, 10**9, leads[0].pk]

    assert [lead["id"] for lead in leads_represented(ids)] == [leads[2].pk, leads[0].pk]
    assert leads_represented([]) == []


def test_with_contractor_ids_only_the_leads_these_contractors_hold_are_answered(leads, roofing):
    other = owner(roofing, "80203")
    ids = [lead.pk for lead in leads]
    held = Lead.objects.filter(pk__in=ids, contractor__isnull=False)
    contractor_id = held.values_list("contractor", flat=True).first()
    theirs = set(held.filter(contractor=contractor_id).values_list("pk", flat=True))

    answered = [lead_id for lead_id, _, _ in lead_bodies(ids, contractor_ids=[contractor_id])]

    assert answered == [pk for pk in ids if pk in theirs]
    assert 0 < len(answered) < len(ids)
    assert lead_bodies(ids, contractor_ids=[other.pk]) == []
    assert lead_bodies(ids, contractor_ids=[]) == []
    assert len(lead_bodies(ids, contractor_ids=None)) == len(leads)


def test_kept_bodies_are_the_representation_and_a_change_of_anything_in_them_makes_a_new_one(leads, roofing):
    BODIES.clear()
    ids = [lead.pk for lead in leads]
    accepted = Lead.objects.filter(pk__in=ids, state=State.ACCEPTED, return_requested_at__isnull=True).get()

    def bodies() -> list[dict]:
        return [json.loads(body) for _, _, body in lead_bodies(ids)]

    assert bodies() == json.loads(json.dumps(leads_represented(ids)))
    assert len(BODIES) == len(leads)
    assert bodies() == json.loads(json.dumps(leads_represented(ids)))  # from the kept bodies
    assert len(BODIES) == len(leads)

    lead_contact(lead=accepted, actor=LeadEvent.Actor.CONTRACTOR, user=None, note="Visit booked")  # row, event
    Property.objects.filter(pk=leads[0].property_id).update(address="1 New Street")  # its property's row
    with connection.cursor() as cursor:  # an event alone, the lead's row untouched
        cursor.execute(
            "INSERT INTO leads_leadevent (lead_id, action, from_state, to_state, actor, reason, at, override)"
            " VALUES (%s, 'note', 'generated', 'generated', 'staff', 'Called the owner', now(), false)",
            [leads[1].pk],
        )
    Trade.objects.filter(pk=roofing.pk).update(slug="roofs")  # its trade's row

    answered = bodies()

    assert answered == json.loads(json.dumps(leads_represented(ids)))
    by_id = {lead["id"]: lead for lead in answered}
    assert by_id[accepted.pk]["contacted_at"] is not None
    assert by_id[leads[0].pk]["property"]["address"] == "1 New Street"
    assert "Called the owner" in [event["reason"] for event in by_id[leads[1].pk]["events"]]
    assert {lead["trade"] for lead in answered} == {"roofs"}


@override_settings(TIME_ZONE="America/Denver")
def test_a_kept_body_is_kept_per_time_zone(leads):
    BODIES.clear()
    with override_settings(TIME_ZONE="UTC"):
        (_, _, utc), *_ = lead_bodies([leads[2].pk])

    (_, _, denver), *_ = lead_bodies([leads[2].pk])

    assert json.loads(utc)["assigned_at"] == "2026-11-02T08:00:00Z"
    assert json.loads(denver)["assigned_at"] == "2026-11-02T01:00:00-07:00"
