"""The import rules for real, messy and out-of-order files: blank means unknown, NULL clears, the newer
as-of wins per row, exact duplicate lines are one row, and a partial file updates the columns it has."""

import datetime as dt

import pytest

from scoring.models import ImportRun, Permit, Property, Sale, StormEvent
from tests.scoring.test_imports import REJECTS_HEADER, counts, read_rejects, reference, run_import, trades, write

__all__ = ["reference", "trades"]  # fixtures, used by name

FULL_HEADER = "parcel_id,address,zip,year_built,roof_year,market_value,property_type,owner_name"


def stored(parcel_id: str, *fields: str) -> tuple:
    return Property.objects.filter(parcel_id=parcel_id).values_list(*fields).get()


def rule_counts(run: ImportRun) -> dict:
    return counts(run) | {"duplicate": run.rows_duplicate, "older": run.rows_older, "skipped": run.rows_skipped}


# --- Blank means unknown; NULL clears ----------------------------------------------------------------------------


def test_blank_cells_never_erase_stored_values(reference, tmp_path):
    first = write(
        tmp_path, "first.csv", FULL_HEADER + ",city",
        "A,1 Pearl St,80304,1990,2015,450000,townhouse,Jane Roe,Boulder Heights",
    )  # fmt: skip
    run_import("properties", first)
    blanks = write(tmp_path, "blanks.csv", FULL_HEADER + ",city", "A,1 Pearl St,80304,,,,,,")

    run = run_import("properties", blanks)

    assert rule_counts(run) == {
        "status": "succeeded", "read": 1, "inserted": 0, "updated": 0, "unchanged": 1, "rejected": 0,
        "duplicate": 0, "older": 0, "skipped": 0,
    }  # fmt: skip
    assert stored("A", "year_built", "roof_year", "market_value", "property_type", "owner_name", "city") == (
        1990,
        2015,
        450000,
        "townhouse",
        "Jane Roe",
        "Boulder Heights",
    )


def test_a_new_property_with_blank_cells_takes_the_defaults(reference, tmp_path):
    path = write(tmp_path, "new.csv", FULL_HEADER, "N,2 Pearl St,80304,,,,,")

    run_import("properties", path)

    assert stored("N", "roof_year", "property_type", "owner_name", "city", "state") == (
        None,
        "other",
        "",
        "Boulder",
        "CO",
    )


def test_the_null_token_clears_a_stored_value_on_purpose(reference, tmp_path):
    run_import("properties", write(tmp_path, "first.csv", FULL_HEADER, "A,1 Pearl St,80304,1990,2015,450000,condo,Jo"))
    path = write(tmp_path, "clear.csv", "parcel_id,roof_year,market_value,owner_name", "A,NULL,NULL,NULL")

    run = run_import("properties", path)

    assert (run.rows_updated, run.rows_rejected) == (1, 0)
    assert stored("A", "year_built", "roof_year", "market_value", "owner_name", "property_type") == (
        1990,
        None,
        None,
        "",
        "condo",
    )


def test_the_null_token_is_refused_where_a_value_cannot_be_cleared(reference, tmp_path):
    run_import(
        "properties",
        write(tmp_path, "first.csv", "parcel_id,address,zip,latitude,longitude", "A,1 Pearl St,80304,40.01,-105.28"),
    )
    path = write(
        tmp_path, "clear.csv", "parcel_id,address,latitude,longitude",
        "A,NULL,,",
        "A2,2 Pearl St,NULL,-105.28",
    )  # fmt: skip

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2", "address", "NULL", "address cannot be cleared (NULL)"],
        ["3", "latitude", "NULL", "latitude and longitude go together"],
    ]
    assert run.rows_rejected == 2
    assert stored("A", "address", "latitude", "longitude") == ("1 Pearl St", 40.01, -105.28)


def test_clearing_both_coordinates_keeps_the_property_valid(reference, tmp_path):
    run_import(
        "properties",
        write(tmp_path, "first.csv", "parcel_id,address,zip,latitude,longitude", "A,1 Pearl St,80304,40.01,-105.28"),
    )

    run_import("properties", write(tmp_path, "clear.csv", "parcel_id,latitude,longitude", "A,NULL,NULL"))

    assert stored("A", "latitude", "longitude", "zip_code_id") == (None, None, "80304")


# --- Newer wins, per row -------------------------------------------------------------------------------------------


def test_an_older_file_never_brings_back_older_values(reference, tmp_path):
    this_year = write(
        tmp_path, "2025.csv", FULL_HEADER, "A,1 Pearl St,80304,1990,2022,500000,,", "B,2 Pearl St,80304,1990,,,,"
    )
    last_year = write(
        tmp_path, "2024.csv", FULL_HEADER,
        "A,1 Pearl St,80304,1990,2011,380000,,",
        "B,2 Pearl St,80304,1990,2001,,,",
        "C,3 Pearl St,80304,1950,,,,",
    )  # fmt: skip
    run_import("properties", this_year, as_of=dt.date(2025, 3, 1))

    run = run_import("properties", last_year, as_of=dt.date(2024, 3, 1))

    assert rule_counts(run) == {
        "status": "succeeded", "read": 3, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 0,
        "duplicate": 0, "older": 2, "skipped": 0,
    }  # fmt: skip
    assert stored("A", "roof_year", "market_value", "source_as_of") == (2022, 500000, dt.date(2025, 3, 1))
    assert stored("B", "roof_year") == (None,)  # an older file does not fill in either: its values are older
    assert stored("C", "year_built", "source_as_of") == (1950, dt.date(2024, 3, 1))
    assert run.as_of == dt.date(2024, 3, 1)


def test_a_newer_file_with_the_same_values_moves_the_as_of_forward_and_counts_as_unchanged(reference, tmp_path):
    path = write(tmp_path, "p.csv", FULL_HEADER, "A,1 Pearl St,80304,1990,2022,500000,,")
    run_import("properties", path, as_of=dt.date(2025, 1, 1))
    updated_at = stored("A", "updated_at")[0]

    again = run_import("properties", path, as_of=dt.date(2025, 6, 1))
    older = run_import(
        "properties",
        write(tmp_path, "mid.csv", FULL_HEADER, "A,1 Pearl St,80304,1990,2011,,,"),
        as_of=dt.date(2025, 3, 1),
    )

    assert (again.rows_updated, again.rows_unchanged) == (0, 1)
    assert stored("A", "source_as_of", "updated_at") == (dt.date(2025, 6, 1), updated_at)
    assert (older.rows_older, stored("A", "roof_year")) == (1, (2022,))


def test_a_per_row_as_of_column_dates_each_row(reference, tmp_path):
    run_import(
        "properties",
        write(tmp_path, "first.csv", FULL_HEADER + ",as_of", "A,1 Pearl St,80304,1990,2022,,,,2025-05-01"),
    )
    path = write(
        tmp_path, "mixed.csv", "parcel_id,roof_year,as_of",
        "A,2011,2024-01-01",
        "A2,2019,",
    )  # fmt: skip

    run = run_import("properties", path, as_of=dt.date(2025, 6, 1))

    assert run.rows_older == 1
    assert stored("A", "roof_year", "source_as_of") == (2022, dt.date(2025, 5, 1))
    assert read_rejects(path)[1] == [
        "3",
        "parcel_id",
        "A2",
        "a new parcel (not stored yet) needs an address and a ZIP code or latitude/longitude",
    ]


def test_the_newest_sale_is_the_last_sale_whatever_the_order_of_files(reference, tmp_path):
    header = "parcel_id,address,zip,last_sale_date,last_sale_price"
    newer = write(tmp_path, "newer.csv", header, "A,1 Pearl St,80304,2025-06-01,650000")
    older = write(tmp_path, "older.csv", header, "A,1 Pearl St,80304,2009-09-17,210000")
    run_import("properties", newer)

    run_import("properties", older)
    assert stored("A", "last_sale_date", "last_sale_price") == (dt.date(2025, 6, 1), 650000)

    run_import("properties", write(tmp_path, "unknown_price.csv", header, "A,1 Pearl St,80304,2025-06-20,"))
    assert stored("A", "last_sale_date", "last_sale_price") == (dt.date(2025, 6, 20), None)


def test_storm_and_permit_rows_follow_the_same_rules(reference, tmp_path):
    run_import("properties", write(tmp_path, "p.csv", "parcel_id,address,zip", "A,1 Pearl St,80304"))
    storms = "event_id,event_date,kind,magnitude,latitude,longitude,radius_miles"
    run_import(
        "storms",
        write(tmp_path, "s1.csv", storms, "E1,2025-05-01,hail,1.75,40.01,-105.28,3"),
        as_of=dt.date(2025, 6, 1),
    )
    permits = "permit_number,parcel_id,issued_date,permit_type,value"
    run_import("permits", write(tmp_path, "p1.csv", permits, "P1,A,2025-01-10,Reroof,12000"))

    older = run_import(
        "storms", write(tmp_path, "s0.csv", storms, "E1,2025-05-01,hail,1.00,40.01,-105.28,"), as_of=dt.date(2025, 5, 2)
    )
    blank = run_import("permits", write(tmp_path, "p2.csv", permits, "P1,A,2025-01-10,Reroof,"))

    assert older.rows_older == 1
    assert StormEvent.objects.values_list("magnitude", "radius_miles").get() == (1.75, 3.0)
    assert (blank.rows_unchanged, Permit.objects.values_list("value", flat=True).get()) == (1, 12000)


# --- Exact duplicates ------------------------------------------------------------------------------------------------


def test_exact_duplicate_lines_load_once_and_conflicting_ones_are_refused(reference, tmp_path):
    run_import(
        "properties", write(tmp_path, "p.csv", "parcel_id,address,zip", "A,1 Pearl St,80304", "B,2 Pearl St,80304")
    )
    path = write(
        tmp_path, "sales.csv", "parcel_id,sale_date,price",
        "A,2024-02-01,400000",
        "A,2024-02-01,400000",
        "B,2024-03-01,300000",
        "A,2024-02-01,400000",
        "B,2024-03-01,310000",
        "A,2020-01-01,350000",
    )  # fmt: skip

    run = run_import("sales", path, chunk_rows=2)

    assert rule_counts(run) == {
        "status": "partial", "read": 6, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 2,
        "duplicate": 2, "older": 0, "skipped": 0,
    }  # fmt: skip
    reason = "appears on more than one line of the file with different values (lines 4, 6)"
    assert read_rejects(path)[1:] == [
        ["4", "parcel_id", "B 2024-03-01", reason],
        ["6", "parcel_id", "B 2024-03-01", reason],
    ]
    assert sorted(Sale.objects.values_list("property__parcel_id", "sale_date", "price")) == [
        ("A", dt.date(2020, 1, 1), 350000),
        ("A", dt.date(2024, 2, 1), 400000),
    ]
    assert stored("A", "last_sale_date", "last_sale_price") == (dt.date(2024, 2, 1), 400000)


# --- Partial files -----------------------------------------------------------------------------------------------


def test_a_partial_file_updates_only_its_columns_of_stored_parcels(reference, tmp_path):
    run_import(
        "properties", write(tmp_path, "full.csv", FULL_HEADER, "A,1 Pearl St,80304,1990,2015,450000,condo,Jo Roe")
    )
    values = write(
        tmp_path, "values.csv", "Parcel ID,Market Value",
        "A,480000",
        "UNKNOWN,300000",
    )  # fmt: skip

    run = run_import("properties", values)

    assert rule_counts(run) == {
        "status": "partial", "read": 2, "inserted": 0, "updated": 1, "unchanged": 0, "rejected": 1,
        "duplicate": 0, "older": 0, "skipped": 0,
    }  # fmt: skip
    assert read_rejects(values)[1:] == [
        [
            "3",
            "parcel_id",
            "UNKNOWN",
            "a new parcel (not stored yet) needs an address and a ZIP code or latitude/longitude",
        ]
    ]
    assert stored("A", "address", "zip_code_id", "year_built", "roof_year", "market_value", "owner_name") == (
        "1 Pearl St",
        "80304",
        1990,
        2015,
        480000,
        "Jo Roe",
    )


def test_a_partial_file_row_with_what_a_new_property_needs_is_inserted(reference, tmp_path):
    path = write(
        tmp_path, "building.csv", "parcel_id,address,latitude,longitude,year_built", "N,9 Pearl St,40.018,-105.284,1978"
    )

    run = run_import("properties", path)

    assert run.rows_inserted == 1
    assert stored("N", "zip_code_id", "zip_derived", "city", "year_built") == ("80302", True, "Boulder", 1978)


def test_a_partial_file_is_checked_against_the_stored_row(reference, tmp_path):
    run_import("properties", write(tmp_path, "full.csv", FULL_HEADER, "A,1 Pearl St,80304,1990,2015,,,"))
    path = write(tmp_path, "roofs.csv", "parcel_id,roof_year", "A,1985")

    run = run_import("properties", path)

    assert read_rejects(path)[1:] == [["2", "roof_year", "1985", "roof replaced before the house was built (1990)"]]
    assert (run.rows_rejected, stored("A", "roof_year")) == (1, (2015,))


def test_coordinates_without_a_zip_do_not_replace_a_zip_the_county_gave(reference, tmp_path):
    run_import("properties", write(tmp_path, "full.csv", "parcel_id,address,zip", "A,1 Pearl St,80304"))

    run_import("properties", write(tmp_path, "xy.csv", "parcel_id,latitude,longitude", "A,40.018,-105.284"))

    assert stored("A", "zip_code_id", "zip_derived", "latitude") == ("80304", False, 40.018)


def test_a_county_file_without_zips_gets_each_zip_from_its_coordinates(reference, tmp_path):
    path = write(
        tmp_path, "county.csv", "APN,Situs Address,Lat,Lon,Year Built",
        "C1,1 Pearl St,40.018,-105.284,1970",
        "C2,2 Arapahoe Ave,40.0150,-105.2705,1985",
        "C3,3 Baseline Rd,39.9990,-105.2600,1999",
    )  # fmt: skip

    run = run_import("properties", path)

    assert (run.rows_inserted, run.rows_rejected) == (3, 0)
    assert set(Property.objects.values_list("zip_derived", flat=True)) == {True}
    assert all(code.startswith("803") for code in Property.objects.values_list("zip_code_id", flat=True))


@pytest.mark.parametrize("kind", ["permits", "sales"])
def test_kinds_naming_parcels_refuse_unknown_ones_and_keep_their_property(reference, tmp_path, kind):
    run_import("properties", write(tmp_path, "p.csv", "parcel_id,address,zip", "A,1 Pearl St,80304"))
    header, row, unknown = {
        "permits": (
            "permit_number,parcel_id,issued_date,permit_type",
            "P1,A,2025-01-10,Reroof",
            "P2,Z,2025-01-10,Reroof",
        ),
        "sales": ("parcel_id,sale_date,price", "A,2025-01-10,100", "Z,2025-01-10,100"),
    }[kind]
    path = write(tmp_path, f"{kind}.csv", header, row, unknown)

    run = run_import(kind, path)

    assert (run.rows_inserted, run.rows_rejected) == (1, 1)
    assert read_rejects(path)[1][3] == "no property with this parcel_id (import properties first)"
    model = {"permits": Permit, "sales": Sale}[kind]
    assert list(model.objects.values_list("property__parcel_id", flat=True)) == ["A"]


def test_import_day_limits_still_hold_with_an_as_of(reference, tmp_path):
    path = write(tmp_path, "p.csv", FULL_HEADER + ",as_of", "A,1 Pearl St,80304,1990,,,,,2099-01-01")

    run = run_import("properties", path)

    assert read_rejects(path)[1] == ["2", "as_of", "2099-01-01", "in the future"]
    assert (run.rows_rejected, Property.objects.count()) == (1, 0)


def test_the_summary_names_duplicate_and_older_rows(reference, tmp_path):
    from scoring.services.imports import data_file_import

    header = "parcel_id,address,zip,roof_year"
    data_file_import(kind="properties", path=write(tmp_path, "new.csv", header, "A,1 Pearl St,80304,2022"))
    old = write(tmp_path, "old.csv", header, "A,1 Pearl St,80304,2011", "B,2 Pearl St,80304,", "B,2 Pearl St,80304,")

    result = data_file_import(kind="properties", path=old, as_of=dt.date(2020, 1, 1))

    assert result.summary().startswith(
        "properties: 3 rows read, 1 inserted, 0 updated, 0 unchanged, 1 duplicate lines, "
        "1 older than stored (skipped), 0 rejected in "
    )
