"""The do-not-contact list. An entry is stored normalized (leads.models.suppression_value_normalize);
adding one withdraws the open unassigned leads it matches at once, and generation never makes a lead
that matches one. Leads already with a contractor are left to staff, who see them listed; withdrawing one
(leads.services.lifecycle.lead_withdraw) tells its contractor, `lead.withdrawn` with the reason
"do_not_contact" while the lead matches an entry (leads_on_do_not_contact)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from core.fields import is_zip_code
from core.text import counted
from leads.errors import LeadError, SuppressionImportError
from leads.models import SUPPRESSION_NORMALIZE_SQL, Lead, LeadEvent, Suppression, suppression_value_normalize
from scoring.models import Property

# Both are CharFields, whose max_length is set.
MAX_VALUE_LENGTH: int = Suppression._meta.get_field("value").max_length  # type: ignore[assignment]
MAX_NOTE_LENGTH: int = Suppression._meta.get_field("note").max_length  # type: ignore[assignment]


@dataclass(frozen=True)
class SuppressionSummary:
    added: int
    already_listed: int
    leads_withdrawn: int
    assigned_leads: list[int]  # open leads with a contractor that match: for staff to decide

    def __str__(self) -> str:
        text = f"{self.added:,} added, {self.already_listed:,} already listed, {counted(self.leads_withdrawn, 'lead')} "
        text += "withdrawn"
        if self.assigned_leads:
            matching = len(self.assigned_leads)
            where = "is with a contractor" if matching == 1 else "are with contractors"
            text += f"; {counted(matching, 'matching lead')} {where}"
        return text


def suppression_entry_clean(
    *, kind: str | None, value: str | None, zip_code: str | None = "", note: str | None = ""
) -> Suppression:
    """A valid, normalized (unsaved) entry, or LeadError saying what is wrong."""
    kind = str(kind or "").strip().lower()
    if kind not in Suppression.Kind.values:
        raise LeadError(f"kind {kind!r} is not one of: {', '.join(Suppression.Kind.values)}")
    normalized = suppression_value_normalize(value or "")
    if not normalized:
        raise LeadError(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} entry needs a value with letters or digits")
    if len(normalized) > MAX_VALUE_LENGTH:
        raise LeadError(f"value longer than {MAX_VALUE_LENGTH} characters")
    zip_code = str(zip_code or "").strip()
    if zip_code and kind != Suppression.Kind.ADDRESS:
        raise LeadError("only address entries take a ZIP code")
    if zip_code and not is_zip_code(zip_code):
        raise LeadError(f"ZIP code {zip_code!r} is not five digits")
    note = str(note or "").strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise LeadError(f"note longer than {MAX_NOTE_LENGTH} characters")
    return Suppression(kind=kind, value=normalized, zip_code=zip_code, note=note)


_PARCEL, _ADDRESS, _OWNER = (
    SUPPRESSION_NORMALIZE_SQL.format(f"p.{column}") for column in ("parcel_id", "address", "owner_name")
)
# Does do-not-contact entry x match property p.
_ENTRY_MATCHES = f"""(
     (x.kind = 'parcel' AND x.value = {_PARCEL})
  OR (x.kind = 'address' AND x.value = {_ADDRESS} AND x.zip_code IN ('', p.zip_code))
  OR (x.kind = 'owner' AND p.owner_name <> '' AND x.value = {_OWNER}))"""


def leads_on_do_not_contact(lead_ids: list[int]) -> set[int]:
    """Which of these leads' properties match an entry of the do-not-contact list now."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT l.id FROM {Lead._meta.db_table} l
            JOIN {Property._meta.db_table} p ON p.id = l.property_id
            WHERE l.id = ANY(%s)
              AND EXISTS (SELECT FROM {Suppression._meta.db_table} x WHERE {_ENTRY_MATCHES})
            """,
            [lead_ids],
        )
        return {lead_id for (lead_id,) in cursor.fetchall()}


def _withdraw_matching(entry_ids: list[int]) -> tuple[int, list[int]]:
    """Withdraw the open unassigned leads matching these entries, with their events; return that count
    and the ids of matching open leads that are with a contractor."""
    lead, event, prop, suppression = (
        Lead._meta.db_table,
        LeadEvent._meta.db_table,
        Property._meta.db_table,
        Suppression._meta.db_table,
    )
    matching = f"""
        SELECT DISTINCT l.id, l.state FROM {lead} l
        JOIN {prop} p ON p.id = l.property_id
        JOIN {suppression} x ON x.id = ANY(%(ids)s) AND {_ENTRY_MATCHES}
        WHERE l.state IN ({", ".join(f"'{s}'" for s in Lead.OPEN)})
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH matching AS ({matching}),
            moved AS (
                UPDATE {lead} l SET state = 'withdrawn', closed_at = %(now)s, expires_at = NULL
                FROM matching m WHERE l.id = m.id AND m.state = 'generated' AND l.state = 'generated'
                RETURNING l.id
            ),
            logged AS (
                INSERT INTO {event} (lead_id, action, from_state, to_state, actor, reason, override, at)
                SELECT id, 'withdraw', 'generated', 'withdrawn', 'system', 'On the do-not-contact list', false,
                       %(now)s
                FROM moved
            )
            SELECT (SELECT count(*) FROM moved),
                   coalesce((SELECT array_agg(id ORDER BY id) FROM matching WHERE state <> 'generated'), '{{}}')
            """,
            {"ids": entry_ids, "now": now},
        )
        withdrawn, assigned = cursor.fetchone()
    return withdrawn, list(assigned)


@transaction.atomic
def suppressions_add(*, entries: list[Suppression], source: str, created_by: User | None = None) -> SuppressionSummary:
    """Add cleaned entries (suppression_entry_clean); entries already listed are counted, not doubled."""
    user = created_by if created_by is not None and created_by.is_authenticated else None
    for entry in entries:
        entry.source, entry.created_by = source, user
    before = Suppression.objects.count()
    Suppression.objects.bulk_create(entries, ignore_conflicts=True)
    added = Suppression.objects.count() - before
    keys = {(e.kind, e.value, e.zip_code) for e in entries}
    ids = [
        pk
        for pk, kind, value, zip_code in Suppression.objects.filter(value__in={e.value for e in entries}).values_list(
            "pk", "kind", "value", "zip_code"
        )
        if (kind, value, zip_code) in keys
    ]
    withdrawn, assigned = _withdraw_matching(ids) if ids else (0, [])
    return SuppressionSummary(added, len(keys) - added, withdrawn, assigned)


def suppression_add(
    *, kind: str, value: str, zip_code: str = "", note: str = "", created_by: User | None = None
) -> SuppressionSummary:
    entry = suppression_entry_clean(kind=kind, value=value, zip_code=zip_code, note=note)
    return suppressions_add(entries=[entry], source=Suppression.Source.STAFF, created_by=created_by)


def suppressions_import_csv(*, data: bytes, created_by: User | None = None) -> SuppressionSummary:
    """Import a do-not-contact CSV with a header of kind,value and optionally zip,note. Every row is
    checked first; one bad row and nothing is imported, with every bad row named by line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SuppressionImportError([(1, f"not UTF-8 text ({error.reason} at byte {error.start})")]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in ("kind", "value") if name not in header]
    if missing:
        raise SuppressionImportError([(1, f"the header needs the column(s) {', '.join(missing)}; it has {header}")])
    unknown = [name for name in header if name not in ("kind", "value", "zip", "note")]
    if unknown:
        raise SuppressionImportError([(1, f"unknown column(s) {', '.join(unknown)}; expected kind, value, zip, note")])
    reader.fieldnames = header
    entries, errors = [], []
    for row in reader:
        line = reader.line_num
        if None in row:
            errors.append((line, "more fields than the header has"))
            continue
        if not any((value or "").strip() for value in row.values()):
            continue
        try:
            entries.append(
                suppression_entry_clean(
                    kind=row.get("kind"), value=row.get("value"), zip_code=row.get("zip"), note=row.get("note")
                )
            )
        except LeadError as error:
            errors.append((line, str(error)))
    if errors:
        raise SuppressionImportError(errors)
    if not entries:
        raise SuppressionImportError([(1, "the file has no entries")])
    return suppressions_add(entries=entries, source=Suppression.Source.IMPORT, created_by=created_by)
