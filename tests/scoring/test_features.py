import datetime as dt

import numpy as np
import pandas as pd
import pytest

from scoring import geo
from scoring.features import DETAILS, FEATURES, PROPERTY_COLUMNS, STORM_COLUMNS, property_features
from scoring.models import Factor

AS_OF = dt.date(2026, 6, 1)
MILE = 1 / geo.MILES_PER_DEGREE  # degrees of latitude per mile
DENVER = (39.7392, -104.9903)


def homes(*rows: dict) -> pd.DataFrame:
    base = dict.fromkeys(PROPERTY_COLUMNS)
    base.update(zip_code="80202", latitude=DENVER[0], longitude=DENVER[1], owner_occupied=True,
                property_type="single_family")  # fmt: skip
    return pd.DataFrame([{**base, "id": number, **row} for number, row in enumerate(rows, start=1)])


def storms(*rows: dict) -> pd.DataFrame:
    base = dict.fromkeys(STORM_COLUMNS)
    return pd.DataFrame([{**base, **row} for row in rows], columns=list(STORM_COLUMNS))


def hail(inches: float, date: dt.date, *, north_miles: float = 0.0, radius: float = 2.0, kind: str = "hail") -> dict:
    return {"event_date": date, "kind": kind, "magnitude": inches, "latitude": DENVER[0] + north_miles * MILE,
            "longitude": DENVER[1], "radius_miles": radius}  # fmt: skip


def test_the_catalogue_of_features_is_the_one_factors_choose_from():
    assert set(FEATURES) == set(Factor.Feature.values)
    assert not set(FEATURES) & set(DETAILS)


def test_ages_and_times_since_are_counted_to_the_day_of_scoring():
    frame = property_features(
        homes(
            {
                "year_built": 1990,
                "roof_year": 2010,
                "last_sale_date": dt.date(2025, 6, 1),
                "trade_permit_date": dt.date(2016, 6, 1),
            },
            {"year_built": 1990},
            {"year_built": 2030},
        ),
        storms(),
        as_of=AS_OF,
    )
    assert frame.loc[1, ["roof_age", "home_age", "days_since_sale", "years_since_sale"]].tolist() == [16, 36, 365, 1.0]
    assert frame.loc[1, "years_since_trade_permit"] == 10.0
    # No roof year: the roof is as old as the house; no permit of the trade: nothing done since it was built.
    assert frame.loc[2, ["roof_age", "years_since_trade_permit"]].tolist() == [36, 36]
    assert np.isnan(frame.loc[2, "days_since_sale"])
    assert np.isnan(frame.loc[2, "years_since_sale"])
    # A year after the day of scoring counts as new, never as a negative age.
    assert frame.loc[3, ["roof_age", "home_age"]].tolist() == [0, 0]


def test_the_largest_hail_within_its_radius_counts_with_its_day_and_distance():
    frame = property_features(
        homes({}),
        storms(
            hail(1.0, dt.date(2026, 5, 20), north_miles=0.5),
            hail(1.75, dt.date(2026, 5, 3), north_miles=0.8),
            hail(4.0, dt.date(2026, 5, 25), north_miles=3.0, radius=2.0),  # out of its reach
        ),
        as_of=AS_OF,
    )
    row = frame.loc[1]
    assert (row["hail_inches"], row["days_since_hail"], row["hail_date"], row["hail_where"]) == (
        1.75, 29, "2026-05-03", "0.8 mi away"
    )  # fmt: skip
    assert np.isnan(row["wind_mph"])
    assert np.isnan(row["days_since_wind"])
    assert row["wind_where"] is None


def test_equal_hail_goes_to_the_most_recent_storm_then_the_nearest():
    frame = property_features(
        homes({}, {"latitude": DENVER[0] + 0.2}),
        storms(
            hail(1.5, dt.date(2026, 4, 1), north_miles=0.1),
            hail(1.5, dt.date(2026, 5, 1), north_miles=1.5),
            hail(1.5, dt.date(2026, 5, 1), north_miles=0.5),
        ),
        as_of=AS_OF,
    )
    assert frame.loc[1, ["hail_date", "hail_where"]].tolist() == ["2026-05-01", "0.5 mi away"]
    assert np.isnan(frame.loc[2, "hail_inches"])  # about 14 miles north of every storm


def test_wind_tornado_and_hurricane_reports_are_wind_and_a_zip_wide_report_reaches_the_whole_zip():
    frame = property_features(
        homes({}, {"zip_code": "80301", "latitude": 40.03, "longitude": -105.25}),
        storms(
            hail(70, dt.date(2026, 5, 1), kind="wind"),
            hail(95, dt.date(2026, 4, 1), kind="tornado", north_miles=0.3, radius=1),
            {"event_date": dt.date(2026, 5, 30), "kind": "hurricane", "magnitude": 80, "zip_code": "80301"},
        ),
        as_of=AS_OF,
    )
    assert frame.loc[1, ["wind_mph", "days_since_wind", "wind_where"]].tolist() == [95, 61, "0.3 mi away"]
    assert frame.loc[2, ["wind_mph", "days_since_wind", "wind_where"]].tolist() == [80, 2, "in its ZIP"]
    assert np.isnan(frame.loc[1, "hail_inches"])


def test_grid_matching_finds_exactly_the_pairs_a_brute_force_search_finds():
    rng = np.random.default_rng(3)
    lat = DENVER[0] + rng.uniform(-0.5, 0.5, 4000)
    lon = DENVER[1] + rng.uniform(-0.6, 0.6, 4000)
    centre_lat = DENVER[0] + rng.uniform(-0.6, 0.6, 300)
    centre_lon = DENVER[1] + rng.uniform(-0.7, 0.7, 300)
    radius = rng.choice([0.5, 2.0, 5.0, 50.0], 300)

    found = set()
    for point, circle, miles in geo.within_radius(lat, lon, centre_lat, centre_lon, radius, max_pairs=50_000):
        found.update(zip(point.tolist(), circle.tolist(), strict=True))
        assert (miles <= radius[circle]).all()
    exact = geo.haversine_miles(lat[:, None], lon[:, None], centre_lat[None, :], centre_lon[None, :])
    inside = exact <= radius[None, :]
    margin = np.abs(exact - radius[None, :]) > 0.002 * radius[None, :]  # equirectangular vs great circle
    expected = {(int(p), int(c)) for p, c in zip(*np.nonzero(inside & margin), strict=True)}
    assert expected <= found
    assert not {(p, c) for p, c in found if margin[p, c] and not inside[p, c]}
    assert len(expected) > 10_000  # the batches really were cut


@pytest.mark.parametrize("points", [0, 1])
def test_grid_matching_without_circles_or_points_yields_nothing(points):
    assert list(geo.within_radius(np.zeros(points), np.zeros(points), [], [], [])) == []
