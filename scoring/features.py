"""Property features for the scoring engine, computed from property data and signals. Pure pandas/numpy.

`property_features` takes the rows a scoring partition reads (see scoring/selectors.py) and returns
one row per property with a column per feature of the catalogue (Factor.Feature) plus the details
that reason texts may quote. Every age is counted to `as_of`, the day of the run, so a run and a
single-property rescore on the same day agree.

Storm exposure: for hail and for wind (wind, tornado and hurricane reports, whose magnitude is in
mph), the largest magnitude among the storms of the last `window_days` whose radius reaches the
property, and the days since that storm; equal magnitudes go to the most recent storm, then the
nearest. A storm reported for a whole ZIP (no coordinates) reaches every property of the ZIP. A
property without coordinates is placed at its ZIP's centroid.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from scoring import geo

FEATURES = (
    "roof_age",
    "home_age",
    "years_since_sale",
    "days_since_sale",
    "hail_inches",
    "days_since_hail",
    "wind_mph",
    "days_since_wind",
    "years_since_trade_permit",
    "market_value",
    "owner_occupied",
    "property_type",
)
# Not scored, but quoted by reasons: "{value:.2f} in hail {hail_where} on {hail_date}".
DETAILS = (
    "hail_date",
    "hail_where",
    "wind_date",
    "wind_where",
    "last_sale_date",
    "trade_permit_date",
    "roof_year",
    "year_built",
)
# Features whose value falls back to another fact when their own record is missing, and the detail that
# holds the record: no roof year on record, the roof's age is the home's; no permit of the trade, the
# years since it are the home's age. A reason must not present the fallback as the record, so a factor
# on one of these features has a second text for the fallback (Factor.reason_fallback).
FALLBACKS = {"roof_age": "roof_year", "years_since_trade_permit": "trade_permit_date"}
# A reason and its fallback text per feature, true whatever the trade: what a learned factor says when
# the model it learned from has none for the feature.
REASON_TEMPLATES: dict[str, tuple[str, str]] = {
    "roof_age": (
        "Roof replaced in {roof_year:.0f}, {value:.0f} years ago",
        "No roof replacement on record; home built in {year_built:.0f}",
    ),
    "home_age": ("Home built in {year_built:.0f}, {value:.0f} years ago", ""),
    "years_since_sale": ("Bought {value:.1f} years ago, on {last_sale_date}", ""),
    "days_since_sale": ("Bought {value:.0f} days ago, on {last_sale_date}", ""),
    "hail_inches": ("{value:.2f} in hail {hail_where} on {hail_date}", ""),
    "days_since_hail": ("Hail {value:.0f} days ago, on {hail_date}", ""),
    "wind_mph": ("{value:.0f} mph wind {wind_where} on {wind_date}", ""),
    "days_since_wind": ("Wind storm {value:.0f} days ago, on {wind_date}", ""),
    "years_since_trade_permit": (
        "Last permit of the trade on {trade_permit_date}, {value:.0f} years ago",
        "No permit of the trade on record; home built in {year_built:.0f}",
    ),
    "market_value": ("Home worth ${value:,.0f}", ""),
    "owner_occupied": ("Owner-occupied", ""),
    "property_type": ("Property type: {value}", ""),
}

# Columns of the frames property_features reads.
PROPERTY_COLUMNS = (
    "id",
    "zip_code",
    "latitude",
    "longitude",
    "year_built",
    "roof_year",
    "market_value",
    "owner_occupied",
    "property_type",
    "last_sale_date",
    "trade_permit_date",
)
STORM_COLUMNS = ("event_date", "kind", "magnitude", "latitude", "longitude", "radius_miles", "zip_code")
STORM_KINDS = {"hail": ("hail",), "wind": ("wind", "tornado", "hurricane")}
# The features a storm report changes: a model without any of them scores the same after a storm.
STORM_FEATURES = ("hail_inches", "days_since_hail", "wind_mph", "days_since_wind")
DAYS_PER_YEAR = 365.25


def property_features(properties: pd.DataFrame, storms: pd.DataFrame, *, as_of: dt.date) -> pd.DataFrame:
    """Features of each property (indexed by property id). `properties` has PROPERTY_COLUMNS, with
    latitude/longitude already filled from the ZIP centroid where missing; `storms` has STORM_COLUMNS
    and only the storms of the window (event_date <= as_of)."""
    today = np.datetime64(as_of, "D")
    year = as_of.year
    year_built = pd.to_numeric(properties["year_built"], errors="coerce").to_numpy(dtype=float)
    roof_year = pd.to_numeric(properties["roof_year"], errors="coerce").to_numpy(dtype=float)
    sale = _days(properties["last_sale_date"])
    permit = _days(properties["trade_permit_date"])

    features = pd.DataFrame(index=pd.Index(properties["id"].to_numpy(), name="property_id"))
    features["roof_age"] = np.maximum(year - np.where(np.isnan(roof_year), year_built, roof_year), 0)
    features["home_age"] = np.maximum(year - year_built, 0)
    days_since_sale = np.maximum(_days_between(sale, today), 0)
    features["years_since_sale"] = np.round(days_since_sale / DAYS_PER_YEAR, 1)
    features["days_since_sale"] = days_since_sale
    years_since_permit = np.round(np.maximum(_days_between(permit, today), 0) / DAYS_PER_YEAR, 1)
    # No permit of the trade on record: the work has not been done since the house was built.
    features["years_since_trade_permit"] = np.where(
        np.isnan(years_since_permit), features["home_age"], years_since_permit
    )
    features["market_value"] = pd.to_numeric(properties["market_value"], errors="coerce").to_numpy(dtype=float)
    features["owner_occupied"] = properties["owner_occupied"].to_numpy(dtype=object)
    features["property_type"] = properties["property_type"].to_numpy(dtype=object)
    features["last_sale_date"] = properties["last_sale_date"].to_numpy(dtype=object)
    features["trade_permit_date"] = properties["trade_permit_date"].to_numpy(dtype=object)
    features["roof_year"] = roof_year
    features["year_built"] = year_built

    for group, magnitude_name in (("hail", "hail_inches"), ("wind", "wind_mph")):
        exposure = storm_exposure(properties, storms[storms["kind"].isin(STORM_KINDS[group])])
        features[magnitude_name] = exposure["magnitude"]
        features[f"days_since_{group}"] = _days_between(exposure["date"], today)
        features[f"{group}_date"] = pd.Series(exposure["date"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
        features[f"{group}_where"] = _where(exposure["miles"], exposure["date"])
    return features


def storm_exposure(properties: pd.DataFrame, storms: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per property (in the frame's order): the largest storm magnitude that reached it, that storm's
    date (NaT when none) and its distance in miles (NaN when reported for the whole ZIP)."""
    count = len(properties)
    # One sortable number per storm: magnitude first, then date, so the largest is the best, and
    # among equal magnitudes the most recent.
    date = _days(storms["event_date"])
    magnitude = storms["magnitude"].to_numpy(dtype=float)
    rank = magnitude * 1e6 + date.astype(np.int64)
    best = np.full(count, -np.inf)
    miles = np.full(count, np.inf)
    best_storm = np.full(count, -1)

    def offer(point: np.ndarray, storm: np.ndarray, distance: np.ndarray) -> None:
        if not len(point):
            return
        # Per property: the highest rank among these pairs, then the nearest storm of that rank (then the
        # lowest storm number, so that the result never depends on the order of the pairs).
        key = rank[storm]
        top = np.full(count, -np.inf)
        np.maximum.at(top, point, key)
        keep = key == top[point]
        point, storm, key, distance = point[keep], storm[keep], key[keep], distance[keep]
        nearest = np.full(count, np.inf)
        np.minimum.at(nearest, point, distance)
        keep = distance == nearest[point]
        point, storm, key, distance = point[keep], storm[keep], key[keep], distance[keep]
        first = np.full(count, len(rank))
        np.minimum.at(first, point, storm)
        keep = storm == first[point]
        point, storm, key, distance = point[keep], storm[keep], key[keep], distance[keep]
        # Against what earlier batches found.
        better = (key > best[point]) | ((key == best[point]) & (distance < miles[point]))
        point, storm, key, distance = point[better], storm[better], key[better], distance[better]
        best[point], miles[point], best_storm[point] = key, distance, storm

    located = storms["latitude"].notna().to_numpy() & storms["longitude"].notna().to_numpy()
    storm_index = np.flatnonzero(located)
    for point, circle, distance in geo.within_radius(
        properties["latitude"].to_numpy(dtype=float),
        properties["longitude"].to_numpy(dtype=float),
        storms["latitude"].to_numpy(dtype=float)[located],
        storms["longitude"].to_numpy(dtype=float)[located],
        storms["radius_miles"].to_numpy(dtype=float)[located],
    ):
        offer(point, storm_index[circle], distance)

    if (~located).any():
        zip_storms = pd.DataFrame(
            {"zip_code": storms["zip_code"].to_numpy()[~located], "storm": np.flatnonzero(~located)}
        )
        homes = pd.DataFrame({"zip_code": properties["zip_code"].to_numpy(), "point": np.arange(count)})
        pairs = homes.merge(zip_storms, on="zip_code")
        # A ZIP-wide report has no distance; it loses a tie to a located storm of the same rank.
        offer(pairs["point"].to_numpy(), pairs["storm"].to_numpy(), np.full(len(pairs), np.inf))

    reached = best_storm >= 0
    chosen = best_storm[reached]
    result_magnitude = np.full(count, np.nan)
    result_magnitude[reached] = magnitude[chosen]
    result_date = np.full(count, np.datetime64("NaT"), dtype="datetime64[D]")
    result_date[reached] = date[chosen]
    result_miles = np.where(reached & np.isfinite(miles), miles, np.nan)
    return {"magnitude": result_magnitude, "date": result_date, "miles": result_miles}


def _days(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values, errors="coerce").to_numpy(dtype="datetime64[D]")


def _days_between(dates: np.ndarray, today: np.datetime64) -> np.ndarray:
    """Whole days from each date to today as floats, NaN where there is no date."""
    return np.where(np.isnat(dates), np.nan, (today - dates).astype("timedelta64[D]").astype(np.int64).astype(float))


def _where(miles: np.ndarray, date: np.ndarray) -> np.ndarray:
    """ "0.8 mi away", or "in its ZIP" for a ZIP-wide report; None when no storm reached it."""
    where = np.full(len(miles), None, dtype=object)
    located = ~np.isnan(miles)
    rounded = np.round(miles[located], 1)
    labels = {value: f"{value:.1f} mi away" for value in np.unique(rounded)}
    where[located] = [labels[value] for value in rounded]
    where[~located & ~np.isnat(date)] = "in its ZIP"
    return where
