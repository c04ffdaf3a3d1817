"""A lead as a contractor receives it (the API's lead, the webhook's body), built from plain rows. The
fields are listed here, owned by the domain: LeadSerializer documents this shape (the schema is generated
from it) and reads its field lists from here. Built here about ten times faster than the serializer makes
it from model instances. A
page of 50 leads with their properties and events took the serializer about 25 ms of CPU; here it is two
queries of tuples and a loop. tests/leads/test_api_representation.py holds the two to the same output,
field for field, so the serializer stays the one definition of the shape."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict

import orjson
from django.db import connection, models
from django.utils import timezone

from core.numbers import CENT, rounded
from core.process_cache import VersionedCache
from leads.models import Lead, LeadEvent
from scoring.models import Property, Trade

PENDING_STATES = (Lead.State.DELIVERED, Lead.State.ACCEPTED)
UTC_ZONES = (dt.UTC, zoneinfo.ZoneInfo("UTC"), zoneinfo.ZoneInfo("Etc/UTC"))
# The decimals each float of a lead is answered with (here, in LeadSerializer, in the CSV export), so that a
# figure shows as the figure it is. A score, its urgency and its reasons' points are computed to hundredths;
# a priority, 0.75 x score + 0.25 x urgency (leads.ranking), is exact to 4 decimals (96.39750000000001 is
# 96.3975), enough to tell apart every two leads it ranks; coordinates to a millionth of a degree (0.1 m).
DECIMALS = {"score": 2, "urgency": 2, "priority": 4, "points": 2, "bathrooms": 2, "latitude": 6, "longitude": 6}
# A lead's fields, in the order they are answered.
LEAD_BODY_FIELDS = [
    "id", "trade", "state", "zip_code", "score", "urgency", "urgent", "priority", "model_version", "reasons",
    "exploration",
    "property", "generated_at", "assigned_at", "delivered_at", "accepted_at", "contacted_at", "converted_at",
    "closed_at", "expires_at", "job_value", "price", "return_reason", "return_note", "return_pending", "events",
]  # fmt: skip
# Its amounts of money, answered as DRF answers a DecimalField: a string with 2 decimals.
MONEY_FIELDS = ("job_value", "price")
# Its property's fields and its events' fields.
PROPERTY_FIELDS = [
    "parcel_id", "address", "city", "state", "zip_code", "latitude", "longitude", "year_built", "roof_year",
    "living_sqft", "bedrooms", "bathrooms", "property_type", "market_value", "owner_occupied", "owner_name",
    "last_sale_date", "last_sale_price",
]  # fmt: skip
EVENT_FIELDS = ["action", "from_state", "to_state", "actor", "reason", "at"]
# The lead's own fields (the rest are built below).
LEAD_FIELDS = [name for name in LEAD_BODY_FIELDS if name not in ("property", "events", "return_pending")]
LEAD_DECIMALS = [(name, DECIMALS[name]) for name in LEAD_FIELDS if name in DECIMALS]
PROPERTY_DECIMALS = [(name, DECIMALS[name]) for name in PROPERTY_FIELDS if name in DECIMALS]
# Its date-times (and its events') are read as PostgreSQL's text: parsing datetimes was a third of a page's CPU.
INSTANT_FIELDS = (
    "generated_at", "assigned_at", "delivered_at", "accepted_at", "contacted_at", "converted_at", "closed_at",
    "expires_at",
)  # fmt: skip


def _column(model, alias: str, name: str) -> str:
    field = model._meta.get_field(name)
    column = f"{alias}.{field.column}"
    return f"{column}::text" if isinstance(field, (models.DateTimeField, models.JSONField)) else column


LEAD_SOURCES = {"trade": "t.slug", "generated_at": _column(Lead, "l", "created_at")}
# Composed once from the models' metadata: planning the ORM's query would be a fifth of a request's CPU.
# The leads asked for (by id), with their trades and homes; OF_CONTRACTORS keeps those some contractors hold.
LEADS_FROM = f"""
    FROM {Lead._meta.db_table} l
    JOIN {Trade._meta.db_table} t ON t.id = l.trade_id
    JOIN {Property._meta.db_table} p ON p.id = l.property_id
    WHERE l.id = ANY(%s)
"""
OF_CONTRACTORS = f" AND l.{Lead._meta.get_field('contractor').column} = ANY(%s)"
LEAD_SQL = f"""
    SELECT l.id,
           {", ".join(LEAD_SOURCES.get(name) or _column(Lead, "l", name) for name in LEAD_FIELDS)},
           l.{Lead._meta.get_field("return_requested_at").column},
           {", ".join(_column(Property, "p", name) for name in PROPERTY_FIELDS)}
    {LEADS_FROM}
"""
EVENT_SQL = f"""
    SELECT lead_id, {", ".join(_column(LeadEvent, "e", name) for name in EVENT_FIELDS)}
    FROM {LeadEvent._meta.db_table} e
    WHERE lead_id = ANY(%s)
    ORDER BY lead_id, at, id
"""  # the lead_event_history index (lead, at)


# What a lead's body is made from, as a version: its row's, its property's and its trade's xmin (a new one at
# each UPDATE) and its last event's id. A body is made once per version and process, and kept as JSON.
VERSION_SQL = f"""
    SELECT l.id, l.state, l.xmin::text || ' ' || p.xmin::text || ' ' || t.xmin::text || ' ' || coalesce(
        (SELECT max(e.id) FROM {LeadEvent._meta.db_table} e WHERE e.lead_id = l.id), 0)
    {LEADS_FROM}
"""
# About 1.5 kB each: 10,000 bodies are 15 MB a process, a few pages of every contractor's leads.
BODIES: VersionedCache[bytes] = VersionedCache(max_entries=10_000)


def lead_bodies(lead_ids: list[int], *, contractor_ids: list[int] | None = None) -> list[tuple[int, str, bytes]]:
    """The API body of each lead in `lead_ids` as JSON, with its id and state, in that order (ids not found are
    left out); with `contractor_ids`, only of the leads these contractors hold (contractors.caller.
    caller_contractor_ids: None for all, [] for none). One query reads the leads' versions; only the
    bodies this process has not made for those versions are made (leads_represented), and kept."""
    if not lead_ids or contractor_ids == []:
        return []
    zone = str(timezone.get_current_timezone())
    with connection.cursor() as cursor:
        if contractor_ids is None:
            cursor.execute(VERSION_SQL, [list(lead_ids)])
        else:
            cursor.execute(VERSION_SQL + OF_CONTRACTORS, [list(lead_ids), contractor_ids])
        versions = {lead_id: (state, version) for lead_id, state, version in cursor.fetchall()}
    bodies = {lead_id: BODIES.get((lead_id, version, zone)) for lead_id, (_, version) in versions.items()}
    missing = [lead_id for lead_id, body in bodies.items() if body is None]
    for lead in leads_represented(missing):
        # Made after the version was read: as new as that version or newer, never older.
        body = bodies[lead["id"]] = orjson.dumps(lead)
        BODIES.put((lead["id"], versions[lead["id"]][1], zone), body)
    return [(lead_id, versions[lead_id][0], body) for lead_id in lead_ids if (body := bodies.get(lead_id))]


def _instant(text: str | None, zone) -> str | None:
    """What DRF's DateTimeField answers for a date-time PostgreSQL wrote as text (its connection's time zone is
    UTC: "2026-12-04 12:00:00.1+00"): ISO 8601 in the current time zone, with the fraction's six digits or
    none, "Z" for UTC. In UTC it is a rewrite of the text, a fifth of the time parsing it took."""
    if text is None:
        return None
    if zone in UTC_ZONES:
        if len(text) == 22 and text.endswith("+00"):
            return f"{text[:10]}T{text[11:19]}Z"
        if 24 <= len(text) <= 29 and text[19] == "." and text.endswith("+00"):
            return f"{text[:10]}T{text[11:19]}{text[19:-3]:0<7}Z"
    value = dt.datetime.fromisoformat(text).astimezone(zone).isoformat()
    return value[:-6] + "Z" if value.endswith("+00:00") else value


def _reasons(reasons: list[dict]) -> list[dict]:
    return [
        {"feature": str(r["feature"]), "value": r.get("value"), "points": round(float(r["points"]), DECIMALS["points"]),
         "text": str(r["text"])}
        for r in reasons
    ]  # fmt: skip


def leads_represented(lead_ids: list[int]) -> list[dict]:
    """The API body of each lead in `lead_ids`, in that order (ids not found are left out)."""
    if not lead_ids:
        return []
    zone = timezone.get_current_timezone()
    with connection.cursor() as cursor:
        cursor.execute(LEAD_SQL, [list(lead_ids)])  # by primary key
        rows = {row[0]: row for row in cursor.fetchall()}
        cursor.execute(EVENT_SQL, [list(rows)])
        event_rows = cursor.fetchall()
    events = defaultdict(list)
    for lead_id, action, from_state, to_state, actor, reason, at in event_rows:
        events[lead_id].append(
            {"action": action, "from_state": from_state, "to_state": to_state, "actor": actor, "reason": reason,
             "at": _instant(at, zone)}
        )  # fmt: skip
    answers = []
    split = 1 + len(LEAD_FIELDS)
    for lead_id in lead_ids:
        row = rows.get(lead_id)
        if row is None:
            continue
        lead = dict(zip(LEAD_FIELDS, row[1:split], strict=True))
        requested_at, prop = row[split], dict(zip(PROPERTY_FIELDS, row[split + 1 :], strict=True))
        for fields, rounded_fields in ((lead, LEAD_DECIMALS), (prop, PROPERTY_DECIMALS)):
            for name, decimals in rounded_fields:
                fields[name] = rounded(fields[name], decimals)
        for name in INSTANT_FIELDS:
            lead[name] = _instant(lead[name], zone)
        for name in MONEY_FIELDS:
            if lead[name] is not None:
                lead[name] = format(lead[name].quantize(CENT), "f")
        lead["reasons"] = _reasons(orjson.loads(lead["reasons"]))
        if prop["last_sale_date"] is not None:
            prop["last_sale_date"] = prop["last_sale_date"].isoformat()
        lead["property"] = prop
        lead["return_pending"] = requested_at is not None and lead["state"] in PENDING_STATES
        lead["events"] = events[lead_id]
        answers.append({name: lead[name] for name in LEAD_BODY_FIELDS})
    return answers
