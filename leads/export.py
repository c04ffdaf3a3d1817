"""Leads as CSV: every lead a queryset selects, not one page, streamed in chunks from one query, in flat
columns a CRM can import. The API's list answers it (`GET /api/v1/leads/?format=csv`, or
`Accept: text/csv`; leads/api/renderers.py), and the admin's export action. A contractor's export delivers
the assigned leads it contains, as reading the list does. A contractor's monthly statement as CSV too
(statement_csv_response)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from core.numbers import rounded
from leads.models import Lead, Statement
from leads.representation import DECIMALS
from leads.selectors import month_bounds, statement_entries
from leads.services.lifecycle import leads_deliver

CONTENT_TYPE = "text/csv; charset=utf-8"
CHUNK_ROWS = 2000  # rows per fetch from the server-side cursor, and per chunk written to the client

# (CSV header, the Lead.objects.values_list() path it reads): one query, joined to trade and property.
COLUMNS = [
    ("id", "id"),
    ("trade", "trade__slug"),
    ("state", "state"),
    ("zip_code", "zip_code"),
    ("score", "score"),
    ("urgency", "urgency"),
    ("priority", "priority"),
    ("generated_at", "created_at"),
    ("assigned_at", "assigned_at"),
    ("delivered_at", "delivered_at"),
    ("accepted_at", "accepted_at"),
    ("converted_at", "converted_at"),
    ("expires_at", "expires_at"),
    ("job_value", "job_value"),
    ("price", "price"),
    ("return_reason", "return_reason"),
    ("address", "property__address"),
    ("city", "property__city"),
    ("property_state", "property__state"),
    ("owner_name", "property__owner_name"),
    ("parcel_id", "property__parcel_id"),
    ("year_built", "property__year_built"),
    ("roof_year", "property__roof_year"),
    ("living_sqft", "property__living_sqft"),
    ("market_value", "property__market_value"),
    ("reasons", "reasons"),
    ("exploration", "exploration"),
]
HEADER = [header for header, _ in COLUMNS]
# A column's figures to the decimals the API answers them with (score, urgency, priority); None: as stored.
COLUMN_DECIMALS = [DECIMALS.get(header) for header in HEADER]
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such text gets a
# leading apostrophe, which spreadsheets show as text and do not evaluate.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def lead_export_response(queryset: QuerySet[Lead], *, deliver: bool) -> StreamingHttpResponse:
    """Every lead of `queryset` (the list's, filtered and ordered) as a CSV download. With `deliver` (a
    contractor's export), the assigned leads among them are delivered first, in one statement and their own
    transaction, so the file shows them delivered and they stay delivered however far the download gets."""
    now = timezone.now()
    queryset = queryset.prefetch_related(None)
    if deliver:
        with transaction.atomic():
            assigned = list(queryset.filter(state=Lead.State.ASSIGNED).order_by().values_list("pk", flat=True))
            moved = leads_deliver(lead_ids=assigned, via="api", now=now)
        if moved:
            # A lead that matched `state=assigned` is delivered now, yet still belongs in this export.
            queryset = queryset | Lead.objects.filter(pk__in=sorted(moved))
    ordering = list(queryset.query.order_by) or list(Lead._meta.ordering)
    if not {"id", "-id", "pk", "-pk"} & set(ordering):
        ordering.append("-id")  # ties (equal scores) in a stable order
    rows = queryset.order_by(*ordering).values_list(*(path for _, path in COLUMNS))
    response = StreamingHttpResponse(csv_chunks(rows.iterator(chunk_size=CHUNK_ROWS)), content_type=CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="leads-{now.date().isoformat()}.csv"'
    return response


def csv_chunks(rows: Iterable[tuple]) -> Iterator[bytes]:
    """The header, then the rows CHUNK_ROWS at a time, as UTF-8 CSV (RFC 4180: CRLF, quotes as needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        chunk = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        return chunk

    writer.writerow(HEADER)
    yield flush()
    written = 0
    for row in rows:
        writer.writerow(
            [cell(value if decimals is None else rounded(value, decimals))
             for value, decimals in zip(row, COLUMN_DECIMALS, strict=True)]
        )  # fmt: skip
        written += 1
        if written % CHUNK_ROWS == 0:
            yield flush()
    if written % CHUNK_ROWS:
        yield flush()


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).isoformat()
        return text.removesuffix("+00:00") + "Z"  # as the JSON API writes them
    if isinstance(value, list):  # the reasons
        return safe_text("; ".join(str(reason.get("text", "")) for reason in value if isinstance(reason, dict)))
    if isinstance(value, bool):
        return "true" if value else "false"  # as the JSON API writes them
    if isinstance(value, float | int | Decimal):
        return str(value)
    return safe_text(str(value))


def safe_text(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


# A statement's CSV: its opening balance, every ledger entry of its month, its closing balance.
STATEMENT_HEADER = ["at", "kind", "amount", "currency", "lead_id", "trade", "zip_code", "note"]


def statement_csv_response(statement: Statement) -> HttpResponse:
    """The statement as a CSV download, for the admin and the API alike: one row per ledger entry of the
    month, between an opening_balance and a closing_balance row (their amounts the balances)."""
    start, end = month_bounds(month=statement.month, zone=statement.contractor.time_zone)
    currency = settings.CURRENCY
    rows: list[list] = [[start, "opening_balance", statement.opening_balance, currency, None, None, None, ""]]
    for entry in statement_entries(statement=statement):
        source = entry.lead or entry.territory
        trade = source.trade.slug if source is not None else None
        zip_code = entry.lead.zip_code if entry.lead else entry.territory.zip_code_id if entry.territory else None
        rows.append([entry.at, entry.kind, entry.amount, currency, entry.lead_id, trade, zip_code, entry.note])
    rows.append([end, "closing_balance", statement.closing_balance, currency, None, None, None, ""])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(STATEMENT_HEADER)
    writer.writerows([cell(value) for value in row] for row in rows)
    response = HttpResponse(buffer.getvalue().encode(), content_type=CONTENT_TYPE)
    filename = f"statement-{statement.contractor.slug}-{statement.month:%Y-%m}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
