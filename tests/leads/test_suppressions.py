"""The do-not-contact list: entries are normalized and checked, adding one withdraws the unassigned leads it
matches and lists the ones already with contractors, generation never makes a lead it matches, and CSV
imports take every row or none."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from leads.errors import LeadError, SuppressionImportError
from leads.models import SUPPRESSION_NORMALIZE_SQL, Lead, LeadEvent, Suppression, suppression_value_normalize
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_accept, lead_convert, lead_deliver
from leads.services.routing import leads_route
from leads.services.suppressions import (
    SuppressionSummary,
    suppression_add,
    suppression_entry_clean,
    suppressions_add,
    suppressions_import_csv,
)
from tests.leads.factories import owner, scored_home

LISTED = "On the do-not-contact list"


def entry(suppression: Suppression) -> tuple:
    return (suppression.kind, suppression.value, suppression.zip_code, suppression.note)


def stored() -> list[tuple]:
    return [
        (s.kind, s.value, s.zip_code, s.note, s.source)
        for s in Suppression.objects.order_by("kind", "value", "zip_code")
    ]


def pool_lead(trade, **home_fields) -> Lead:
    prop = scored_home(trade, score=90, **home_fields)
    leads_generate(trade=trade)
    return Lead.objects.get(property=prop)


def assert_withdrawn_by_the_list(lead: Lead) -> None:
    lead.refresh_from_db()
    assert (lead.state, lead.contractor_id, lead.expires_at) == ("withdrawn", None, None)
    event = LeadEvent.objects.filter(lead=lead).latest("id")
    assert (event.action, event.from_state, event.to_state, event.actor, event.user_id, event.contractor_id) == (
        "withdraw",
        "generated",
        "withdrawn",
        "system",
        None,
        None,
    )
    assert (event.reason, event.override, lead.closed_at) == (LISTED, False, event.at)


def assert_untouched(lead: Lead, state: str) -> None:
    events = LeadEvent.objects.filter(lead=lead).count()
    lead.refresh_from_db()
    assert lead.state == state
    assert lead.closed_at is None
    assert not LeadEvent.objects.filter(lead=lead, action="withdraw").exists()
    assert LeadEvent.objects.filter(lead=lead).count() == events


# --- Cleaning entries ----------------------------------------------------------------------------


def test_address_spellings_that_differ_only_in_case_spaces_and_punctuation_are_one_entry():
    one = suppression_entry_clean(kind="address", value="123 Main St.", zip_code="80202")
    other = suppression_entry_clean(kind="address", value="  123  MAIN ST ", zip_code=" 80202 ")

    assert entry(one) == entry(other) == ("address", "123 MAIN ST", "80202", "")


@pytest.mark.parametrize(
    ("kind", "value", "zip_code", "note", "cleaned"),
    [
        ("parcel", "12-345-678", "", "", ("parcel", "12 345 678", "", "")),
        (" PARCEL ", "r0012345", None, None, ("parcel", "R0012345", "", "")),
        ("owner", "Jane Q. Public", "", "  Asked by phone ", ("owner", "JANE Q PUBLIC", "", "Asked by phone")),
        ("Owner", "O'Brien, Pat & Kim", "", "", ("owner", "O BRIEN PAT KIM", "", "")),
        ("address", "4100 E. Colfax Ave #12", "", "", ("address", "4100 E COLFAX AVE 12", "", "")),
    ],
)
def test_entries_are_stored_normalized(kind, value, zip_code, note, cleaned):
    assert entry(suppression_entry_clean(kind=kind, value=value, zip_code=zip_code, note=note)) == cleaned


def test_the_python_and_sql_normalizations_agree(db):
    values = ["123 Main St.", "  o'brien,  PAT ", "4100 E. Colfax Ave #12", "Peña Hernández", "Strauß", "--"]
    with connection.cursor() as cursor:
        for value in values:
            cursor.execute(f"SELECT {SUPPRESSION_NORMALIZE_SQL.format('%s')}", [value])
            assert cursor.fetchone()[0] == suppression_value_normalize(value), value


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "phone", "value": "303-555-0100"}, "kind 'phone' is not one of: parcel, address, owner"),
        ({"kind": "", "value": "123 Main St"}, "kind '' is not one of: parcel, address, owner"),
        ({"kind": None, "value": "123 Main St"}, "kind '' is not one of: parcel, address, owner"),
        ({"kind": "parcel", "value": ""}, "a parcel entry needs a value with letters or digits"),
        ({"kind": "parcel", "value": " -.# "}, "a parcel entry needs a value with letters or digits"),
        ({"kind": "parcel", "value": None}, "a parcel entry needs a value with letters or digits"),
        ({"kind": "owner", "value": "Jane Public", "zip_code": "80202"}, "only address entries take a ZIP code"),
        ({"kind": "parcel", "value": "12-345", "zip_code": "80202"}, "only address entries take a ZIP code"),
        ({"kind": "address", "value": "123 Main St", "zip_code": "8020"}, "ZIP code '8020' is not five digits"),
        (
            {"kind": "address", "value": "123 Main St", "zip_code": "80202-1234"},
            "ZIP code '80202-1234' is not five digits",
        ),
        ({"kind": "address", "value": "123 Main St", "zip_code": "8020x"}, "ZIP code '8020x' is not five digits"),
        ({"kind": "owner", "value": "A" * 201}, "value longer than 200 characters"),
        ({"kind": "owner", "value": "Jane Public", "note": "n" * 301}, "note longer than 300 characters"),
    ],
)
def test_bad_entries_are_refused_saying_what_is_wrong(db, fields, message):
    with pytest.raises(LeadError) as refused:
        suppression_entry_clean(**fields)

    assert str(refused.value) == message


def test_a_refused_entry_adds_nothing(roofing):
    lead = pool_lead(roofing, owner_name="Jane Public")

    with pytest.raises(LeadError):
        suppression_add(kind="owner", value="Jane Public", zip_code="80202")

    assert Suppression.objects.count() == 0
    assert_untouched(lead, "generated")


# --- Adding entries withdraws the pool's matching leads ------------------------------------------------


def test_a_parcel_entry_withdraws_the_unassigned_lead_of_that_parcel(roofing):
    listed = pool_lead(roofing, parcel_id="12-345-678")
    other = pool_lead(roofing, parcel_id="12-345-679")

    summary = suppression_add(kind="parcel", value="12.345.678", note="Owner wrote in")

    assert summary == SuppressionSummary(added=1, already_listed=0, leads_withdrawn=1, assigned_leads=[])
    assert str(summary) == "1 added, 0 already listed, 1 lead withdrawn"
    assert stored() == [("parcel", "12 345 678", "", "Owner wrote in", "staff")]
    assert_withdrawn_by_the_list(listed)
    assert_untouched(other, "generated")


def test_an_address_entry_with_a_zip_withdraws_that_address_in_that_zip_only(roofing):
    here = pool_lead(roofing, address="123 Main St.", zip_code="80202")
    elsewhere = pool_lead(roofing, address="123 Main St", zip_code="80203")
    neighbour = pool_lead(roofing, address="125 Main St", zip_code="80202")

    summary = suppression_add(kind="address", value="123 MAIN  ST", zip_code="80202")

    assert summary == SuppressionSummary(1, 0, 1, [])
    assert_withdrawn_by_the_list(here)
    assert_untouched(elsewhere, "generated")
    assert_untouched(neighbour, "generated")


def test_an_address_entry_without_a_zip_withdraws_that_address_in_every_zip(roofing):
    here = pool_lead(roofing, address="123 Main St.", zip_code="80202")
    elsewhere = pool_lead(roofing, address="123 main st", zip_code="80203")

    summary = suppression_add(kind="address", value="123 Main St")

    assert summary == SuppressionSummary(1, 0, 2, [])
    assert_withdrawn_by_the_list(here)
    assert_withdrawn_by_the_list(elsewhere)


def test_an_owner_entry_withdraws_every_unassigned_lead_of_that_owner(roofing):
    first = pool_lead(roofing, owner_name="PUBLIC, JANE Q")
    second = pool_lead(roofing, owner_name="public jane q.", zip_code="80203")
    reordered = pool_lead(roofing, owner_name="Jane Q. Public")
    nameless = pool_lead(roofing, owner_name="")
    other = pool_lead(roofing, owner_name="Public, John")

    summary = suppression_add(kind="owner", value="Public, Jane Q.")

    assert summary == SuppressionSummary(1, 0, 2, [])
    assert_withdrawn_by_the_list(first)
    assert_withdrawn_by_the_list(second)
    # Word order is part of the name: "Jane Q Public" is another spelling, which staff list separately.
    assert_untouched(reordered, "generated")
    assert_untouched(nameless, "generated")
    assert_untouched(other, "generated")


def test_leads_already_with_contractors_are_left_to_staff_and_listed(roofing):
    acme = owner(roofing, "80202")
    pooled = pool_lead(roofing, owner_name="Jane Public", zip_code="80203")
    assigned = pool_lead(roofing, owner_name="Jane Public", zip_code="80202")
    delivered = pool_lead(roofing, owner_name="Jane Public", zip_code="80202")
    accepted = pool_lead(roofing, owner_name="Jane Public", zip_code="80202")
    converted = pool_lead(roofing, owner_name="Jane Public", zip_code="80202")
    assert leads_route().by_contractor == {acme.pk: 4}
    for lead in (delivered, accepted, converted):
        lead_deliver(lead=lead)
    for lead in (accepted, converted):
        lead_accept(lead=lead, actor="contractor")
    lead_convert(lead=converted, job_value="9000", actor="contractor")

    summary = suppression_add(kind="owner", value="jane public")

    assert summary == SuppressionSummary(1, 0, 1, sorted([assigned.pk, delivered.pk, accepted.pk]))
    assert str(summary) == "1 added, 0 already listed, 1 lead withdrawn; 3 matching leads are with contractors"
    assert_withdrawn_by_the_list(pooled)
    for lead, state in ((assigned, "assigned"), (delivered, "delivered"), (accepted, "accepted")):
        assert_untouched(lead, state)
        assert lead.contractor_id == acme.pk
    converted.refresh_from_db()
    assert converted.state == "converted"


def test_readding_an_entry_counts_it_as_already_listed(roofing):
    suppression_add(kind="address", value="123 Main St.", zip_code="80202", note="First request")

    summary = suppression_add(kind="ADDRESS", value="123  main st", zip_code="80202", note="Second request")

    assert summary == SuppressionSummary(added=0, already_listed=1, leads_withdrawn=0, assigned_leads=[])
    assert stored() == [("address", "123 MAIN ST", "80202", "First request", "staff")]


def test_the_same_address_with_and_without_a_zip_are_two_entries(roofing):
    suppression_add(kind="address", value="123 Main St", zip_code="80202")

    summary = suppression_add(kind="address", value="123 Main St")

    assert (summary.added, summary.already_listed) == (1, 0)
    assert Suppression.objects.count() == 2


def test_a_batch_counts_new_entries_and_listed_ones_and_its_own_repeats_once(roofing):
    suppression_add(kind="owner", value="Jane Public")
    entries = [
        suppression_entry_clean(kind="owner", value="JANE PUBLIC"),
        suppression_entry_clean(kind="parcel", value="12-345"),
        suppression_entry_clean(kind="parcel", value="12 345"),
    ]
    user = get_user_model().objects.create_user("dispatcher", is_staff=True)

    summary = suppressions_add(entries=entries, source="api", created_by=user)

    assert summary == SuppressionSummary(added=1, already_listed=1, leads_withdrawn=0, assigned_leads=[])
    assert Suppression.objects.get(kind="parcel").created_by == user


# --- Generation never makes a lead the list matches ---------------------------------------------------


def test_generation_makes_no_lead_for_a_listed_parcel_address_or_owner(roofing):
    parcel = scored_home(roofing, score=90, parcel_id="12-345-678")
    address_here = scored_home(roofing, score=90, address="123 Main St.", zip_code="80202")
    address_elsewhere = scored_home(roofing, score=90, address="123 Main St.", zip_code="80203")
    anywhere = [
        scored_home(roofing, score=90, address="9 Elm Ct", zip_code=zip_code) for zip_code in ("80202", "80203")
    ]
    owned = scored_home(roofing, score=90, owner_name="Public, Jane Q.")
    nameless = scored_home(roofing, score=90, owner_name="")
    free = scored_home(roofing, score=90, owner_name="John Doe")
    suppressions_add(
        entries=[
            suppression_entry_clean(kind="parcel", value="12 345 678"),
            suppression_entry_clean(kind="address", value="123 MAIN ST", zip_code="80202"),
            suppression_entry_clean(kind="address", value="9 elm ct."),
            suppression_entry_clean(kind="owner", value="PUBLIC JANE Q"),
        ],
        source="staff",
    )

    summary = leads_generate(trade=roofing)

    assert summary.created == 3
    assert sorted(Lead.objects.values_list("property_id", flat=True)) == sorted(
        [address_elsewhere.pk, nameless.pk, free.pk]
    )
    assert not Lead.objects.filter(property__in=[parcel, address_here, *anywhere, owned]).exists()


def test_generation_skips_an_owner_listed_with_letters_outside_a_to_z(roofing):
    listed = scored_home(roofing, score=90, owner_name="Karl Strauß")
    suppression_add(kind="owner", value="Karl Strauß")

    leads_generate(trade=roofing)

    assert not Lead.objects.filter(property=listed).exists()


# --- CSV imports ---------------------------------------------------------------------------------

GOOD_FILE = (
    "\ufeffKind, VALUE ,Zip,NOTE\r\n"
    "parcel,12-345-678,,Owner wrote in\r\n"
    "\r\n"
    "ADDRESS,123 Main St.,80202,\r\n"
    ",,,\r\n"
    'owner,"Public, Jane Q.",,"Asked by phone, twice"\r\n'
    "address,9 Elm Ct,,\r\n"
).encode()


def test_a_good_file_imports_every_row(roofing):
    lead = pool_lead(roofing, parcel_id="12-345-678")

    summary = suppressions_import_csv(data=GOOD_FILE)

    assert summary == SuppressionSummary(added=4, already_listed=0, leads_withdrawn=1, assigned_leads=[])
    assert stored() == [
        ("address", "123 MAIN ST", "80202", "", "import"),
        ("address", "9 ELM CT", "", "", "import"),
        ("owner", "PUBLIC JANE Q", "", "Asked by phone, twice", "import"),
        ("parcel", "12 345 678", "", "Owner wrote in", "import"),
    ]
    assert_withdrawn_by_the_list(lead)


def test_a_file_of_kind_and_value_only_imports(db):
    summary = suppressions_import_csv(data=b"kind,value\nowner,Jane Public\nparcel,R-1\n")

    assert (summary.added, summary.already_listed) == (2, 0)
    assert stored() == [("owner", "JANE PUBLIC", "", "", "import"), ("parcel", "R 1", "", "", "import")]


def test_importing_the_same_file_twice_adds_nothing_the_second_time(db):
    suppressions_import_csv(data=GOOD_FILE)

    summary = suppressions_import_csv(data=GOOD_FILE)

    assert summary == SuppressionSummary(added=0, already_listed=4, leads_withdrawn=0, assigned_leads=[])
    assert Suppression.objects.count() == 4


def test_a_file_with_bad_rows_imports_nothing_and_names_every_bad_line(roofing):
    suppression_add(kind="owner", value="Already Listed")
    data = (
        b"kind,value,zip,note\n"
        b"parcel,12-345-678,,\n"  # line 2: good
        b"phone,303-555-0100,,\n"  # line 3
        b"\n"
        b"owner,Jane Public,80202,\n"  # line 5
        b"address,123 Main St,8020,\n"  # line 6
        b"parcel, --- ,,\n"  # line 7
        b"owner,Jane Public,,note,extra\n"  # line 8
        b"address,9 Elm Ct,80202,\n"  # line 9: good
    )

    with pytest.raises(SuppressionImportError) as refused:
        suppressions_import_csv(data=data)

    assert refused.value.errors == [
        (3, "kind 'phone' is not one of: parcel, address, owner"),
        (5, "only address entries take a ZIP code"),
        (6, "ZIP code '8020' is not five digits"),
        (7, "a parcel entry needs a value with letters or digits"),
        (8, "more fields than the header has"),
    ]
    assert str(refused.value) == (
        "5 bad row(s), nothing imported: line 3: kind 'phone' is not one of: parcel, address, owner; "
        "line 5: only address entries take a ZIP code; line 6: ZIP code '8020' is not five digits; "
        "line 7: a parcel entry needs a value with letters or digits; line 8: more fields than the header has."
    )
    assert stored() == [("owner", "ALREADY LISTED", "", "", "staff")]


def test_a_file_with_many_bad_rows_names_the_first_twenty(db):
    data = ("kind,value\n" + "phone,1\n" * 25).encode()

    with pytest.raises(SuppressionImportError) as refused:
        suppressions_import_csv(data=data)

    assert len(refused.value.errors) == 25
    message = str(refused.value)
    assert message.startswith("25 bad row(s), nothing imported: line 2: kind 'phone'")
    assert "line 21: " in message
    assert "line 22: " not in message
    assert message.endswith("; and 5 more.")
    assert Suppression.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (b"kind,zip\nowner,80202\n", [(1, "the header needs the column(s) value; it has ['kind', 'zip']")]),
        (b"type,name\nowner,Jane\n", [(1, "the header needs the column(s) kind, value; it has ['type', 'name']")]),
        (b"", [(1, "the header needs the column(s) kind, value; it has []")]),
        (b"\xef\xbb\xbf", [(1, "the header needs the column(s) kind, value; it has []")]),
        (
            b"kind,value,phone\nowner,Jane,303\n",
            [(1, "unknown column(s) phone; expected kind, value, zip, note")],
        ),
        (b"kind,value\nowner,Pe\xf1a\n", [(1, "not UTF-8 text (invalid continuation byte at byte 19)")]),
        (b"kind,value\n", [(1, "the file has no entries")]),
        (b"kind,value\n\n,\n", [(1, "the file has no entries")]),
    ],
    ids=["missing value", "missing both", "empty", "only a BOM", "unknown column", "not UTF-8", "header only", "blank"],
)
def test_a_file_that_is_not_a_suppression_list_is_refused_clearly(db, data, errors):
    suppression_add(kind="owner", value="Already Listed")

    with pytest.raises(SuppressionImportError) as refused:
        suppressions_import_csv(data=data)

    assert refused.value.errors == errors
    assert str(refused.value) == f"1 bad row(s), nothing imported: line 1: {errors[0][1]}."
    assert stored() == [("owner", "ALREADY LISTED", "", "", "staff")]


# --- The import_suppressions command -----------------------------------------------------------------


def test_the_import_command_prints_the_summary(roofing, tmp_path):
    pool_lead(roofing, parcel_id="12-345-678")
    path = tmp_path / "do-not-contact.csv"
    path.write_bytes(GOOD_FILE)
    out = io.StringIO()

    call_command("import_suppressions", str(path), stdout=out)

    assert out.getvalue() == "4 added, 0 already listed, 1 lead withdrawn\n"
    assert Suppression.objects.count() == 4


def test_the_import_command_fails_on_a_bad_file_and_imports_nothing(db, tmp_path):
    path = tmp_path / "do-not-contact.csv"
    path.write_bytes(b"kind,value\nowner,Jane Public\nphone,303-555-0100\n")

    with pytest.raises(CommandError) as failed:
        call_command("import_suppressions", str(path), stdout=io.StringIO())

    assert str(failed.value) == (
        "1 bad row(s), nothing imported: line 3: kind 'phone' is not one of: parcel, address, owner."
    )
    assert Suppression.objects.count() == 0


def test_the_import_command_fails_on_a_missing_file(db, tmp_path):
    path = tmp_path / "missing.csv"

    with pytest.raises(CommandError) as failed:
        call_command("import_suppressions", str(path), stdout=io.StringIO())

    assert str(failed.value) == f"cannot read {path}: No such file or directory"
    assert Suppression.objects.count() == 0
