import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

import demo.market as demo
from demo.guard import DemoRefused
from demo.market import (
    IMPORT_ORDER,
    METROS,
    PERMIT_TYPE_TRADES,
    PROPERTY_COLUMNS,
    DemoMarketError,
    demo_frame_write,
    demo_market_frames,
    demo_market_seed,
)
from scoring import selectors
from scoring.geo import haversine_miles
from scoring.models import ImportRun, Permit, Property, Sale, StormEvent, ZipCode
from scoring.services.imports import data_file_import

TODAY = dt.date(2026, 5, 20)
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
SMALL = 2_000
REFUSED_OVER_DATA = (
    "refusing to seed the demo market: the database holds {found}; the demo market goes only into a database "
    "without properties or one that only seed_demo has written"
)


@pytest.fixture(autouse=True)
def debug_on(settings):
    """DEBUG on, as `make run` has it; the tests of the production guard turn it off."""
    settings.DEBUG = True


@pytest.fixture(scope="module")
def zips(django_db_setup, django_db_blocker) -> pd.DataFrame:
    with django_db_blocker.unblock():
        if not ZipCode.objects.exists():  # a transactional test emptied the tables
            from scoring.services.zip_codes import zip_codes_load

            zip_codes_load()
        return selectors.residential_zip_frame()


@pytest.fixture(scope="module")
def market(zips) -> dict[str, pd.DataFrame]:
    return demo_market_frames(properties=SMALL, seed=11, zips=zips, today=TODAY)


@pytest.fixture(scope="module")
def large_market(zips) -> dict[str, pd.DataFrame]:
    """Big enough for the market's shape to show through the noise."""
    return demo_market_frames(properties=40_000, seed=3, zips=zips, today=TODAY)


def test_same_seed_gives_identical_frames(zips, market):
    again = demo_market_frames(properties=SMALL, seed=11, zips=zips, today=TODAY)

    assert list(again) == ["properties", "storms", "permits", "sales"]
    for kind, frame in market.items():
        pd.testing.assert_frame_equal(again[kind], frame, check_exact=True)


def test_order_of_the_zip_reference_does_not_change_the_market(zips, market):
    shuffled = zips.sample(frac=1.0, random_state=1)

    again = demo_market_frames(properties=SMALL, seed=11, zips=shuffled, today=TODAY)

    for kind, frame in market.items():
        pd.testing.assert_frame_equal(again[kind], frame, check_exact=True)


def test_different_seed_gives_a_different_market(zips, market):
    other = demo_market_frames(properties=SMALL, seed=12, zips=zips, today=TODAY)

    for kind, frame in market.items():
        assert not other[kind].equals(frame), kind
    # Same size and naming, different homes.
    assert len(other["properties"]) == SMALL
    assert (other["properties"]["zip"] != market["properties"]["zip"]).any()


def test_frames_have_the_canonical_columns(market):
    assert list(market["properties"].columns) == PROPERTY_COLUMNS
    assert list(market["storms"].columns) == demo.STORM_COLUMNS
    assert list(market["permits"].columns) == demo.PERMIT_COLUMNS
    assert list(market["sales"].columns) == demo.SALE_COLUMNS
    # The columns of the example files in docs/examples, which are the import's canonical names.
    for kind in IMPORT_ORDER:
        header = (EXAMPLES / f"{kind}.csv").read_text().splitlines()[0]
        assert header.split(",") == list(market[kind].columns), kind


def test_every_zip_is_a_real_standard_zip_of_the_home_city(zip_codes, market):
    homes = market["properties"]
    reference = pd.DataFrame(
        ZipCode.objects.filter(code__in=homes["zip"].unique()).values("code", "kind", "active", "city", "state")
    ).set_index("code")

    assert set(homes["zip"]) == set(reference.index)
    assert set(reference["kind"]) == {ZipCode.Kind.STANDARD}
    assert reference["active"].all()
    places = reference.loc[homes["zip"]]
    assert (places["city"].to_numpy() == homes["city"].to_numpy()).all()
    assert (places["state"].to_numpy() == homes["state"].to_numpy()).all()


def test_homes_are_within_a_metro_and_near_their_zip(zips, market):
    homes = market["properties"]
    centroids = zips.set_index("code").loc[homes["zip"]]

    miles = haversine_miles(homes["latitude"], homes["longitude"], centroids["latitude"], centroids["longitude"])
    assert miles.max() <= demo.JITTER_MILES + 0.01
    metro_zips = demo.metro_zip_frame(zips)
    assert metro_zips["miles"].max() <= demo.METRO_RADIUS_MILES
    assert set(homes["zip"]) <= set(metro_zips["code"])


def test_ids_are_unique_and_well_formed(market):
    homes, storms, permits, sales = (market[k] for k in IMPORT_ORDER)

    assert homes["parcel_id"].is_unique
    assert homes["parcel_id"].str.fullmatch(r"[A-Z]{3}-\d{6}").all()
    assert homes["parcel_id"].iloc[0] == "DEN-000001"
    assert storms["event_id"].is_unique
    assert storms["event_id"].str.fullmatch(r"(HAIL|WIND)-[A-Z]{3}-\d{8}-\d{3}").all()
    # The date in the event id is the event's date.
    assert (storms["event_id"].str[9:17] == storms["event_date"].dt.strftime("%Y%m%d")).all()
    assert permits["permit_number"].is_unique
    assert permits["permit_number"].str.fullmatch(r"[A-Z]{3}-(RR|PV|MEC|WIN|BLD)-\d{4}-\d{7}").all()
    assert not sales.duplicated(["parcel_id", "sale_date"]).any()
    assert set(permits["parcel_id"]) <= set(homes["parcel_id"])
    assert set(sales["parcel_id"]) <= set(homes["parcel_id"])


def test_roof_is_never_older_than_the_house(market):
    homes = market["properties"]
    roofed = homes[homes["roof_year"].notna()]

    assert (roofed["roof_year"] >= roofed["year_built"]).all()
    assert homes["year_built"].between(1900, TODAY.year).all()
    # Many roofs are unknown (never replaced, or not recorded), most are known.
    assert 0.3 < homes["roof_year"].isna().mean() < 0.6


def test_nothing_is_dated_in_the_future(market):
    today = pd.Timestamp(TODAY)

    assert market["properties"]["last_sale_date"].max() <= today
    assert market["properties"]["roof_year"].max() <= TODAY.year
    assert market["storms"]["event_date"].max() <= today
    assert market["storms"]["event_date"].min() > today - pd.Timedelta(days=demo.STORM_WINDOW_DAYS)
    assert market["permits"]["issued_date"].max() <= today
    assert market["sales"]["sale_date"].max() <= today


def test_roofing_permits_are_issued_in_the_roof_year(market):
    homes = market["properties"].set_index("parcel_id")
    permits = market["permits"]
    roofing = permits[permits["permit_type"].map(PERMIT_TYPE_TRADES) == "roofing"]

    assert (roofing["issued_date"].dt.year.to_numpy() == homes.loc[roofing["parcel_id"], "roof_year"].to_numpy()).all()
    # Every recorded roof since the permit records began has its permit, and only one.
    recorded = homes.index[homes["roof_year"] >= demo.ROOFING.since]
    assert sorted(roofing["parcel_id"]) == sorted(recorded)


def test_no_permit_or_sale_predates_the_house(market):
    built = market["properties"].set_index("parcel_id")["year_built"]

    for kind, column in (("permits", "issued_date"), ("sales", "sale_date")):
        frame = market[kind]
        assert (frame[column].dt.year.to_numpy() >= built.loc[frame["parcel_id"]].to_numpy()).all(), kind


def test_sales_hold_each_homes_last_sale(market):
    homes = market["properties"]
    sales = market["sales"]
    newest = sales.sort_values("sale_date").groupby("parcel_id").last()
    sold = homes[homes["last_sale_date"].notna()].set_index("parcel_id")

    assert sorted(newest.index) == sorted(sold.index)
    assert (newest.loc[sold.index, "sale_date"] == sold["last_sale_date"]).all()
    assert (newest.loc[sold.index, "price"] == sold["last_sale_price"]).all()
    assert homes["last_sale_price"].isna().equals(homes["last_sale_date"].isna())
    assert len(sales) > len(sold)  # some homes sold before their last sale


def test_storm_reports_scale_with_the_market_and_stay_in_range(market, large_market):
    assert len(market["storms"]) == demo.MIN_STORM_REPORTS  # 2,000 / 50 is below the floor
    storms = large_market["storms"]
    assert len(storms) == 40_000 // 50
    hail = storms[storms["kind"] == "hail"]
    wind = storms[storms["kind"] == "wind"]
    assert len(hail) + len(wind) == len(storms)
    assert hail["magnitude"].between(0.75, 2.75).all()
    assert hail["magnitude"].median() == 1.0
    assert wind["magnitude"].between(58, 90).all()
    assert storms["radius_miles"].between(1, 5).all()
    assert (storms["zip"] == "").all()


def test_market_has_a_plausible_shape(large_market):
    homes = large_market["properties"].assign(metro=lambda f: f["parcel_id"].str[:3])
    storms = large_market["storms"].assign(metro=lambda f: f["event_id"].str[5:8])
    by_metro = homes.groupby("metro")

    assert set(homes["metro"]) == {m.prefix for m in METROS}
    assert 0.55 < homes["owner_occupied"].mean() < 0.8
    assert 1_700 < homes["living_sqft"].median() < 2_100
    assert homes["bedrooms"].between(1, 6).all()
    assert (homes["bathrooms"] * 2 % 1 == 0).all()
    assert set(homes["stories"]) == {1, 2, 3}
    assert homes["property_type"].value_counts().index[0] == "single_family"
    assert 0.6 < (homes["property_type"] == "single_family").mean() < 0.85
    assert homes["lot_sqft"].isna().equals(homes["property_type"] == "condo")
    assert 0.8 < homes["last_sale_date"].notna().mean() < 0.9
    # Denver's homes cost more than Oklahoma City's; Minneapolis is older than Phoenix.
    values = by_metro["market_value"].median()
    assert values["DEN"] > 1.8 * values["OKC"]
    built = by_metro["year_built"].median()
    assert built["MSP"] < built["PHX"] - 20
    hail_share = storms.groupby("metro")["kind"].apply(lambda kind: (kind == "hail").mean())
    assert hail_share["DEN"] > hail_share["PHX"]
    assert hail_share["OKC"] > hail_share["TPA"]
    # Storm season: most reports from April to August.
    assert storms["event_date"].dt.month.between(4, 8).mean() > 0.6


def test_each_permit_type_gets_its_trade_from_the_import_rules(market):
    permits = market["permits"]

    assert set(permits["permit_type"]) <= set(PERMIT_TYPE_TRADES)
    # The trade column is only filled where the keywords would give the wrong trade.
    assert set(permits.loc[permits["trade"] != "", "permit_type"]) == {"ROOFTOP PV SYSTEM"}


def db_frame(queryset, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(list(queryset.values_list(*columns)), columns=columns)


def test_small_market_imports_through_the_import_path_with_no_rejects(zip_codes, market, tmp_path):
    seeded = demo_market_seed(properties=SMALL, seed=11, out_dir=tmp_path, today=TODAY)

    assert not seeded["skipped"]
    assert list(seeded["results"]) == list(IMPORT_ORDER)
    for kind in IMPORT_ORDER:
        run = seeded["results"][kind].run
        rows = len(market[kind])
        assert seeded["rows"][kind] == rows
        assert (run.status, run.rows_read, run.rows_inserted, run.rows_rejected) == ("succeeded", rows, rows, 0), kind
        assert (run.rows_updated, run.rows_unchanged, run.rejects_file) == (0, 0, ""), kind
        assert run.file_name == str((tmp_path / f"{kind}.csv").resolve())
    # One import run per file, in dependency order, each marked as the demo's.
    assert list(ImportRun.objects.order_by("id").values_list("kind", "origin")) == [(k, "demo") for k in IMPORT_ORDER]
    assert Property.objects.count() == SMALL
    assert StormEvent.objects.count() == len(market["storms"])
    assert Permit.objects.count() == len(market["permits"])
    assert Sale.objects.count() == len(market["sales"])

    # The database holds exactly the generated values (the sales import leaves last sales as they were).
    columns = ["parcel_id", "zip_code", "year_built", "roof_year", "market_value", "owner_occupied", "last_sale_date",
               "last_sale_price", "bathrooms", "property_type"]  # fmt: skip
    stored = db_frame(Property.objects.order_by("parcel_id"), columns)
    expected = market["properties"].rename(columns={"zip": "zip_code"}).sort_values("parcel_id")[columns]
    expected["last_sale_date"] = expected["last_sale_date"].dt.date
    for column in columns:
        left = stored[column].astype(object).where(stored[column].notna(), None).tolist()
        right = expected[column].astype(object).where(expected[column].notna(), None).tolist()
        assert left == right, column
    assert not Property.objects.filter(zip_derived=True).exists()

    trades = dict(Permit.objects.values_list("permit_type", "trade__slug").distinct())
    assert trades == {t: PERMIT_TYPE_TRADES[t] for t in market["permits"]["permit_type"].unique()}


def test_files_are_byte_identical_for_the_same_seed_and_reseeding_changes_nothing(zip_codes, market, tmp_path):
    first = demo_market_seed(properties=SMALL, seed=11, out_dir=tmp_path / "a", today=TODAY)
    second = demo_market_seed(properties=SMALL, seed=11, out_dir=tmp_path / "b", today=TODAY)

    for kind in IMPORT_ORDER:
        assert first["files"][kind].read_bytes() == second["files"][kind].read_bytes(), kind
        # The files are the frames, as written by demo_frame_write.
        demo_frame_write(market[kind], tmp_path / f"{kind}.csv")
        assert (tmp_path / f"{kind}.csv").read_bytes() == first["files"][kind].read_bytes(), kind
        run = second["results"][kind].run
        assert (run.status, run.rows_inserted, run.rows_updated, run.rows_unchanged) == (
            "succeeded", 0, 0, len(market[kind]),
        ), kind  # fmt: skip


def test_seed_file_starts_with_the_canonical_header(market, tmp_path):
    demo_frame_write(market["properties"], tmp_path / "properties.csv")

    lines = (tmp_path / "properties.csv").read_text().splitlines()
    assert lines[0] == ",".join(PROPERTY_COLUMNS)
    assert len(lines) == SMALL + 1
    # Blank cells, not "nan" or "<NA>", for missing values; ISO dates.
    assert not re.search(r"nan|<NA>|NaT|None", "\n".join(lines), re.IGNORECASE)


def test_seed_refuses_an_empty_market(zip_codes, tmp_path):
    with pytest.raises(DemoMarketError, match="at least one property"):
        demo_market_seed(properties=0, seed=1, out_dir=tmp_path, today=TODAY)

    assert not ImportRun.objects.exists()


def test_command_prints_one_line_per_file_and_skips_a_seeded_database(zip_codes, tmp_path):
    out = io.StringIO()

    call_command("seed_demo", "--properties", "300", "--seed", "5", "--out", str(tmp_path), stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("Demo market: 300 properties, seed 5: generated in ")
    assert [line.split(":")[0] for line in lines[1:5]] == list(IMPORT_ORDER)
    assert lines[5].startswith("Hidden truth: 1,200 property x trade rows drawn in ")
    assert lines[1].startswith("properties: 300 rows read, 300 inserted, 0 updated, 0 unchanged, 0 rejected")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["permits.csv", "properties.csv", "sales.csv", "storms.csv"]
    assert Property.objects.count() == 300

    again = io.StringIO()
    call_command("seed_demo", "--if-empty", "--properties", "500", "--out", str(tmp_path), stdout=again)

    assert again.getvalue() == "Demo market not seeded: the database already holds properties.\n"
    assert Property.objects.count() == 300
    assert ImportRun.objects.count() == 4


def test_command_exits_non_zero_when_a_file_has_rejects(zip_codes, tmp_path, monkeypatch):
    real = demo.demo_market_frames

    def with_a_bad_roof(**kwargs):
        frames = real(**kwargs)
        homes = frames["properties"]
        homes.loc[0, "roof_year"] = homes.loc[0, "year_built"] - 1
        return frames

    monkeypatch.setattr(demo, "demo_market_frames", with_a_bad_roof)
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("seed_demo", "--properties", "200", "--out", str(tmp_path), stdout=out, stderr=err)

    assert exit_info.value.code == 3
    assert err.getvalue().startswith("properties: 200 rows read, 199 inserted, 0 updated, 0 unchanged, 1 rejected")
    assert Property.objects.count() == 199
    assert (tmp_path / "properties.csv.rejects.csv").exists()


def test_metros_are_found_by_city_and_state_in_the_reference(zips):
    metro_zips = demo.metro_zip_frame(zips)

    assert sorted(metro_zips["metro"].unique()) == list(range(len(METROS)))
    assert metro_zips["code"].is_unique
    counts = metro_zips.groupby("metro").size()
    assert counts.min() >= 50  # every metro has dozens of ZIPs to spread its homes over
    with pytest.raises(DemoMarketError, match="none of the demo metros"):
        demo.metro_zip_frame(zips[zips["state"] == "VT"])


def test_density_is_highest_near_the_centre(zips, large_market):
    metro_zips = demo.metro_zip_frame(zips).set_index("code")
    miles = metro_zips.loc[large_market["properties"]["zip"], "miles"].to_numpy()
    zip_miles = metro_zips["miles"].to_numpy()

    # Homes sit closer to their metro's centre than the ZIPs do on average.
    assert np.median(miles) < np.median(zip_miles) - 2


def real_properties_import(path: Path, parcel_ids: list[str], market_value: int = 123_000) -> ImportRun:
    """A county file of homes at these parcel ids, imported by `import_data` (origin "command")."""
    rows = [
        f"{parcel_id},{100 + n} Real St,Denver,CO,80202,39.75,-104.99,1990,,1800,6000,3,2,1,single_family,"
        f"{market_value},yes,,"
        for n, parcel_id in enumerate(parcel_ids)
    ]
    path.write_text(",".join(PROPERTY_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    result = data_file_import(kind="properties", path=path, today=TODAY, origin="command")
    assert (result.run.status, result.run.rows_read, result.run.rows_rejected) == ("succeeded", len(parcel_ids), 0)
    return result.run


def test_seed_refuses_over_properties_imported_by_import_data(zip_codes, market, tmp_path):
    # The county's parcel ids are the ones the demo market would write: seeding would overwrite them.
    parcel_ids = market["properties"]["parcel_id"].head(3).tolist()
    real_properties_import(tmp_path / "county.csv", parcel_ids)
    before = list(Property.objects.order_by("parcel_id").values_list("parcel_id", "address", "market_value"))

    with pytest.raises(DemoRefused) as refused:
        demo_market_seed(properties=SMALL, seed=11, out_dir=tmp_path / "demo", today=TODAY)

    assert str(refused.value) == REFUSED_OVER_DATA.format(found="3 properties imported by import_data (not the demo)")
    assert list(Property.objects.order_by("parcel_id").values_list("parcel_id", "address", "market_value")) == before
    assert list(ImportRun.objects.values_list("origin", flat=True)) == ["command"]
    assert not (tmp_path / "demo").exists()  # refused before generating anything


def test_seed_command_refuses_the_example_file_in_one_line(zip_codes, tmp_path):
    result = data_file_import(kind="properties", path=EXAMPLES / "properties.csv", today=TODAY, origin="command")
    imported = Property.objects.count()
    assert result.run.rows_inserted == imported > 0

    with pytest.raises(CommandError) as refused:
        call_command("seed_demo", "--properties", "300", "--out", str(tmp_path), stdout=io.StringIO())

    found = f"{imported:,} properties imported by import_data (not the demo)"
    assert str(refused.value) == REFUSED_OVER_DATA.format(found=found)
    assert refused.value.returncode == 1  # manage.py's exit code
    assert Property.objects.count() == imported
    assert ImportRun.objects.count() == 1


def test_seed_refuses_when_real_imports_joined_the_demo_market(zip_codes, tmp_path):
    demo_market_seed(properties=300, seed=5, out_dir=tmp_path / "demo", today=TODAY)
    real_properties_import(tmp_path / "county.csv", ["DEN-000001"], market_value=999_000)
    runs = ImportRun.objects.count()

    with pytest.raises(DemoRefused) as refused:
        demo_market_seed(properties=300, seed=5, out_dir=tmp_path / "demo", today=TODAY)

    found = "300 properties imported by import_data as well as the demo"
    assert str(refused.value) == REFUSED_OVER_DATA.format(found=found)
    assert Property.objects.get(parcel_id="DEN-000001").market_value == 999_000
    assert ImportRun.objects.count() == runs


def test_seed_refuses_properties_no_import_recorded(zip_codes, tmp_path):
    Property.objects.create(
        parcel_id="DEN-000001", address="1 Real St", zip_code_id="80202", latitude=39.75, longitude=-104.99
    )

    with pytest.raises(DemoRefused) as refused:
        demo_market_seed(properties=300, seed=5, out_dir=tmp_path, today=TODAY)

    found = "1 property that no import run recorded (not the demo)"
    assert str(refused.value) == REFUSED_OVER_DATA.format(found=found)
    assert Property.objects.get().address == "1 Real St"
    assert not ImportRun.objects.exists()


def test_seed_runs_again_over_its_own_demo_market(zip_codes, tmp_path):
    call_command("seed_demo", "--properties", "300", "--seed", "5", "--out", str(tmp_path), stdout=io.StringIO())
    out = io.StringIO()

    call_command("seed_demo", "--properties", "300", "--seed", "5", "--out", str(tmp_path), stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Demo market: 300 properties, seed 5: ")
    assert lines[1].startswith("properties: 300 rows read, 0 inserted, 0 updated, 300 unchanged, 0 rejected")
    assert Property.objects.count() == 300
    assert list(ImportRun.objects.order_by("id").values_list("origin", flat=True)) == ["demo"] * 8
    assert set(ImportRun.objects.values_list("status", flat=True)) == {"succeeded"}


def test_seed_refuses_with_debug_off_without_the_flag(zip_codes, tmp_path):
    with override_settings(DEBUG=False):
        with pytest.raises(CommandError) as refused:
            call_command("seed_demo", "--properties", "300", "--out", str(tmp_path), stdout=io.StringIO())
        with pytest.raises(DemoRefused):
            demo_market_seed(properties=300, seed=5, out_dir=tmp_path, today=TODAY)

        assert str(refused.value) == (
            "refusing to seed the demo market: DEBUG is off, so this may be a production database; "
            "pass --allow-production to do it anyway"
        )
        assert not Property.objects.exists()
        assert not ImportRun.objects.exists()
        assert list(tmp_path.iterdir()) == []

        call_command(
            "seed_demo", "--properties", "300", "--out", str(tmp_path), "--allow-production", stdout=io.StringIO()
        )

    assert Property.objects.count() == 300
    assert set(ImportRun.objects.values_list("origin", flat=True)) == {"demo"}


def test_seed_if_empty_leaves_real_properties_alone_with_debug_on(zip_codes, tmp_path):
    real_properties_import(tmp_path / "county.csv", ["DEN-000001"])
    out = io.StringIO()

    call_command("seed_demo", "--if-empty", "--properties", "300", "--out", str(tmp_path / "demo"), stdout=out)

    assert out.getvalue() == "Demo market not seeded: the database already holds properties.\n"
    assert list(Property.objects.values_list("parcel_id", "market_value")) == [("DEN-000001", 123_000)]
