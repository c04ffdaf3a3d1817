"""CSV imports of properties, storms, permits and sales (scoring.services.imports, `manage.py import_data`)."""

import csv
import datetime as dt
import importlib
import io
from pathlib import Path

import factory
import pytest
from django.core.management import call_command
from django.db import connection

from scoring.models import ImportRun, Permit, Property, Sale, StormEvent, Trade
from scoring.services.imports import ImportResult, data_file_import
from scoring.services.imports.files import RejectsFile

# Service-level imports run "on" this day, so that year and date limits are fixed.
TODAY = dt.date(2025, 6, 30)
REJECTS_HEADER = ["line", "column", "value", "reason"]
PROPERTY_FIELDS = [
    "parcel_id", "address", "city", "state", "zip_code_id", "zip_derived", "latitude", "longitude", "year_built",
    "roof_year", "living_sqft", "lot_sqft", "bedrooms", "bathrooms", "stories", "property_type", "market_value",
    "owner_occupied", "last_sale_date", "last_sale_price",
]  # fmt: skip


class PropertyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Property

    parcel_id = factory.Sequence(lambda n: f"F{n:05d}")
    address = factory.Sequence(lambda n: f"{n} Pearl St")
    city = "Boulder"
    state = "CO"
    zip_code_id = "80304"


@pytest.fixture
def trades(db):
    """The trades seeded by migration; re-created when a transactional test flushed them."""
    seed = importlib.import_module("scoring.migrations.0002_seed_trades")
    for slug, name, keywords in seed.TRADES:
        Trade.objects.get_or_create(slug=slug, defaults={"name": name, "permit_keywords": keywords})
    return dict(Trade.objects.values_list("id", "slug"))


@pytest.fixture
def reference(zip_codes, trades):
    """The ZIP reference and the seeded trades, as a freshly set-up LeadEngine has them."""
    return trades


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_import(kind: str, path: Path, **options) -> ImportRun:
    result = data_file_import(kind=kind, path=path, today=TODAY, **options)
    assert result.exit_code == {"succeeded": 0, "partial": 3, "failed": 2}[result.run.status]
    return result.run


def rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.csv")


def read_rejects(path: Path) -> list[list[str]]:
    with open(rejects_path(path), newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def counts(run: ImportRun) -> dict:
    return {
        "status": run.status,
        "read": run.rows_read,
        "inserted": run.rows_inserted,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "rejected": run.rows_rejected,
    }


def properties() -> list[dict]:
    return list(Property.objects.order_by("parcel_id").values(*PROPERTY_FIELDS))


def all_rows() -> dict[str, list[dict]]:
    """Every row of the tables an import writes, every column included (timestamps too)."""
    return {
        model.__name__: list(model.objects.order_by("pk").values()) for model in (Property, StormEvent, Permit, Sale)
    }


def row_versions() -> dict[str, list[tuple[int, str]]]:
    """(pk, xmin) of every row: an UPDATE makes a new row version even when it writes the same values."""
    versions = {}
    with connection.cursor() as cursor:
        for model in (Property, StormEvent, Permit, Sale):
            cursor.execute(f"SELECT id, xmin::text FROM {model._meta.db_table} ORDER BY id")
            versions[model.__name__] = cursor.fetchall()
    return versions


def command(*args: str) -> tuple[int, str, str]:
    """Run `manage.py import_data ARGS`: (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        call_command("import_data", *args, stdout=stdout, stderr=stderr)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, stdout.getvalue(), stderr.getvalue()


def property_row(parcel_id: str, **values) -> dict:
    row = dict.fromkeys(PROPERTY_FIELDS)
    row.update(parcel_id=parcel_id, zip_derived=False, property_type="other", **values)
    return row


# --- Accepted files: every kind loads with typed values -------------------------------------------------------


def test_properties_load_with_typed_values_from_loosely_written_columns(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv",
        "Parcel ID, Address ,City,State,ZIP,Latitude,Longitude,Year Built,Roof Year,Living SqFt,Lot SqFt,Bedrooms,"
        "Bathrooms,Stories,Property Type,Market Value,Owner Occupied,Last Sale Date,Last Sale Price",
        "R0012345,1420 Mapleton Ave,Boulder,CO,80304,40.0224,-105.2867,1978,2004,2150,7400,4,2.5,2,single_family,"
        "1285000,yes,2019-06-14,985000",
        'R0012346,3285 20th St,Boulder,co,80304-1234,40.0301,-105.2672,1996,,1680,5200,3,2,2,Townhome,742000,no,'
        '06/30/2021,"$689,000"',
        'R0012347,550 Baseline Rd,,,,39.9997,-105.2766,1965,1998,1920,8100,3,1.5,1,SFR,"$1,050,000",Y,,',
        'R0012348,  12 Harvard Ave  ,,,2134,,,1910,2020,1450,2000,2,1,3,Condominium,"1,500,000",,,',
    )  # fmt: skip

    run = run_import("properties", path)

    assert counts(run) == {"status": "succeeded", "read": 4, "inserted": 4, "updated": 0, "unchanged": 0, "rejected": 0}
    assert properties() == [
        {
            "parcel_id": "R0012345", "address": "1420 Mapleton Ave", "city": "Boulder", "state": "CO",
            "zip_code_id": "80304", "zip_derived": False, "latitude": 40.0224, "longitude": -105.2867,
            "year_built": 1978, "roof_year": 2004, "living_sqft": 2150, "lot_sqft": 7400, "bedrooms": 4,
            "bathrooms": 2.5, "stories": 2.0, "property_type": "single_family", "market_value": 1285000,
            "owner_occupied": True, "last_sale_date": dt.date(2019, 6, 14), "last_sale_price": 985000,
        },
        {
            "parcel_id": "R0012346", "address": "3285 20th St", "city": "Boulder", "state": "CO",
            "zip_code_id": "80304", "zip_derived": False, "latitude": 40.0301, "longitude": -105.2672,
            "year_built": 1996, "roof_year": None, "living_sqft": 1680, "lot_sqft": 5200, "bedrooms": 3,
            "bathrooms": 2.0, "stories": 2.0, "property_type": "townhouse", "market_value": 742000,
            "owner_occupied": False, "last_sale_date": dt.date(2021, 6, 30), "last_sale_price": 689000,
        },
        {
            "parcel_id": "R0012347", "address": "550 Baseline Rd", "city": "Boulder", "state": "CO",
            "zip_code_id": "80302", "zip_derived": True, "latitude": 39.9997, "longitude": -105.2766,
            "year_built": 1965, "roof_year": 1998, "living_sqft": 1920, "lot_sqft": 8100, "bedrooms": 3,
            "bathrooms": 1.5, "stories": 1.0, "property_type": "single_family", "market_value": 1050000,
            "owner_occupied": True, "last_sale_date": None, "last_sale_price": None,
        },
        {
            "parcel_id": "R0012348", "address": "12 Harvard Ave", "city": "Allston", "state": "MA",
            "zip_code_id": "02134", "zip_derived": False, "latitude": None, "longitude": None,
            "year_built": 1910, "roof_year": 2020, "living_sqft": 1450, "lot_sqft": 2000, "bedrooms": 2,
            "bathrooms": 1.0, "stories": 3.0, "property_type": "condo", "market_value": 1500000,
            "owner_occupied": None, "last_sale_date": None, "last_sale_price": None,
        },
    ]  # fmt: skip
    assert not rejects_path(path).exists()


def test_yes_no_values_are_read_in_every_spelling_and_case(reference, tmp_path):
    spellings = ["true", "FALSE", "Yes", "NO", "y", "N", "1", "0", "T", "f", ""]
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,zip,owner_occupied",
        *(f"P{i:02d},{i} Pearl St,80304,{word}" for i, word in enumerate(spellings)),
    )  # fmt: skip

    run = run_import("properties", path)

    assert run.status == "succeeded"
    assert list(Property.objects.order_by("parcel_id").values_list("owner_occupied", flat=True)) == [
        True, False, True, False, True, False, True, False, True, False, None,
    ]  # fmt: skip


def test_dates_are_read_in_iso_and_us_forms(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,zip,last_sale_date,last_sale_price",
        "A,1 Pearl St,80304,2019-06-14,1", "B,2 Pearl St,80304,06/30/2021,2", "C,3 Pearl St,80304,6/3/2021,3",
        "D,4 Pearl St,80304,2025-06-30,4", "E,5 Pearl St,80304,,",
    )  # fmt: skip

    run = run_import("properties", path)

    assert run.status == "succeeded"
    assert list(Property.objects.order_by("parcel_id").values_list("last_sale_date", flat=True)) == [
        dt.date(2019, 6, 14), dt.date(2021, 6, 30), dt.date(2021, 6, 3), dt.date(2025, 6, 30), None,
    ]  # fmt: skip


def test_zip_codes_are_cut_to_five_digits_and_regain_dropped_leading_zeros(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,zip",
        "A,1 Pearl St,80304-1234", "B,2 Pearl St,803041234", "C,3 Harvard Ave,2134", "D,4 Market St,8030",
    )  # fmt: skip

    run = run_import("properties", path)

    assert run.status == "succeeded"
    assert list(Property.objects.order_by("parcel_id").values_list("zip_code_id", "city", "state")) == [
        ("80304", "Boulder", "CO"),
        ("80304", "Boulder", "CO"),
        ("02134", "Allston", "MA"),
        ("08030", "Gloucester City", "NJ"),
    ]


def test_storms_load_with_kinds_normalised_and_default_radius_for_points(reference, tmp_path):
    path = write(
        tmp_path, "storms.csv",
        "Event ID,Event Date,Kind,Magnitude,Latitude,Longitude,Radius Miles,ZIP",
        "NWS-1,2025-05-01,hail,1.75,40.0150,-105.2705,3,",
        "NWS-2,06/12/2025,Thunderstorm Wind,68,40.0274,-105.2519,,",
        "NWS-3,2025-06-19,HAIL,1.0,,,,80304-0001",
        "NWS-4,2024-08-29,Tornado,135,40.1,-105.1,,",
        "NWS-5,2024-09-01,hurricane,110,27.95,-82.46,,33602",
        "NWS-6,2024-09-02,wind,60,,,4,80302",
    )  # fmt: skip

    run = run_import("storms", path)

    assert counts(run) == {"status": "succeeded", "read": 6, "inserted": 6, "updated": 0, "unchanged": 0, "rejected": 0}
    assert list(
        StormEvent.objects.order_by("event_id").values_list(
            "event_id", "event_date", "kind", "magnitude", "latitude", "longitude", "radius_miles", "zip_code_id"
        )
    ) == [
        ("NWS-1", dt.date(2025, 5, 1), "hail", 1.75, 40.015, -105.2705, 3.0, None),
        ("NWS-2", dt.date(2025, 6, 12), "wind", 68.0, 40.0274, -105.2519, 5.0, None),
        ("NWS-3", dt.date(2025, 6, 19), "hail", 1.0, None, None, None, "80304"),
        ("NWS-4", dt.date(2024, 8, 29), "tornado", 135.0, 40.1, -105.1, 1.0, None),
        ("NWS-5", dt.date(2024, 9, 1), "hurricane", 110.0, 27.95, -82.46, 50.0, "33602"),
        # A radius without a point means nothing: the storm covers its ZIP.
        ("NWS-6", dt.date(2024, 9, 2), "wind", 60.0, None, None, None, "80302"),
    ]


PERMIT_TYPES_AND_TRADES = [
    ("RESIDENTIAL REROOF", "roofing"),
    ("Re-roof, tear off 2 layers", "roofing"),
    ("ROOFING", "roofing"),
    ("Replace shingles", "roofing"),
    ("Solar panels", "solar"),
    ("PHOTOVOLTAIC ARRAY", "solar"),
    ("PV system 8kW", "solar"),
    ("HVAC changeout", "hvac"),
    ("Furnace replacement", "hvac"),
    ("Air conditioning unit", "hvac"),
    ("A/C replacement", "hvac"),
    ("Heat pump install", "hvac"),
    ("MECHANICAL", "hvac"),
    ("Boiler", "hvac"),
    ("Replace windows", "windows"),
    ("Storefront glazing", "windows"),
    ("Fenestration", "windows"),
    # A keyword is a whole word, or the start of one when it ends in *.
    ("Waterproofing basement", None),
    ("Proof of occupancy", None),
    ("Kitchen remodel", None),
    ("PVC plumbing", None),
    ("Rooftop PV system", "solar"),
    # Several trades match: the first seeded trade (roofing) wins.
    ("Solar panels and reroof", "roofing"),
]


def test_permits_take_the_trade_whose_keyword_is_a_word_of_their_type(reference, tmp_path):
    PropertyFactory(parcel_id="R1")
    path = write(
        tmp_path, "permits.csv", "permit_number,parcel_id,issued_date,permit_type,trade,value",
        *(f'BLD-{i:02d},R1,2020-01-{i + 1:02d},"{ptype}",,' for i, (ptype, _) in enumerate(PERMIT_TYPES_AND_TRADES)),
    )  # fmt: skip

    run = run_import("permits", path)

    assert run.status == "succeeded"
    assert run.rows_inserted == len(PERMIT_TYPES_AND_TRADES)
    permits = Permit.objects.select_related("trade").order_by("permit_number")
    found = [(p.permit_type, p.trade and p.trade.slug) for p in permits]
    assert found == PERMIT_TYPES_AND_TRADES


def test_permits_load_with_an_explicit_trade_taking_precedence_over_keywords(reference, tmp_path):
    r1, r2 = PropertyFactory(parcel_id="R0012345"), PropertyFactory(parcel_id="R0012347")
    path = write(
        tmp_path, "permits.csv", "Permit Number,Parcel ID,Issued Date,Permit Type,Trade,Value",
        "BLD-2004-11872,R0012345,2004-08-02,RESIDENTIAL REROOF,,14500",
        'SOL-2022-07710,R0012347,03/09/2022,Rooftop PV system,Solar,"$28,900"',
        "MEC-2023-00001,R0012347,2023-01-15,Generator install,HVAC,",
        "ELE-2023-00002,R0012347,2023-02-15,Electrical panel,,1200",
    )  # fmt: skip

    run = run_import("permits", path)

    assert counts(run) == {"status": "succeeded", "read": 4, "inserted": 4, "updated": 0, "unchanged": 0, "rejected": 0}
    assert list(
        Permit.objects.order_by("permit_number").values_list(
            "permit_number", "property_id", "issued_date", "permit_type", "trade__slug", "value"
        )
    ) == [
        ("BLD-2004-11872", r1.pk, dt.date(2004, 8, 2), "RESIDENTIAL REROOF", "roofing", 14500),
        ("ELE-2023-00002", r2.pk, dt.date(2023, 2, 15), "Electrical panel", None, 1200),
        ("MEC-2023-00001", r2.pk, dt.date(2023, 1, 15), "Generator install", "hvac", None),
        ("SOL-2022-07710", r2.pk, dt.date(2022, 3, 9), "Rooftop PV system", "solar", 28900),
    ]


def test_sales_load_and_move_a_property_last_sale_only_forward(reference, tmp_path):
    older = PropertyFactory(parcel_id="A", last_sale_date=dt.date(2020, 1, 1), last_sale_price=500000)
    never_sold = PropertyFactory(parcel_id="B")
    corrected = PropertyFactory(parcel_id="C", last_sale_date=dt.date(2021, 6, 30), last_sale_price=689000)
    newer = PropertyFactory(parcel_id="D", last_sale_date=dt.date(2019, 6, 14), last_sale_price=985000)
    PropertyFactory(parcel_id="E", last_sale_date=dt.date(2018, 1, 1), last_sale_price=1)
    path = write(
        tmp_path, "sales.csv", "Parcel ID,Sale Date,Price",
        "A,2019-01-01,400000",
        "B,2011-03-22,612000",
        'B,06/30/2021,"$689,000"',
        "C,2021-06-30,700000",
        "D,2023-05-01,1100000",
    )  # fmt: skip

    run = run_import("sales", path)

    assert counts(run) == {"status": "succeeded", "read": 5, "inserted": 5, "updated": 0, "unchanged": 0, "rejected": 0}
    assert list(
        Sale.objects.order_by("property__parcel_id", "sale_date").values_list("property_id", "sale_date", "price")
    ) == [
        (older.pk, dt.date(2019, 1, 1), 400000),
        (never_sold.pk, dt.date(2011, 3, 22), 612000),
        (never_sold.pk, dt.date(2021, 6, 30), 689000),
        (corrected.pk, dt.date(2021, 6, 30), 700000),
        (newer.pk, dt.date(2023, 5, 1), 1100000),
    ]
    assert list(
        Property.objects.order_by("parcel_id").values_list("parcel_id", "last_sale_date", "last_sale_price")
    ) == [
        ("A", dt.date(2020, 1, 1), 500000),  # the sale in the file is older: kept
        ("B", dt.date(2021, 6, 30), 689000),  # the newest of the file's sales
        ("C", dt.date(2021, 6, 30), 700000),  # same day, corrected price
        ("D", dt.date(2023, 5, 1), 1100000),  # newer
        ("E", dt.date(2018, 1, 1), 1),  # not in the file
    ]


def test_values_padded_with_spaces_are_read_trimmed(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv",
        "parcel_id,address,city,state,zip,year_built,owner_occupied,last_sale_date,last_sale_price",
        '  A  ,  1 Pearl St  ,  Boulder  ,  co  ,  80304  ,  1990  ,  Yes  ,  06/30/2021  ,"  $689,000  "',
    )  # fmt: skip

    run = run_import("properties", path)

    assert run.status == "succeeded"
    assert properties() == [
        property_row(
            "A", address="1 Pearl St", city="Boulder", state="CO", zip_code_id="80304", year_built=1990,
            owner_occupied=True, last_sale_date=dt.date(2021, 6, 30), last_sale_price=689000,
        )
    ]  # fmt: skip


def test_text_with_commas_quotes_and_backslashes_is_stored_as_written(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,city,zip",
        'A,"1 ""Old Mill"" Rd, Unit 2",Boulder,80304',
        r"B,\N,C:\Boulder,80304",
        'C,"",,80304',
    )  # fmt: skip

    run = run_import("properties", path)

    assert read_rejects(path) == [REJECTS_HEADER, ["4", "address", "", "required"]]
    assert counts(run) == {"status": "partial", "read": 3, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert list(Property.objects.order_by("parcel_id").values_list("parcel_id", "address", "city")) == [
        ("A", '1 "Old Mill" Rd, Unit 2', "Boulder"),
        ("B", r"\N", r"C:\Boulder"),
    ]


def test_rows_ending_with_a_trailing_comma_load_into_their_own_columns(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,zip,year_built",
        "A,1 Pearl St,80304,1990,", "B,2 Pearl St,80302,1991,",
    )  # fmt: skip

    run = run_import("properties", path)

    assert run.status == "succeeded"
    assert list(
        Property.objects.order_by("parcel_id").values_list("parcel_id", "address", "zip_code_id", "year_built")
    ) == [
        ("A", "1 Pearl St", "80304", 1990),
        ("B", "2 Pearl St", "80302", 1991),
    ]


def test_a_byte_order_mark_before_the_header_is_ignored(reference, tmp_path):
    path = tmp_path / "properties.csv"
    path.write_bytes("Parcel ID,Address,ZIP\nA,1 Pearl St,80304\n".encode("utf-8-sig"))

    run = run_import("properties", path)

    assert run.status == "succeeded"
    assert list(Property.objects.values_list("parcel_id", "address", "zip_code_id")) == [("A", "1 Pearl St", "80304")]


def test_a_latin1_file_loads_when_its_encoding_is_given(reference, tmp_path):
    path = tmp_path / "properties.csv"
    path.write_bytes("parcel_id,address,zip\nA,1 Caf\xe9 Rd,80304\n".encode("latin-1"))

    run = run_import("properties", path, encoding="latin-1")

    assert run.status == "succeeded"
    assert list(Property.objects.values_list("parcel_id", "address")) == [("A", "1 Café Rd")]


def test_a_file_with_only_a_header_succeeds_with_nothing_read(reference, tmp_path):
    path = write(tmp_path, "properties.csv", "parcel_id,address,zip")

    run = run_import("properties", path)

    assert counts(run) == {"status": "succeeded", "read": 0, "inserted": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    assert Property.objects.count() == 0


# --- Rejected rows: the rejects file says which line, column, value and why ------------------------------------


def test_property_rows_with_bad_values_are_rejected_and_the_good_rows_load(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv",
        "parcel_id,address,zip,year_built,roof_year,market_value,owner_occupied,last_sale_date,last_sale_price",
        "G1,1 Good St,80304,1990,2010,500000,yes,2020-01-01,450000",
        "B1,2 Bad St,80304,19x0,,,,,",
        'B2,3 Bad St,80304,1990,,"$5,00O",,,',
        "B3,4 Bad St,80304,1990,,,,2021-02-30,1",
        "B4,5 Bad St,80304,1990,,,,13/01/2021,1",
        "B5,6 Bad St,80304,2027,,,,,",
        "B6,7 Bad St,80304,1990,1985,,,,",
        "B7,8 Bad St,80304,1990,2026,,,,",
        "",
        "B8,9 Bad St,99999,1990,,,,,",
        ",10 Bad St,80304,1990,,,,,",
        "B9,11 Bad St,80304,1990,,,maybe,,",
        "B10,12 Bad St,99999,abc,,,,,",
        "B11,13 Bad St,80304,1990,,12.5,,,",
        "B12,14 Bad St,80304,1990,,,,,250000",
        "G2,15 Good St,2134,1920,,,,,",
    )  # fmt: skip

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["3", "year_built", "19x0", "not a number"],
        ["4", "market_value", "$5,00O", "not a number"],
        ["5", "last_sale_date", "2021-02-30", "not a date (use YYYY-MM-DD or MM/DD/YYYY)"],
        ["6", "last_sale_date", "13/01/2021", "not a date (use YYYY-MM-DD or MM/DD/YYYY)"],
        ["7", "year_built", "2027", "outside 1600 to 2026"],
        ["8", "roof_year", "1985", "roof replaced before the house was built (1990)"],
        ["9", "roof_year", "2026", "outside 1600 to 2025"],
        # line 10 is blank: not a row, but it still counts as a line
        ["11", "zip", "99999", "ZIP code 99999 is not in the US ZIP reference"],
        ["12", "parcel_id", "", "required"],
        ["13", "owner_occupied", "maybe", "not a yes/no value (true/false, yes/no, y/n, 1/0)"],
        ["14", "year_built", "abc", "not a number"],
        ["14", "zip", "99999", "ZIP code 99999 is not in the US ZIP reference"],
        ["15", "market_value", "12.5", "not a whole number"],
        ["16", "last_sale_date", "", "a last sale price needs its date"],
    ]
    # A line with two problems is one rejected row.
    assert counts(run) == {"status": "partial", "read": 15, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 13}
    assert properties() == [
        property_row(
            "G1", address="1 Good St", city="Boulder", state="CO", zip_code_id="80304", year_built=1990,
            roof_year=2010, market_value=500000, owner_occupied=True, last_sale_date=dt.date(2020, 1, 1),
            last_sale_price=450000,
        ),
        property_row("G2", address="15 Good St", city="Allston", state="MA", zip_code_id="02134", year_built=1920),
    ]  # fmt: skip


def test_every_occurrence_of_a_parcel_repeated_in_the_file_is_rejected_across_chunks(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,zip",
        "D1,1 First St,80304",
        "U1,2 Unique St,80304",
        "D1,3 Second St,80304",
        "D2,4 Third St,80304",
        "D1,5 Fourth St,80304",
        "U2,6 Unique St,80304",
        "D2,7 Fifth St,80304",
    )  # fmt: skip

    run = run_import("properties", path, chunk_rows=2)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2", "parcel_id", "D1", "appears on more than one line of the file with different values (lines 2, 4, 6)"],
        ["4", "parcel_id", "D1", "appears on more than one line of the file with different values (lines 2, 4, 6)"],
        ["5", "parcel_id", "D2", "appears on more than one line of the file with different values (lines 5, 8)"],
        ["6", "parcel_id", "D1", "appears on more than one line of the file with different values (lines 2, 4, 6)"],
        ["8", "parcel_id", "D2", "appears on more than one line of the file with different values (lines 5, 8)"],
    ]
    assert counts(run) == {"status": "partial", "read": 7, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 5}
    assert list(Property.objects.order_by("parcel_id").values_list("parcel_id", "address")) == [
        ("U1", "2 Unique St"),
        ("U2", "6 Unique St"),
    ]


def test_a_repeated_parcel_does_not_overwrite_the_stored_property(reference, tmp_path):
    PropertyFactory(parcel_id="D1", address="1 Stored St")
    before = all_rows()
    path = write(tmp_path, "properties.csv", "parcel_id,address,zip", "D1,1 First St,80304", "D1,2 Second St,80304")

    run = run_import("properties", path)

    assert counts(run) == {"status": "partial", "read": 2, "inserted": 0, "updated": 0, "unchanged": 0, "rejected": 2}
    assert all_rows() == before


def test_permits_naming_unknown_parcels_or_trades_are_rejected(reference, tmp_path):
    known = PropertyFactory(parcel_id="R1")
    path = write(
        tmp_path, "permits.csv", "permit_number,parcel_id,issued_date,permit_type,trade,value",
        "P1,R1,2020-01-01,Reroof,,100",
        "P2,NOPE,2020-01-02,Reroof,,100",
        "P3,R1,2020-01-03,Plumbing,plumbing,100",
        "P4,R1,2020-01-04,,,100",
        "P5,R1,2020-01-05,Reroof,,-100",
        "P1,R1,2020-01-06,Reroof,,100",
    )  # fmt: skip

    run = run_import("permits", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        # In line order, whether found in the rows or in SQL against the database.
        ["2", "permit_number", "P1", "appears on more than one line of the file with different values (lines 2, 7)"],
        ["3", "parcel_id", "NOPE", "no property with this parcel_id (import properties first)"],
        ["4", "trade", "plumbing", "not one of hvac, roofing, solar, windows"],
        ["5", "permit_type", "", "required"],
        ["6", "value", "-100", "outside 0 to 2,000,000,000 dollars"],
        ["7", "permit_number", "P1", "appears on more than one line of the file with different values (lines 2, 7)"],
    ]
    assert counts(run) == {"status": "partial", "read": 6, "inserted": 0, "updated": 0, "unchanged": 0, "rejected": 6}
    assert Permit.objects.count() == 0
    assert list(Property.objects.values_list("pk", flat=True)) == [known.pk]


def test_sales_naming_unknown_parcels_or_repeating_a_sale_are_rejected(reference, tmp_path):
    a = PropertyFactory(parcel_id="A")
    path = write(
        tmp_path, "sales.csv", "parcel_id,sale_date,price",
        "A,2020-01-01,300000",
        "Z,2021-01-01,5",
        "A,2021-06-30,1",
        "A,06/30/2021,2",
        "A,2030-01-01,3",
        "A,2022-01-01,",
    )  # fmt: skip

    run = run_import("sales", path)

    repeated = "appears on more than one line of the file with different values (lines 4, 5)"
    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["3", "parcel_id", "Z", "no property with this parcel_id (import properties first)"],
        # The same sale written two ways (ISO and US dates) is the same key.
        ["4", "parcel_id", "A 2021-06-30", repeated],
        ["5", "parcel_id", "A 2021-06-30", repeated],
        ["6", "sale_date", "2030-01-01", "in the future"],
        ["7", "price", "", "required"],
    ]
    assert counts(run) == {"status": "partial", "read": 6, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 5}
    assert list(Sale.objects.values_list("property_id", "sale_date", "price")) == [(a.pk, dt.date(2020, 1, 1), 300000)]
    assert Property.objects.values_list("last_sale_date", "last_sale_price").get() == (dt.date(2020, 1, 1), 300000)


def test_hail_over_ten_inches_and_storms_without_a_location_are_rejected(reference, tmp_path):
    path = write(
        tmp_path, "storms.csv", "event_id,event_date,kind,magnitude,latitude,longitude,radius_miles,zip",
        "S1,2025-05-01,hail,10,40.0,-105.2,,",
        "S2,2025-05-01,hail,10.5,40.0,-105.2,,",
        "S3,2025-05-01,wind,68,40.0,-105.2,,",
        "S4,2025-05-01,hail,1,,,,",
        "S5,2025-05-01,snow,1,,,,80304",
        "S6,1949-12-31,hail,1,,,,80304",
        "S7,2025-05-01,wind,60,40.0,,,80304",
        "S8,2025-05-01,wind,-1,,,,80304",
    )  # fmt: skip

    run = run_import("storms", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["3", "magnitude", "10.5", "hail is measured in inches; over 10 is not hail"],
        ["5", "zip", "", "no location: give latitude/longitude (with radius_miles) or a ZIP code"],
        ["6", "kind", "snow", "not one of hail, wind, tornado, hurricane"],
        ["7", "event_date", "1949-12-31", "before 1950-01-01"],
        ["8", "longitude", "", "latitude and longitude go together"],
        ["9", "magnitude", "-1", "outside 0 to 400"],
    ]
    assert counts(run) == {"status": "partial", "read": 8, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 6}
    assert list(StormEvent.objects.order_by("event_id").values_list("event_id", "kind", "magnitude")) == [
        ("S1", "hail", 10.0),
        ("S3", "wind", 68.0),
    ]


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_a_lone_latitude_or_longitude_is_rejected_under_the_missing_column_whatever_the_chunking(
    reference, tmp_path, chunk_rows
):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,zip,latitude,longitude",
        "A,1 Pearl St,80304,40.02,",
        "B,2 Pearl St,80304,,-105.27",
        "C,3 Pearl St,80304,40.02,-105.27",
    )  # fmt: skip

    run = run_import("properties", path, chunk_rows=chunk_rows)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2", "longitude", "", "latitude and longitude go together"],
        ["3", "latitude", "", "latitude and longitude go together"],
    ]
    assert counts(run) == {"status": "partial", "read": 3, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 2}


# --- Derived ZIP codes -------------------------------------------------------------------------------------------


def test_a_property_without_zip_gets_the_nearest_residential_zip_from_its_coordinates(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,city,state,zip,latitude,longitude",
        "N1,1 Pearl St,,,,40.0180,-105.2840",
        # Exactly on the centroid of 80309 (University of Colorado, a "unique" ZIP with no homes).
        "N2,1 Campus Dr,,,,40.015,-105.2705",
        "N3,3 Pearl St,,,80304,40.0180,-105.2840",
        "N4,4 Pearl St,Boulder City,NV,,40.0180,-105.2840",
    )  # fmt: skip

    run = run_import("properties", path)

    assert counts(run) == {"status": "succeeded", "read": 4, "inserted": 4, "updated": 0, "unchanged": 0, "rejected": 0}
    assert list(
        Property.objects.order_by("parcel_id").values_list("parcel_id", "zip_code_id", "zip_derived", "city", "state")
    ) == [
        ("N1", "80302", True, "Boulder", "CO"),
        ("N2", "80302", True, "Boulder", "CO"),
        ("N3", "80304", False, "Boulder", "CO"),
        # City and state given in the file are kept as given.
        ("N4", "80302", True, "Boulder City", "NV"),
    ]


def test_a_file_without_a_zip_column_derives_every_zip(reference, tmp_path):
    path = write(tmp_path, "properties.csv", "parcel_id,address,latitude,longitude", "N1,1 Pearl St,40.0180,-105.2840")

    run = run_import("properties", path)

    assert run.status == "succeeded"
    assert list(Property.objects.values_list("zip_code_id", "zip_derived")) == [("80302", True)]


def test_a_property_with_neither_zip_nor_nearby_coordinates_is_rejected(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", "parcel_id,address,zip,latitude,longitude",
        "X1,1 Nowhere,,,",
        "X2,1 Mid-Atlantic,,30.0,-40.0",
        "X3,1 Swapped,,-105.2840,40.0180",
        "OK,1 Pearl St,,40.0180,-105.2840",
    )  # fmt: skip

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2", "parcel_id", "X1", "a new parcel (not stored yet) needs a ZIP code or latitude/longitude"],
        ["3", "zip", "", "no ZIP centroid within 25 miles of these coordinates"],
        ["4", "latitude", "-105.2840", "outside -90 to 90"],
    ]
    assert counts(run) == {"status": "partial", "read": 4, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 3}
    assert list(Property.objects.values_list("parcel_id", "zip_code_id")) == [("OK", "80302")]


# --- Import run records and the rejects file -------------------------------------------------------------------


def test_the_import_run_records_file_counts_and_rejects_file(reference, tmp_path):
    path = write(tmp_path, "properties.csv", "parcel_id,address,zip", "A,1 Pearl St,80304", "B,2 Pearl St,99999")

    result = data_file_import(kind="properties", path=path, today=TODAY)

    run = ImportRun.objects.get()
    assert result.run == run
    assert result.exit_code == 3
    assert {
        "kind": run.kind, "file_name": run.file_name, "file_size": run.file_size, "status": run.status,
        "rows_read": run.rows_read, "rows_inserted": run.rows_inserted, "rows_updated": run.rows_updated,
        "rows_unchanged": run.rows_unchanged, "rows_rejected": run.rows_rejected, "rejects_file": run.rejects_file,
        "error": run.error,
    } == {
        "kind": "properties", "file_name": str(path.resolve()), "file_size": 60, "status": "partial",
        "rows_read": 2, "rows_inserted": 1, "rows_updated": 0, "rows_unchanged": 0, "rows_rejected": 1,
        "rejects_file": str(rejects_path(path)), "error": "",
    }  # fmt: skip
    assert run.finished_at >= run.started_at
    assert list(tmp_path.glob("*.partial")) == []


def test_two_imports_of_one_file_at_once_each_write_a_rejects_file_of_their_own(tmp_path):
    source = write(tmp_path, "properties.csv", "parcel_id,address,zip")
    first, second = RejectsFile(source), RejectsFile(source)
    first.write_found([(3, "zip", "99999", "unknown ZIP code"), (2, "zip", "1", "not a ZIP code")])
    second.write_found([(5, "zip", "00000", "unknown ZIP code")])
    assert first.finish() == str(rejects_path(source))
    assert (
        rejects_path(source).read_text()
        == "line,column,value,reason\n2,zip,1,not a ZIP code\n3,zip,99999,unknown ZIP code\n"
    )
    assert second.finish() == str(rejects_path(source))
    assert rejects_path(source).read_text() == "line,column,value,reason\n5,zip,00000,unknown ZIP code\n"
    assert list(tmp_path.glob("*.partial")) == []


def test_a_stale_rejects_file_is_removed_when_the_file_imports_cleanly(reference, tmp_path):
    path = write(tmp_path, "properties.csv", "parcel_id,address,zip", "A,1 Pearl St,80304", "B,2 Pearl St,99999")
    first = run_import("properties", path)
    assert first.rejects_file == str(rejects_path(path))
    write(tmp_path, "properties.csv", "parcel_id,address,zip", "A,1 Pearl St,80304", "B,2 Pearl St,80302")

    second = run_import("properties", path)

    assert counts(second) == {
        "status": "succeeded",
        "read": 2,
        "inserted": 1,
        "updated": 0,
        "unchanged": 1,
        "rejected": 0,
    }
    assert second.rejects_file == ""
    assert not rejects_path(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["properties.csv"]


# --- Unusable files and the command's exit codes ---------------------------------------------------------------


def test_command_returns_normally_and_reports_on_stdout_when_every_row_loads(reference, tmp_path):
    path = write(tmp_path, "properties.csv", "parcel_id,address,zip", "A,1 Pearl St,80304", "B,2 Pearl St,80302")

    code, stdout, stderr = command("properties", str(path))

    assert code == 0
    assert stdout.startswith("properties: 2 rows read, 2 inserted, 0 updated, 0 unchanged, 0 rejected in ")
    assert stdout.endswith(" s\n")
    assert stderr == ""
    assert ImportRun.objects.get().status == "succeeded"
    assert list(Property.objects.order_by("parcel_id").values_list("parcel_id", flat=True)) == ["A", "B"]


def test_command_exits_3_and_names_the_rejects_file_when_some_rows_are_rejected(reference, tmp_path):
    path = write(tmp_path, "properties.csv", "parcel_id,address,zip", "A,1 Pearl St,80304", "B,2 Pearl St,99999")

    code, stdout, stderr = command("properties", str(path))

    assert code == 3
    assert stdout == ""
    assert stderr.startswith(
        f"properties: 2 rows read, 1 inserted, 0 updated, 0 unchanged, 1 rejected (see {rejects_path(path)}) in "
    )
    assert ImportRun.objects.get().status == "partial"
    assert list(Property.objects.values_list("parcel_id", flat=True)) == ["A"]


UNUSABLE_FILES = {
    "missing": (None, "no such file: {path}"),
    "empty": (b"", "the file is empty: expected a header row with column names"),
    "blank header": (b"\n\nA,1 Pearl St,80304\n", "the file is empty: expected a header row with column names"),
    "latin-1": (
        b"parcel_id,address,zip\nA,1 Caf\xe9 Rd,80304\n",
        "the file is not utf-8 text (invalid continuation byte); try --encoding latin-1",
    ),
    "missing columns": (
        b"Folio,ZIP\nA,80304\n",
        "missing required column(s): parcel_id (the file has: Folio, ZIP; use --map SOURCE=CANONICAL to name them)",
    ),
    "two columns for one": (b"zip,parcel_id,address,ZIP\n", "several columns of the file map to zip"),
    "unclosed quote": (
        b'parcel_id,address,zip\nA,"1 Pearl St,80304\nB,2 Pearl St,80304\n',
        "not a well-formed CSV file: Error tokenizing data. C error: EOF inside string starting at row 1",
    ),
}


@pytest.mark.parametrize("case", list(UNUSABLE_FILES))
def test_command_exits_2_and_writes_nothing_for_an_unusable_file(reference, tmp_path, case):
    content, error = UNUSABLE_FILES[case]
    PropertyFactory(parcel_id="KEEP", address="1 Stored St")
    before = all_rows()
    path = tmp_path / "properties.csv"
    if content is not None:
        path.write_bytes(content)
    error = error.format(path=path)

    code, stdout, stderr = command("properties", str(path))

    assert code == 2
    assert stdout == ""
    assert stderr == f"properties: {path.resolve()} was not imported: {error}\n"
    assert all_rows() == before
    run = ImportRun.objects.get()
    assert (run.status, run.error, run.rejects_file) == ("failed", error, "")
    assert (run.rows_read, run.rows_inserted, run.rows_updated, run.rows_unchanged, run.rows_rejected) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert run.file_size == (None if content is None else len(content))
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if content is None else ["properties.csv"])


def test_a_decoding_error_after_the_first_chunks_writes_nothing(reference, tmp_path):
    PropertyFactory(parcel_id="KEEP", address="1 Stored St")
    before = all_rows()
    path = tmp_path / "properties.csv"
    # Good rows (one rejected) well past the header, then a latin-1 byte near the end of a 280 kB file.
    lines = [b"parcel_id,address,zip", b"P00000,0 Pearl St,99999"]
    lines += [b"P%05d,%d Pearl St,80304" % (i, i) for i in range(1, 11_000)]
    lines += [b"BAD,1 Caf\xe9 Rd,80304", b"P11000,11000 Pearl St,80304"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    progress = []

    result = data_file_import(
        kind="properties", path=path, chunk_rows=1000, today=TODAY, progress=lambda *seen: progress.append(seen)
    )

    # Chunks were checked and staged before the bad byte was reached.
    assert [rows for _, _, rows in progress[:2]] == [1000, 2000]
    assert result.exit_code == 2
    assert result.run.status == "failed"
    assert result.run.error == "the file is not utf-8 text (invalid continuation byte); try --encoding latin-1"
    assert all_rows() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["properties.csv"]


def test_command_with_small_chunks_writes_nothing_when_a_later_line_is_not_utf8(reference, tmp_path):
    before = all_rows()
    path = tmp_path / "properties.csv"
    # Past the first 8 kB (which the header check decodes) so that the error comes while loading.
    lines = [b"parcel_id,address,zip"] + [b"P%05d,%d Pearl St,80304" % (i, i) for i in range(400)]
    path.write_bytes(b"\n".join([*lines, b"BAD,1 Caf\xe9 Rd,80304"]) + b"\n")

    code, _stdout, stderr = command("properties", str(path), "--chunk-rows", "2")

    assert code == 2
    error = "the file is not utf-8 text (invalid continuation byte); try --encoding latin-1"
    assert stderr == f"properties: {path.resolve()} was not imported: {error}\n"
    assert all_rows() == before == {"Property": [], "StormEvent": [], "Permit": [], "Sale": []}
    assert ImportRun.objects.values_list("status", "error").get() == ("failed", error)


def test_map_option_reads_a_file_with_county_column_names(reference, tmp_path):
    path = write(
        tmp_path, "county.csv", "Parcel Number,Situs Address,Situs Zip,YR_BLT,Owner Name",
        "R0012345,1420 Mapleton Ave,80304,1978,J. Smith",
    )  # fmt: skip

    code, _stdout, stderr = command(
        "properties", str(path), "--map", "Parcel Number=parcel_id", "--map", "situs address=address",
        "--map", "Situs Zip=zip", "--map", "yr_blt=year_built",
    )  # fmt: skip

    assert (code, stderr) == (0, "")
    assert properties() == [
        property_row(
            "R0012345", address="1420 Mapleton Ave", city="Boulder", state="CO", zip_code_id="80304", year_built=1978
        )
    ]


PROPERTY_COLUMNS = (
    "address, as_of, bathrooms, bedrooms, city, last_sale_date, last_sale_price, latitude, living_sqft, longitude, "
    "lot_sqft, market_value, owner_name, owner_occupied, parcel_id, property_type, roof_year, state, stories, "
    "year_built, zip"
)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "Parcel Number=parcel_number",
            (
                "properties: {path} was not imported: --map Parcel Number=parcel_number: 'parcel_number' is not a "
                f"properties column; use one of {PROPERTY_COLUMNS}"
            ),
        ),
        (
            "Folio=parcel_id",
            "properties: {path} was not imported: --map Folio=parcel_id: the file has no column 'Folio'",
        ),
    ],
)
def test_map_option_naming_an_unknown_column_exits_2(reference, tmp_path, option, message):
    path = write(tmp_path, "county.csv", "Parcel Number,Situs Address,Situs Zip", "R1,1 Pearl St,80304")

    code, stdout, stderr = command("properties", str(path), "--map", "Situs Address=address", "--map", option)

    assert (code, stdout) == (2, "")
    assert stderr == message.format(path=path.resolve()) + "\n"
    assert Property.objects.count() == 0
    assert ImportRun.objects.values_list("status", "error").get() == ("failed", message.split(" was not imported: ")[1])


def test_map_option_without_an_equals_sign_exits_2_before_reading_the_file(reference, tmp_path):
    path = write(tmp_path, "county.csv", "Parcel Number,Situs Address,Situs Zip", "R1,1 Pearl St,80304")

    code, stdout, stderr = command("properties", str(path), "--map", "Parcel Number")

    assert (code, stdout) == (2, "")
    assert stderr == (
        "properties: --map 'Parcel Number': expected SOURCE=CANONICAL, e.g. --map 'Parcel Number=parcel_id'\n"
    )
    assert Property.objects.count() == 0
    assert ImportRun.objects.count() == 0


# --- Idempotency: importing again changes nothing, or exactly what changed ---------------------------------------

# Consistent files: the newest sale of each property is the last sale in the properties file.
EXAMPLE_FILES = {
    "properties": [
        (
            "parcel_id,address,city,state,zip,latitude,longitude,year_built,roof_year,living_sqft,lot_sqft,bedrooms,"
            "bathrooms,stories,property_type,market_value,owner_occupied,last_sale_date,last_sale_price"
        ),
        (
            "R0012345,1420 Mapleton Ave,Boulder,CO,80304,40.0224,-105.2867,1978,2004,2150,7400,4,2.5,2,single_family,"
            "1285000,yes,2019-06-14,985000"
        ),
        (
            "R0012346,3285 20th St,Boulder,CO,80304,40.0301,-105.2672,1996,,1680,5200,3,2,2,townhouse,742000,no,"
            "06/30/2021,689000"
        ),
        'R0012347,550 Baseline Rd,,,,39.9997,-105.2766,1965,1998,1920,8100,3,1.5,1,single_family,"$1,050,000",Y,,',
    ],
    "storms": [
        "event_id,event_date,kind,magnitude,latitude,longitude,radius_miles,zip",
        "NWS-2025-0501-017,2025-05-01,hail,1.75,40.0150,-105.2705,3,",
        "NWS-2025-0612-044,2025-06-12,wind,68,40.0274,-105.2519,,",
        "NWS-2024-0719-002,07/19/2024,hail,1.0,,,,80304",
    ],
    "permits": [
        "permit_number,parcel_id,issued_date,permit_type,trade,value",
        "BLD-2004-11872,R0012345,2004-08-02,RESIDENTIAL REROOF,,14500",
        "MEC-2018-00931,R0012346,2018-10-15,Furnace replacement,,6200",
        "SOL-2022-07710,R0012347,2022-03-09,Rooftop PV system,solar,28900",
    ],
    "sales": [
        "parcel_id,sale_date,price",
        "R0012345,2011-03-22,612000",
        "R0012345,2019-06-14,985000",
        "R0012346,06/30/2021,689000",
    ],
}


def import_examples(tmp_path: Path) -> dict[str, ImportRun]:
    return {kind: run_import(kind, write(tmp_path, f"{kind}.csv", *lines)) for kind, lines in EXAMPLE_FILES.items()}


@pytest.mark.django_db(transaction=True)
def test_importing_the_same_files_twice_leaves_every_row_identical(reference, tmp_path):
    # Committed imports: now() differs between them, so a rewritten row would show in updated_at.
    first = import_examples(tmp_path)
    after_first, versions = all_rows(), row_versions()

    second = import_examples(tmp_path)

    assert {kind: counts(run) for kind, run in first.items()} == {
        kind: {"status": "succeeded", "read": 3, "inserted": 3, "updated": 0, "unchanged": 0, "rejected": 0}
        for kind in EXAMPLE_FILES
    }
    assert {kind: counts(run) for kind, run in second.items()} == {
        kind: {"status": "succeeded", "read": 3, "inserted": 0, "updated": 0, "unchanged": 3, "rejected": 0}
        for kind in EXAMPLE_FILES
    }
    assert all_rows() == after_first
    assert row_versions() == versions
    assert [len(rows) for rows in after_first.values()] == [3, 3, 3, 3]


@pytest.mark.django_db(transaction=True)
def test_reimport_with_one_changed_value_updates_exactly_that_row(reference, tmp_path):
    import_examples(tmp_path)
    before = {row["parcel_id"]: row for row in Property.objects.values()}
    lines = list(EXAMPLE_FILES["properties"])
    lines[2] = lines[2].replace(",742000,", ",755000,")
    path = write(tmp_path, "properties.csv", *lines)

    run = run_import("properties", path)

    assert counts(run) == {"status": "succeeded", "read": 3, "inserted": 0, "updated": 1, "unchanged": 2, "rejected": 0}
    after = {row["parcel_id"]: row for row in Property.objects.values()}
    assert after["R0012345"] == before["R0012345"]
    assert after["R0012347"] == before["R0012347"]
    changed = after["R0012346"]
    assert changed["updated_at"] > before["R0012346"]["updated_at"]
    assert changed == before["R0012346"] | {"market_value": 755000, "updated_at": changed["updated_at"]}


@pytest.mark.django_db(transaction=True)
def test_reimport_of_a_file_with_fewer_columns_keeps_the_values_it_does_not_carry(reference, tmp_path):
    import_examples(tmp_path)
    before = {row["parcel_id"]: row for row in Property.objects.values()}
    path = write(
        tmp_path, "values.csv", "parcel_id,address,zip,market_value", "R0012345,1420 Mapleton Ave,80304,1300000"
    )

    run = run_import("properties", path)

    assert counts(run) == {"status": "succeeded", "read": 1, "inserted": 0, "updated": 1, "unchanged": 0, "rejected": 0}
    after = Property.objects.values().get(parcel_id="R0012345")
    # Coordinates, roof year, last sale... are not in the file and stay as they were.
    assert after == before["R0012345"] | {"market_value": 1300000, "updated_at": after["updated_at"]}


def test_common_spellings_of_column_names_are_recognised_and_unused_columns_named(reference, tmp_path):
    path = write(
        tmp_path,
        "county.csv",
        "APN,Address,Zip Code,Lat,Lng,Owner Name,Mail City",
        "A-1,1 Pearl St,80302,40.0176,-105.2797,Pat Smith,Lyons",
    )

    run = run_import("properties", path)

    assert counts(run)["inserted"] == 1
    assert run.ignored_columns == ["Mail City"]
    assert list(
        Property.objects.values_list("parcel_id", "zip_code_id", "zip_derived", "latitude", "longitude", "owner_name")
    ) == [("A-1", "80302", False, 40.0176, -105.2797, "Pat Smith")]
    assert ImportResult(run=run, exit_code=0).summary().endswith("; columns not used: Mail City")


def test_a_zip_column_and_its_alias_in_one_file_are_refused(reference, tmp_path):
    path = write(tmp_path, "both.csv", "parcel_id,address,zip,zip_code", "A-2,2 Pearl St,80302,80302")

    run = run_import("properties", path)

    assert (run.status, run.error) == ("failed", "several columns of the file map to zip")
    assert not Property.objects.exists()
