"""Import profiles: saved column maps and conversions per source, the shipped NOAA and SPC profiles, and
`import_data KIND FILE --profile NAME` (scoring.services.imports.profiles)."""

import datetime as dt
import importlib
import shutil
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from scoring.models import ImportProfile, ImportRun, Property, StormEvent
from scoring.services.imports.profiles import SHIPPED_PROFILES, import_profile_check, import_profiles_shipped_install
from tests.scoring.test_imports import (  # noqa: F401 (reference, trades: fixtures)
    all_rows,
    command,
    read_rejects,
    reference,
    rejects_path,
    row_versions,
    run_import,
    trades,
    write,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
STORM_FIELDS = ["event_id", "event_date", "kind", "magnitude", "latitude", "longitude", "radius_miles", "zip_code_id"]
SPC_DAY = dt.date(2025, 5, 21)


@pytest.fixture
def shipped(db) -> dict[str, ImportProfile]:
    """The shipped profiles, as migration 0015 installs them (again after a transactional test's flush)."""
    import_profiles_shipped_install()
    return {profile.name: profile for profile in ImportProfile.objects.filter(shipped=True)}


def example(tmp_path: Path, name: str) -> Path:
    """A copy of docs/examples/NAME (its name kept: SPC files carry their date in it), so that the
    rejects file is written beside the copy."""
    copy = tmp_path / name
    shutil.copyfile(EXAMPLES / name, copy)
    return copy


def storms() -> list[tuple]:
    return list(StormEvent.objects.order_by("event_id").values_list(*STORM_FIELDS))


def outcome(run: ImportRun) -> dict:
    return {
        "status": run.status,
        "read": run.rows_read,
        "inserted": run.rows_inserted,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "skipped": run.rows_skipped,
        "rejected": run.rows_rejected,
    }


def problems(**profile) -> dict[str, list[str]]:
    """What import_profile_check says of a profile made of these fields (nothing saved)."""
    try:
        import_profile_check(profile=ImportProfile(**{"name": "county", **profile}))
    except ValidationError as error:
        return error.message_dict
    return {}


# --- Shipped profiles ---------------------------------------------------------------------------------------


def test_migration_installs_the_shipped_profiles_defined_in_code(db):
    ImportProfile.objects.all().delete()
    migration = importlib.import_module("scoring.migrations.0015_shipped_import_profiles")
    migration.install(apps, None)

    stored = {
        name: {"kind": kind, "description": description, "column_map": column_map, "options": options}
        for name, kind, description, column_map, options in ImportProfile.objects.filter(shipped=True).values_list(
            "name", "kind", "description", "column_map", "options"
        )
    }
    assert stored == SHIPPED_PROFILES
    for profile in ImportProfile.objects.all():
        import_profile_check(profile=profile)  # each one is valid as shipped


def test_installing_again_keeps_what_staff_edited(shipped):
    ImportProfile.objects.filter(name="spc-hail").update(description="Our copy of SPC hail")

    assert import_profiles_shipped_install() == 0
    assert ImportProfile.objects.get(name="spc-hail").description == "Our copy of SPC hail"


NOAA_EVENTS = [
    ("noaa-1177350", dt.date(2024, 5, 6), "tornado", 111.0, 35.3901, -99.4443, 1.0, None),  # EF2
    ("noaa-1182035", dt.date(2024, 6, 12), "hail", 1.75, 40.015, -105.2705, 2.0, None),
    ("noaa-1182036", dt.date(2024, 6, 12), "hail", 2.5, 39.8028, -105.0875, 2.0, None),
    ("noaa-1182040", dt.date(2024, 6, 12), "tornado", 86.0, 40.4775, -104.9013, 1.0, None),  # EF1
    ("noaa-1182041", dt.date(2024, 6, 12), "tornado", 65.0, 40.1605, -103.2144, 1.0, None),  # EFU: as EF0
    ("noaa-1187410", dt.date(2024, 7, 3), "hail", 1.0, 40.3978, -105.0749, 2.0, None),
    ("noaa-1187411", dt.date(2024, 7, 3), "wind", 60.0, 40.4233, -104.7091, 5.0, None),  # 52 kt
    ("noaa-1191822", dt.date(2024, 8, 5), "wind", 70.0, 39.8561, -104.6737, 5.0, None),  # 61 kt
    ("noaa-1191823", dt.date(2024, 8, 5), "wind", 58.0, 39.8083, -104.9339, 5.0, None),  # no magnitude
]


def test_noaa_storm_events_load_scored_types_in_leadengine_units(zip_codes, shipped, tmp_path):
    path = example(tmp_path, "noaa_storm_events.csv")

    run = run_import("storms", path, profile=shipped["noaa-storm-events"])

    # Flash Flood, Heavy Rain, Winter Storm and High Wind are skipped; a Thunderstorm Wind without
    # coordinates is refused.
    assert outcome(run) == {
        "status": "partial", "read": 14, "inserted": 9, "updated": 0, "unchanged": 0, "skipped": 4, "rejected": 1,
    }  # fmt: skip
    assert storms() == NOAA_EVENTS
    assert read_rejects(path)[1:] == [
        [
            "11",
            "latitude",
            "",
            "no coordinates (BEGIN_LAT/BEGIN_LON) for this Thunderstorm Wind event: a storm is placed by a point",
        ]
    ]
    assert run.profile == shipped["noaa-storm-events"]


def test_noaa_storm_events_imported_again_change_nothing(zip_codes, shipped, tmp_path):
    path = example(tmp_path, "noaa_storm_events.csv")
    run_import("storms", path, profile=shipped["noaa-storm-events"])
    rows, versions = all_rows(), row_versions()

    again = run_import("storms", path, profile=shipped["noaa-storm-events"])

    assert outcome(again) == {
        "status": "partial", "read": 14, "inserted": 0, "updated": 0, "unchanged": 9, "skipped": 4, "rejected": 1,
    }  # fmt: skip
    assert all_rows() == rows
    assert row_versions() == versions


def test_noaa_event_types_can_be_chosen_in_the_profile(zip_codes, shipped, tmp_path):
    """Staff may read more NOAA types (here High Wind, which NOAA gives by forecast zone: refused for
    want of a point), or fewer (hail only)."""
    profile = shipped["noaa-storm-events"]
    profile.options["event_types"] = {"Hail": "hail", "High Wind": "wind"}
    profile.save()
    path = example(tmp_path, "noaa_storm_events.csv")

    run = run_import("storms", path, profile=profile)

    assert outcome(run) == {
        "status": "partial", "read": 14, "inserted": 3, "updated": 0, "unchanged": 0, "skipped": 10, "rejected": 1,
    }  # fmt: skip
    assert [event_id for event_id, *_ in storms()] == ["noaa-1182035", "noaa-1182036", "noaa-1187410"]
    assert read_rejects(path)[1:] == [
        [
            "14",
            "latitude",
            "",
            "no coordinates (BEGIN_LAT/BEGIN_LON) for this High Wind event: a storm is placed by a point",
        ]
    ]


def test_noaa_tornado_with_an_unknown_rating_is_refused_by_line(zip_codes, shipped, tmp_path):
    header = (EXAMPLES / "noaa_storm_events.csv").read_text().splitlines()[0]
    tornado = next(line for line in (EXAMPLES / "noaa_storm_events.csv").read_text().splitlines() if '"EF1"' in line)
    path = write(tmp_path, "StormEvents_details.csv", header, tornado.replace('"EF1"', '"EF7"'))

    run = run_import("storms", path, profile=shipped["noaa-storm-events"])

    assert (run.rows_read, run.rows_inserted, run.rows_rejected) == (1, 0, 1)
    assert read_rejects(path)[1:] == [
        ["2", "magnitude", "EF7", "TOR_F_SCALE is not a tornado rating (EF0 to EF5, F0 to F5, EFU)"]
    ]


SPC_MAGNITUDES = {
    # Size in hundredths of an inch.
    "250521_rpts_hail.csv": [1.0, 1.0, 1.75, 1.25, 2.5, 0.88, 1.5, 2.75, 1.0, 1.75, 1.25],
    # Speed in mph; UNK as 58 mph.
    "250521_rpts_wind.csv": [58.0, 65.0, 58.0, 70.0, 60.0, 58.0, 75.0, 58.0, 62.0, 58.0, 68.0],
    # The lowest speed of the rating; UNK as EF0 (65 mph).
    "250521_rpts_torn.csv": [65.0, 65.0, 86.0, 65.0, 65.0, 111.0, 65.0, 65.0, 86.0, 65.0, 111.0],
}
SPC_PROFILES = {
    "250521_rpts_hail.csv": "spc-hail",
    "250521_rpts_wind.csv": "spc-wind",
    "250521_rpts_torn.csv": "spc-tornado",
}


@pytest.mark.parametrize("name", list(SPC_MAGNITUDES))
def test_spc_daily_reports_load_in_leadengine_units_and_again_change_nothing(zip_codes, shipped, tmp_path, name):
    path = example(tmp_path, name)
    profile = shipped[SPC_PROFILES[name]]
    kind = profile.options["constants"]["kind"]

    run = run_import("storms", path, profile=profile)

    assert outcome(run) == {
        "status": "partial", "read": 12, "inserted": 11, "updated": 0, "unchanged": 0, "skipped": 0, "rejected": 1,
    }  # fmt: skip
    # The event id is made of the kind, the SPC day (from the file's name), the time and the point.
    reports = [line.split(",") for line in path.read_text().splitlines()[1:] if ",,," not in line]
    expected = {
        f"spc-{kind}-20250521-{time}Z-{float(lat):.2f},{float(lon):.2f}": (float(lat), float(lon), magnitude)
        for (time, _, _, _, _, lat, lon, _), magnitude in zip(reports, SPC_MAGNITUDES[name], strict=True)
    }
    loaded = StormEvent.objects.all()
    assert {event.event_id: (event.latitude, event.longitude, event.magnitude) for event in loaded} == expected
    assert {(event.kind, event.event_date, event.radius_miles) for event in loaded} == {
        (kind, SPC_DAY, {"hail": 2.0, "wind": 5.0, "tornado": 1.0}[kind])
    }
    assert read_rejects(path)[1:] == [["13", "latitude", "", "no coordinates (Lat/Lon): a storm is placed by a point"]]

    rows, versions = all_rows(), row_versions()
    again = run_import("storms", path, profile=profile)
    assert outcome(again) == {
        "status": "partial", "read": 12, "inserted": 0, "updated": 0, "unchanged": 11, "skipped": 0, "rejected": 1,
    }  # fmt: skip
    assert all_rows() == rows
    assert row_versions() == versions


def test_spc_wind_speed_in_knots_when_the_header_says_so(zip_codes, shipped, tmp_path):
    path = write(
        tmp_path, "250601_rpts_wind.csv",
        "Time,Speed(kt),Location,County,State,Lat,Lon,Comments",
        "1900,50,Limon,Lincoln,CO,39.26,-103.69,(BOU)",
        "1930,65,Hugo,Lincoln,CO,39.14,-103.47,(BOU)",
        "2000,UNK,Genoa,Lincoln,CO,39.28,-103.5,(BOU)",
    )  # fmt: skip

    run_import("storms", path, profile=shipped["spc-wind"])

    assert [(e.event_date, e.magnitude) for e in StormEvent.objects.order_by("id")] == [
        (dt.date(2025, 6, 1), 58.0),  # 50 kt = 57.5 mph
        (dt.date(2025, 6, 1), 75.0),  # 65 kt = 74.8 mph
        (dt.date(2025, 6, 1), 58.0),  # UNK
    ]


def test_spc_speed_in_an_unknown_unit_makes_the_file_unusable(zip_codes, shipped, tmp_path):
    path = write(tmp_path, "250601_rpts_wind.csv", "Time,Speed (m/s),Location,County,State,Lat,Lon,Comments")

    run = run_import("storms", path, profile=shipped["spc-wind"])

    assert run.status == "failed"
    assert run.error == "profile spc-wind: the speed column 'Speed (m/s)' names a unit other than mph or knots"


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("hail.csv", dt.date(2025, 6, 2)),  # no date in the name: the as-of date
        ("20261203-143000-1a2b3c4d5e6f-250521_rpts_hail.csv", SPC_DAY),  # as an admin upload stores it
    ],
)
def test_spc_reports_are_dated_by_the_file_name_else_the_as_of_date(zip_codes, shipped, tmp_path, name, day):
    path = write(
        tmp_path, name,
        "Time,Size,Location,County,State,Lat,Lon,Comments",
        "2100,100,Limon,Lincoln,CO,39.26,-103.69,(BOU)",
    )  # fmt: skip

    run_import("storms", path, profile=shipped["spc-hail"], as_of=dt.date(2025, 6, 2))

    assert storms() == [(f"spc-hail-{day:%Y%m%d}-2100Z-39.26,-103.69", day, "hail", 1.0, 39.26, -103.69, 2.0, None)]


def test_a_file_that_is_not_of_the_profiles_format_is_unusable(zip_codes, shipped, tmp_path):
    path = example(tmp_path, "250521_rpts_wind.csv")

    run = run_import("storms", path, profile=shipped["noaa-storm-events"])

    assert run.status == "failed"
    assert run.error == (
        "profile noaa-storm-events: the file has no column BEGIN_YEARMONTH, BEGIN_DAY, TOR_F_SCALE, which its "
        "converter noaa-storm-events reads (the file has: Time, Speed, Location, County, State, Lat, Lon, Comments)"
    )
    assert not StormEvent.objects.exists()


# --- Profiles made by staff ---------------------------------------------------------------------------------


COUNTY_FILE = [
    "PARCEL_NO,SITUS,ZIP5,YR_BLT,BLDG_SQM,SALE_DT,SALE_AMT",
    '146319000012,1420 Mapleton Ave,80304,1962,150,14.03.2019,"$612,000"',
    "146319000013,1432 Mapleton Ave,80304,1971,92.9,02.11.2021,540000",
    "146319000014,1450 Mapleton Ave,80304,1988,210,2021-11-02,800000",
]


@pytest.fixture
def county_profile(db) -> ImportProfile:
    """A county assessor's export: its own column names, floor areas in square metres, day-first dates,
    single-family homes only."""
    return ImportProfile.objects.create(
        name="boulder-assessor",
        kind="properties",
        column_map={
            "PARCEL_NO": "parcel_id", "SITUS": "address", "YR_BLT": "year_built", "BLDG_SQM": "living_sqft",
            "SALE_DT": "last_sale_date", "SALE_AMT": "last_sale_price",
        },
        options={
            "constants": {"property_type": "single_family"},
            "multiply": {"living_sqft": 10.7639},
            "date_format": "%d.%m.%Y",
        },
    )  # fmt: skip


@pytest.mark.usefixtures("reference")
def test_a_county_profile_reads_its_own_column_names_units_and_dates(county_profile, tmp_path):
    path = write(tmp_path, "assessor.csv", *COUNTY_FILE)

    run = run_import("properties", path, profile=county_profile)

    assert outcome(run) == {
        "status": "partial", "read": 3, "inserted": 2, "updated": 0, "unchanged": 0, "skipped": 0, "rejected": 1,
    }  # fmt: skip
    fields = ["parcel_id", "address", "city", "state", "zip_code_id", "year_built", "living_sqft", "property_type",
              "last_sale_date", "last_sale_price"]  # fmt: skip
    assert list(Property.objects.order_by("parcel_id").values_list(*fields)) == [
        ("146319000012", "1420 Mapleton Ave", "Boulder", "CO", "80304", 1962, 1615, "single_family",
         dt.date(2019, 3, 14), 612000),
        ("146319000013", "1432 Mapleton Ave", "Boulder", "CO", "80304", 1971, 1000, "single_family",
         dt.date(2021, 11, 2), 540000),
    ]  # fmt: skip
    assert read_rejects(path)[1:] == [["4", "last_sale_date", "2021-11-02", "not a date in the format %d.%m.%Y"]]
    assert run.ignored_columns == []


@pytest.mark.usefixtures("reference")
def test_map_applies_on_top_of_a_profile(county_profile, tmp_path):
    path = write(
        tmp_path, "assessor.csv",
        "PARCEL_NO,SITUS,MAIL_ADDR,ZIP5",
        "146319000012,1420 MAPLETON,1420 Mapleton Ave,80304",
    )  # fmt: skip

    run = run_import("properties", path, profile=county_profile, column_map={"MAIL_ADDR": "address"})

    assert run.status == "succeeded"
    assert Property.objects.get().address == "1420 Mapleton Ave"
    assert run.ignored_columns == ["SITUS"]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            {"kind": "sales", "column_map": {"APN": "parcel", "SALE_PRICE": "price"}},
            {"column_map": ["'APN': 'parcel' is not a sales column; use one of parcel_id, price, sale_date"]},
        ),
        (
            {"kind": "sales", "column_map": {"APN": "parcel_id", "PARCEL": "parcel_id"}},
            {"column_map": ["several columns map to parcel_id: 'APN', 'PARCEL'"]},
        ),
        (
            {"kind": "sales", "column_map": ["APN", "parcel_id"]},
            {"column_map": ['expected an object {"file column": "LeadEngine column"}']},
        ),
        (
            {"kind": "storms", "options": {"scale": 2}},
            {"options": ["unknown option 'scale': use constants, multiply, date_format, converter, event_types"]},
        ),
        (
            {"kind": "storms", "options": {"constants": {"kind": "sleet"}}},
            {"options": ["constants: kind 'sleet': not one of hail, wind, tornado, hurricane"]},
        ),
        (
            {"kind": "storms", "column_map": {"TYPE": "kind"}, "options": {"constants": {"kind": "hail"}}},
            {"options": ["constants: kind is also read from the file's column 'TYPE'; keep one"]},
        ),
        (
            {"kind": "sales", "options": {"multiply": {"sale_date": 2}}},
            {"options": ["multiply: sale_date is not a number column; use one of price"]},
        ),
        (
            {"kind": "sales", "options": {"multiply": {"price": 0}}},
            {"options": ["multiply: price: the factor must be a number above 0, not 0"]},
        ),
        (
            {"kind": "sales", "options": {"date_format": "%d"}},
            {
                "options": [
                    (
                        "date_format '%d' does not read a date back (use strptime codes with a year, month and day, "
                        'e.g. "%d.%m.%Y" or "%Y%m%d")'
                    )
                ]
            },
        ),
        (
            {"kind": "storms", "options": {"converter": "nws-lsr"}},
            {"options": ["converter: unknown converter 'nws-lsr'; use one of noaa-storm-events, spc-reports"]},
        ),
        (
            {"kind": "properties", "options": {"converter": "spc-reports"}},
            {"options": ["converter: spc-reports reads storms files, not properties"]},
        ),
        (
            {"kind": "storms", "options": {"converter": "spc-reports"}},
            {"options": ["converter: spc-reports needs the kind as a constant: one of hail, wind, tornado"]},
        ),
        (
            {"kind": "storms", "options": {"converter": "noaa-storm-events", "event_types": {"Hail": "ice"}}},
            {"options": ["event_types: 'Hail': 'ice' is not one of hail, wind, tornado, hurricane"]},
        ),
        (
            {"name": "spc-hail", "shipped": True, "kind": "storms", "options": {"constants": {"kind": "hail"}}},
            {"options": ["converter: a shipped profile keeps its converter 'spc-reports'"]},
        ),
    ],
)
def test_invalid_profiles_are_refused_with_a_clear_message(zip_codes, profile, expected):
    assert problems(**profile) == expected


@pytest.mark.usefixtures("reference")
def test_a_profile_that_cannot_be_applied_makes_the_file_unusable(tmp_path):
    """A profile saved around the admin's checks is checked again by every import that uses it."""
    broken = ImportProfile.objects.create(name="broken", kind="properties", column_map={"APN": "parcel"})
    path = write(tmp_path, "properties.csv", "APN,address,zip", "R1,1 Pearl St,80302")

    code, stdout, stderr = command("properties", str(path), "--profile", "broken")

    assert (code, stdout) == (2, "")
    assert stderr == (
        f"properties: {path.resolve()} was not imported: profile broken: 'APN': 'parcel' is not a properties "
        "column; use one of address, as_of, bathrooms, bedrooms, city, last_sale_date, last_sale_price, latitude, "
        "living_sqft, longitude, lot_sqft, market_value, owner_name, owner_occupied, parcel_id, property_type, "
        "roof_year, state, stories, year_built, zip\n"
    )
    assert not Property.objects.exists()
    assert ImportRun.objects.get().profile == broken


# --- import_data --profile / --as-of ------------------------------------------------------------------------


def test_command_imports_with_a_profile_and_names_the_skipped_rows(zip_codes, shipped, tmp_path):
    path = example(tmp_path, "noaa_storm_events.csv")

    code, stdout, stderr = command("storms", str(path), "--profile", "noaa-storm-events", "--as-of", "2025-01-15")

    assert (code, stdout) == (3, "")
    assert stderr.startswith(
        "storms: 14 rows read, 9 inserted, 0 updated, 0 unchanged, 4 skipped by the profile, 1 rejected "
        f"(see {rejects_path(path)}) in "
    )
    run = ImportRun.objects.get()
    assert (run.profile.name, run.as_of, run.rows_skipped) == ("noaa-storm-events", dt.date(2025, 1, 15), 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["storms", "--profile", "noaa"],
            "storms: no import profile 'noaa'; profiles for storms: noaa-storm-events, spc-hail, spc-tornado, spc-wind",
        ),
        (
            ["properties", "--profile", "spc-hail"],
            "properties: profile 'spc-hail' reads storms files, not properties; there is no profile for properties",
        ),
        (
            ["storms", "--profile", "spc-hail", "--as-of", "21/05/2025"],
            "storms: --as-of '21/05/2025': expected a date as YYYY-MM-DD, e.g. --as-of 2025-05-21",
        ),
        (["storms", "--as-of", "2999-01-01"], "storms: --as-of 2999-01-01: the date is in the future"),
    ],
)
def test_command_refuses_a_bad_profile_or_as_of_with_exit_2(zip_codes, shipped, tmp_path, args, message):
    path = example(tmp_path, "250521_rpts_hail.csv")
    kind, *options = args

    code, stdout, stderr = command(kind, str(path), *options)

    assert (code, stdout, stderr) == (2, "", message + "\n")
    assert not ImportRun.objects.exists()
    assert not StormEvent.objects.exists()


# --- Admin --------------------------------------------------------------------------------------------------


def profile_form(**fields) -> dict:
    return {"name": "county", "kind": "properties", "description": "", "column_map": "{}", "options": "{}", **fields}


def test_staff_create_a_profile_in_the_admin(staff_client, zip_codes):
    response = staff_client.post(
        "/admin/scoring/importprofile/add/",
        profile_form(
            name="boulder-assessor",
            column_map='{"PARCEL_NO": "parcel_id", "SITUS": "address"}',
            options='{"constants": {"property_type": "single_family"}, "multiply": {"living_sqft": 10.7639}}',
        ),
    )

    assert response.status_code == 302
    profile = ImportProfile.objects.get(name="boulder-assessor")
    assert (profile.kind, profile.shipped, profile.column_map, profile.options) == (
        "properties",
        False,
        {"PARCEL_NO": "parcel_id", "SITUS": "address"},
        {"constants": {"property_type": "single_family"}, "multiply": {"living_sqft": 10.7639}},
    )


def test_admin_form_shows_what_is_wrong_with_a_column_map(staff_client, zip_codes):
    response = staff_client.post(
        "/admin/scoring/importprofile/add/", profile_form(column_map='{"PARCEL_NO": "parcel_number"}')
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["column_map"] == [
        (
            "'PARCEL_NO': 'parcel_number' is not a properties column; use one of address, as_of, bathrooms, bedrooms, "
            "city, last_sale_date, last_sale_price, latitude, living_sqft, longitude, lot_sqft, market_value, "
            "owner_name, owner_occupied, parcel_id, property_type, roof_year, state, stories, year_built, zip"
        )
    ]
    assert not ImportProfile.objects.filter(name="county").exists()


def test_a_shipped_profile_keeps_its_converter_and_cannot_be_deleted(staff_client, shipped):
    profile = shipped["spc-hail"]
    page = f"/admin/scoring/importprofile/{profile.pk}/change/"
    listing = staff_client.get("/admin/scoring/importprofile/?q=spc").content.decode()
    assert "spc-hail" in listing
    assert "noaa-storm-events" not in listing

    response = staff_client.post(
        page,
        {
            "description": "SPC hail",
            "column_map": '{"Size": "magnitude"}',
            "options": '{"constants": {"kind": "hail"}}',
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["options"] == [
        "converter: a shipped profile keeps its converter 'spc-reports'"
    ]
    assert staff_client.get(f"/admin/scoring/importprofile/{profile.pk}/delete/").status_code == 403
    profile.refresh_from_db()
    assert profile.options == SHIPPED_PROFILES["spc-hail"]["options"]
