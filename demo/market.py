"""A synthetic, plausible US housing market for demos and load tests (`manage.py seed_demo`).

The shape of the market:

- Properties sit in ten metros (Denver, Dallas, Phoenix, Atlanta, Minneapolis, Tampa, Charlotte, Kansas
  City, Oklahoma City, Columbus). A metro is every standard, active ZIP of the reference table within
  METRO_RADIUS_MILES of the mean centroid of the ZIPs named after its city, so every ZIP is real. Homes
  spread over a metro's ZIPs unevenly and densest near the centre; each sits within JITTER_MILES of
  its ZIP's centroid.
- Each metro has its own eras of construction (the Midwest is older, the Sun Belt newer), price level,
  storm climate and taste for solar. Houses are newer and lots bigger towards the edge of a metro;
  condos and small multi-family buildings cluster near the centre.
- Roofs: the older the house, the likelier its roof was replaced (a roof lasts 20-25 years); a known
  replacement is recorded as roof_year and has a roofing permit issued that year. Houses whose roof
  was never replaced, or whose replacement went unrecorded, have no roof_year.
- Sales: most homes have sold at least once, recent years more often (about one in ten in the last
  twelve months: new owners); each home's last sale is also in the sales file, with a few earlier
  ones at prices that follow home-price appreciation.
- Storms: hail and wind days in the last two years, more in spring and summer and hail-heavy on the
  Plains and the Front Range. A storm day leaves a line of point reports along a swath across the
  metro where the homes are. The number of reports grows with the number of properties.
- Permits: roofing (matching roof_year), solar, HVAC, windows and permits of no trade, with types
  named the way county permit systems name them so that the import's keyword matching finds their
  trade (an explicit trade only where it would not, as for "ROOFTOP PV SYSTEM").

`demo_market_frames` is pure numpy/pandas: everything comes from one `numpy.random.default_rng(seed)`
and `today`, drawn in a fixed order, so the same arguments give identical frames (and CSV bytes).
`demo_market_seed` writes them as CSV files and loads them through the same import path as real files.

Demo data never goes where real data lives: demo/guard.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd
from django.utils import timezone

from core.errors import DomainError
from core.progress import Progress, no_progress
from demo.guard import DEMO_ORIGIN, demo_market_owner_check, demo_production_check
from demo.truth import truth_seed
from scoring import geo, selectors
from scoring.models import ImportRun, Property, StormEvent
from scoring.services.imports import ImportResult, data_file_import

METRO_RADIUS_MILES = 25.0
JITTER_MILES = 1.5
MILES_PER_DEGREE_LAT = 69.05
STORM_WINDOW_DAYS = 730
STORM_REPORTS_PER_PROPERTY = 1 / 50
MIN_STORM_REPORTS = 48
STORM_REPORTS_PER_DAY = 6  # a storm day's reports when there are few (small markets have fewer days)
# Order matters: permits and sales name parcels that the properties file must have loaded first.
IMPORT_ORDER = ("properties", "storms", "permits", "sales")

PROPERTY_COLUMNS = [
    "parcel_id", "address", "city", "state", "zip", "latitude", "longitude", "year_built", "roof_year",
    "living_sqft", "lot_sqft", "bedrooms", "bathrooms", "stories", "property_type", "market_value",
    "owner_occupied", "last_sale_date", "last_sale_price",
]  # fmt: skip
STORM_COLUMNS = ["event_id", "event_date", "kind", "magnitude", "latitude", "longitude", "radius_miles", "zip"]
PERMIT_COLUMNS = ["permit_number", "parcel_id", "issued_date", "permit_type", "trade", "value"]
SALE_COLUMNS = ["parcel_id", "sale_date", "price"]


class DemoMarketError(DomainError):
    """The demo market cannot be made (no properties asked for, or none of its cities in the ZIP reference)."""

    code = "demo_market_impossible"
    http_status = 422


@dataclass(frozen=True)
class Metro:
    """A metro of the demo market and what sets it apart."""

    prefix: str  # starts its parcel ids, event ids and permit numbers
    city: str
    state: str
    share: float  # of all properties
    median_value: int  # of a 1,900 sq ft single-family home
    eras: tuple[tuple[float, float, float], ...]  # year built as a mixture of (weight, mean year, sd)
    storm_days: int  # most storm days in the storm window
    hail_share: float  # of storm days
    solar_rate: float  # share of houses with a solar permit


METROS: tuple[Metro, ...] = (
    # prefix, city, state, share, median value, eras of construction, storm days, hail share, solar rate
    Metro("DEN", "Denver", "CO", 0.12, 585_000, ((0.25, 1956, 12), (0.40, 1982, 11), (0.35, 2006, 9)),
          44, 0.80, 0.06),
    Metro("DAL", "Dallas", "TX", 0.14, 395_000, ((0.20, 1960, 10), (0.40, 1985, 10), (0.40, 2008, 8)),
          46, 0.70, 0.04),
    Metro("PHX", "Phoenix", "AZ", 0.13, 440_000, ((0.15, 1965, 10), (0.45, 1990, 9), (0.40, 2007, 8)),
          18, 0.25, 0.10),
    Metro("ATL", "Atlanta", "GA", 0.12, 390_000, ((0.20, 1962, 12), (0.40, 1988, 10), (0.40, 2006, 8)),
          30, 0.35, 0.03),
    Metro("MSP", "Minneapolis", "MN", 0.09, 360_000, ((0.40, 1925, 15), (0.35, 1962, 12), (0.25, 1996, 12)),
          32, 0.55, 0.03),
    Metro("TPA", "Tampa", "FL", 0.09, 375_000, ((0.15, 1960, 10), (0.40, 1982, 10), (0.45, 2005, 9)),
          34, 0.20, 0.06),
    Metro("CLT", "Charlotte", "NC", 0.08, 385_000, ((0.10, 1962, 10), (0.40, 1990, 10), (0.50, 2008, 8)),
          26, 0.35, 0.03),
    Metro("KCM", "Kansas City", "MO", 0.08, 285_000, ((0.35, 1930, 15), (0.35, 1965, 12), (0.30, 1998, 12)),
          38, 0.70, 0.02),
    Metro("OKC", "Oklahoma City", "OK", 0.07, 225_000, ((0.20, 1952, 12), (0.40, 1978, 12), (0.40, 2005, 10)),
          48, 0.75, 0.02),
    Metro("CMH", "Columbus", "OH", 0.08, 290_000, ((0.35, 1932, 15), (0.35, 1966, 12), (0.30, 1997, 12)),
          28, 0.45, 0.02),
)  # fmt: skip

# Property types: probabilities near a metro's centre (within INNER_MILES) and further out.
PROPERTY_TYPES = ["single_family", "townhouse", "condo", "multi_family", "mobile_home"]
INNER_MILES = 6.0
TYPE_P_INNER = [0.62, 0.10, 0.17, 0.10, 0.01]
TYPE_P_OUTER = [0.81, 0.08, 0.05, 0.02, 0.04]
TYPE_SQFT_FACTOR = [1.0, 0.8, 0.55, 1.3, 0.6]
TYPE_VALUE_FACTOR = [1.0, 0.92, 0.95, 0.85, 0.45]  # per square foot, against a single-family home
TYPE_OWNER_OCCUPIED = [0.74, 0.62, 0.55, 0.30, 0.72]
TYPE_EARLIEST_YEAR = [1900, 1900, 1965, 1900, 1960]  # few condos or mobile homes are older than these
TYPE_STORIES_P = [[0.45, 0.50, 0.05], [0.0, 0.75, 0.25], [1.0, 0.0, 0.0], [0.35, 0.55, 0.10], [1.0, 0.0, 0.0]]
TYPE_MEDIAN_LOT = [7_500, 2_400, 0, 7_000, 5_500]  # condos own no lot of their own: lot_sqft is blank

# Roof life as a Weibull distribution: about 40% of roofs are replaced by 20 years, 90% by 30.
ROOF_LIFE_YEARS = 24.0
ROOF_LIFE_SHAPE = 3.5
ROOF_RECORDED = 0.7  # share of replacements the county knows of
SALE_RECORDED = 0.85
SALE_MEAN_YEARS_AGO = 9.0
APPRECIATION_PER_YEAR = 0.045

MONTH_STORM_WEIGHT = np.array([0.15, 0.2, 0.6, 1.3, 2.2, 2.4, 2.0, 1.5, 0.9, 0.5, 0.25, 0.15])
HAIL_SIZES = np.array([0.75, 0.88, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 2.75])  # inches, as spotters report them
HAIL_SIZE_P = [0.20, 0.14, 0.30, 0.11, 0.08, 0.08, 0.05, 0.03, 0.01]

STREET_NAMES = (
    "Oak", "Maple", "Cedar", "Pine", "Elm", "Willow", "Birch", "Aspen", "Hickory", "Walnut", "Magnolia", "Juniper",
    "Sycamore", "Spruce", "Chestnut", "Dogwood", "Cottonwood", "Mesquite", "Park", "Lake", "Hill", "Ridge", "Meadow",
    "Prairie", "Valley", "Forest", "Sunset", "Highland", "Washington", "Lincoln", "Jefferson", "Madison", "Franklin",
    "Jackson", "Main", "Church", "Mill", "Spring", "River", "Creek", "Canyon", "Mesa", "Lakeview", "Fairview",
    "Grandview", "Summit", "Harvest", "Heritage", "Orchard", "Quail", "Cardinal", "Bluebird", "Hawthorn", "Laurel",
    "Poplar", "Redwood", "Sage", "Timber", "1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th",
    "11th", "12th", "14th", "16th", "18th", "20th", "24th", "32nd",
)  # fmt: skip
STREET_SUFFIXES = ("St", "Ave", "Dr", "Ln", "Ct", "Way", "Rd", "Pl", "Blvd", "Cir", "Trl", "Pkwy")
_STREET_POOL = np.array([f"{name} {suffix}" for name in STREET_NAMES for suffix in STREET_SUFFIXES], dtype=object)


@dataclass(frozen=True)
class PermitKind:
    """A kind of permit: its types as county systems name them, how common it is, and what it costs."""

    code: str  # in the permit number
    trade: str | None  # slug of the trade the import should give these permits (None: no trade)
    types: tuple[tuple[str, float, str], ...]  # (permit_type, probability, value of the file's trade column)
    rate: float  # share of properties with one (roofing: every recorded roof replacement instead)
    since: int  # first year of the county's permit records for this kind
    mean_years_ago: float  # recent permits are more common
    median_value: int


ROOFING = PermitKind(
    "RR", "roofing",
    (("RESIDENTIAL REROOF", 0.4, ""), ("ROOF REPLACEMENT", 0.3, ""), ("REROOF - ASPHALT SHINGLE", 0.2, ""),
     ("RE-ROOF TEAR OFF AND REPLACE", 0.1, "")),
    rate=0.0, since=2000, mean_years_ago=0.0, median_value=12_500,
)  # fmt: skip
SOLAR = PermitKind(
    "PV", "solar",
    # "ROOFTOP" starts with the roofing keyword "roof", so that type needs its trade spelled out.
    (("ROOFTOP PV SYSTEM", 0.5, "solar"), ("SOLAR PHOTOVOLTAIC INSTALLATION", 0.3, ""),
     ("RESIDENTIAL SOLAR PV", 0.2, "")),
    rate=0.0, since=2008, mean_years_ago=3.5, median_value=27_000,
)  # fmt: skip
OTHER_PERMITS = (
    PermitKind(
        "MEC", "hvac",
        # No "AC CHANGEOUT": "ac" is not a keyword (it would match "ACCESSORY"), so it would get no trade.
        (("FURNACE REPLACEMENT", 0.35, ""), ("AIR CONDITIONER REPLACEMENT", 0.3, ""),
         ("HEAT PUMP INSTALLATION", 0.15, ""), ("MECHANICAL - HVAC CHANGEOUT", 0.2, "")),
        rate=0.22, since=2005, mean_years_ago=8.0, median_value=7_500,
    ),
    PermitKind(
        "WIN", "windows", (("WINDOW REPLACEMENT", 0.7, ""), ("REPLACEMENT WINDOWS - RESIDENTIAL", 0.3, "")),
        rate=0.07, since=2005, mean_years_ago=8.0, median_value=9_000,
    ),
    PermitKind(
        "BLD", None,
        (("KITCHEN REMODEL", 0.25, ""), ("BATHROOM REMODEL", 0.2, ""), ("WATER HEATER REPLACEMENT", 0.2, ""),
         ("ELECTRICAL SERVICE UPGRADE", 0.15, ""), ("DECK", 0.1, ""), ("FENCE", 0.1, "")),
        rate=0.12, since=2005, mean_years_ago=5.0, median_value=15_000,
    ),
)  # fmt: skip
PERMIT_KINDS = (ROOFING, SOLAR, *OTHER_PERMITS)
# Which trade the import must give each permit type (for checks of the generated files).
PERMIT_TYPE_TRADES: dict[str, str | None] = {t[0]: kind.trade for kind in PERMIT_KINDS for t in kind.types}


class DemoSeed(TypedDict):
    skipped: bool  # the database already held properties and only_if_empty was set
    rows: dict[str, int]  # rows generated per file
    files: dict[str, Path]
    results: dict[str, ImportResult]  # per file imported, in IMPORT_ORDER; stops at a file that failed
    generate_seconds: float
    write_seconds: float
    truth_rows: int  # HiddenTruth rows drawn (property x trade), 0 when an import failed
    truth_seconds: float


def demo_market_seed(
    *,
    properties: int,
    seed: int,
    out_dir: Path,
    today: dt.date | None = None,
    only_if_empty: bool = False,
    allow_production: bool = False,
    progress: Progress = no_progress,
) -> DemoSeed:
    """Generate the demo market, write its four CSV files to `out_dir` and import them like real files.

    The files go through `data_file_import` one by one, each in its own transaction and ImportRun
    (origin "demo"), as `import_data` would load them; importing stops at a file that could not be
    loaded at all, since the files after it depend on it. Seeding the same market again changes nothing
    (the imports are upserts). With `only_if_empty`, a database that already has properties is left
    alone. Once every file is loaded, the market's hidden truth is drawn (demo/truth.py: truth_seed).
    DemoRefused with DEBUG off unless `allow_production`, and over properties the demo did not write
    (`demo_market_owner_check`). `progress` hears each stage, and each file's rows as they are read.
    """
    if properties < 1:
        raise DemoMarketError("the demo market needs at least one property")
    demo_production_check(doing="seed the demo market", allow_production=allow_production)
    today = today or timezone.localdate()
    seeded: DemoSeed = {
        "skipped": False, "rows": {}, "files": {}, "results": {}, "generate_seconds": 0.0, "write_seconds": 0.0,
        "truth_rows": 0, "truth_seconds": 0.0,
    }  # fmt: skip
    if only_if_empty and Property.objects.exists():
        seeded["skipped"] = True
        return seeded
    demo_market_owner_check()

    started = time.monotonic()
    progress(f"generating {properties:,} homes")
    frames = demo_market_frames(properties=properties, seed=seed, zips=selectors.residential_zip_frame(), today=today)
    seeded["generate_seconds"] = time.monotonic() - started

    started = time.monotonic()
    progress("writing the CSV files")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in IMPORT_ORDER:
        path = out_dir / f"{kind}.csv"
        demo_frame_write(frames[kind], path)
        seeded["files"][kind] = path
        seeded["rows"][kind] = len(frames[kind])
    seeded["write_seconds"] = time.monotonic() - started
    del frames  # the imports stream the files; the frames of a large market would only hold memory

    for kind in IMPORT_ORDER:
        rows = seeded["rows"][kind]
        progress(f"importing {kind}", 0, rows)
        result = data_file_import(
            kind=kind,
            path=seeded["files"][kind],
            today=today,
            origin=DEMO_ORIGIN,
            progress=functools.partial(_rows_read, progress, f"importing {kind}", rows),
        )
        seeded["results"][kind] = result
        if result.run.status == ImportRun.Status.FAILED:
            break
    else:
        started = time.monotonic()
        progress("drawing the hidden truth")
        seeded["truth_rows"] = truth_seed(seed=seed, today=today)
        seeded["truth_seconds"] = time.monotonic() - started
    return seeded


def _rows_read(progress: Progress, doing: str, rows: int, read_bytes: int, total_bytes: int, read_rows: int) -> None:
    """An import's progress (bytes and rows read) as rows of the file: the demo knows how many it wrote."""
    progress(doing, min(read_rows, rows), rows)


def demo_frame_write(frame: pd.DataFrame, path: Path) -> None:
    """One frame as a CSV file in the canonical columns: blank for missing values, ISO dates, "\\n" lines."""
    frame.to_csv(path, index=False, lineterminator="\n", date_format="%Y-%m-%d", encoding="utf-8")


def demo_market_frames(*, properties: int, seed: int, zips: pd.DataFrame, today: dt.date) -> dict[str, pd.DataFrame]:
    """The demo market as canonical-column frames: "properties", "storms", "permits" and "sales".

    `zips` holds the residential ZIP reference (code, city, state, latitude, longitude), as returned by
    `selectors.residential_zip_frame`. Pure: no database, no clock, no global random state.
    """
    rng = np.random.default_rng(seed)
    metro_zips = metro_zip_frame(zips)
    homes = _homes(rng, metro_zips, properties, today)
    storms = _storms(rng, metro_zips, properties, today)
    permits = _permits(rng, homes, today)
    sales = _sales(rng, homes, today)
    return {"properties": homes.frame, "storms": storms, "permits": permits, "sales": sales}


def metro_zip_frame(zips: pd.DataFrame) -> pd.DataFrame:
    """The ZIPs of each metro: code, city, state, latitude, longitude, metro (index into METROS), miles
    from the metro's centre. Metros whose city is not in `zips` are left out."""
    # Sorted by code so that the market does not depend on the order the caller read the table in.
    zips = zips.sort_values("code", kind="stable").reset_index(drop=True)
    city = zips["city"].str.lower()
    parts = []
    for index, metro in enumerate(METROS):
        named = zips[(city == metro.city.lower()) & (zips["state"] == metro.state)]
        if named.empty:
            continue
        miles = geo.haversine_miles(
            named["latitude"].mean(), named["longitude"].mean(), zips["latitude"], zips["longitude"]
        )
        near = miles <= METRO_RADIUS_MILES
        parts.append(zips[near].assign(metro=index, miles=miles[near]))
    if not parts:
        raise DemoMarketError("none of the demo metros' cities is in the ZIP reference (load_zipcodes first)")
    # A ZIP between two metros belongs to the first; these metros are too far apart for any to be.
    return pd.concat(parts).drop_duplicates("code").reset_index(drop=True)


@dataclass
class _Homes:
    """The properties frame and the arrays the other files are drawn from."""

    frame: pd.DataFrame
    metro: np.ndarray
    type_index: np.ndarray
    year_built: np.ndarray
    roof_year: np.ndarray  # 0 where unknown
    living_sqft: np.ndarray
    market_value: np.ndarray
    sold: np.ndarray  # has a recorded last sale
    sale_day: np.ndarray  # of the last sale, in days since 1970-01-01 (negative before); meaningless where unsold
    sale_price: np.ndarray  # of the last sale; meaningless where unsold


def _day(date: dt.date) -> int:
    return int(np.datetime64(date, "D").astype(np.int64))


def _year_start_day(years: np.ndarray) -> np.ndarray:
    return (np.asarray(years, dtype=np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)


def _dates(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]")


def _categorical(rng: np.random.Generator, cumulative: np.ndarray) -> np.ndarray:
    """One category per row, where row i's cumulative probabilities are cumulative[i] (shape rows x k)."""
    u = rng.random(len(cumulative))
    return np.minimum((u[:, None] >= cumulative).sum(axis=1), cumulative.shape[1] - 1)


def _nullable(values: np.ndarray, *, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """Whole numbers with blanks (written as empty CSV cells)."""
    return pd.arrays.IntegerArray(np.asarray(values, dtype=np.int64), np.asarray(missing, dtype=bool))


def _round_to(values: np.ndarray, step: int) -> np.ndarray:
    return (np.round(np.asarray(values, dtype=float) / step) * step).astype(np.int64)


def _homes(rng: np.random.Generator, metro_zips: pd.DataFrame, count: int, today: dt.date) -> _Homes:
    zip_metro = metro_zips["metro"].to_numpy()
    zip_miles = metro_zips["miles"].to_numpy()

    # Denser near the centre, with ZIP-to-ZIP noise so that density is uneven at any distance.
    density = np.exp(-zip_miles / 10.0) * rng.lognormal(0.0, 0.6, len(metro_zips))
    shares = np.array([m.share for m in METROS])[zip_metro]
    per_metro_density = np.bincount(zip_metro, weights=density, minlength=len(METROS))
    weight = shares * density / per_metro_density[zip_metro]
    # Sorted, so homes are grouped by metro then ZIP (metro_zips is ordered so) and numbered in that order.
    zip_index = np.sort(rng.choice(len(metro_zips), size=count, p=weight / weight.sum()))
    metro = zip_metro[zip_index]
    miles = zip_miles[zip_index]

    # Uniform over a disc around the ZIP centroid.
    radius = JITTER_MILES * np.sqrt(rng.random(count))
    angle = rng.uniform(0.0, 2 * np.pi, count)
    lat0 = metro_zips["latitude"].to_numpy()[zip_index]
    lon0 = metro_zips["longitude"].to_numpy()[zip_index]
    latitude = np.round(lat0 + radius * np.sin(angle) / MILES_PER_DEGREE_LAT, 6)
    longitude = np.round(lon0 + radius * np.cos(angle) / (MILES_PER_DEGREE_LAT * np.cos(np.radians(lat0))), 6)

    inner = miles < INNER_MILES
    type_index = np.where(
        inner,
        _categorical(rng, np.broadcast_to(np.cumsum(TYPE_P_INNER), (count, len(PROPERTY_TYPES)))),
        _categorical(rng, np.broadcast_to(np.cumsum(TYPE_P_OUTER), (count, len(PROPERTY_TYPES)))),
    )

    # Year built: the metro's eras, shifted newer towards the edge of the metro (suburbs grew outwards).
    eras = np.array([m.eras for m in METROS])  # metros x eras x (weight, mean, sd)
    era = _categorical(rng, np.cumsum(eras[:, :, 0], axis=1)[metro])
    year = rng.normal(eras[metro, era, 1], eras[metro, era, 2]) + (miles - 10.0) * 0.6
    year = np.round(year).astype(np.int64)
    # Not a pile-up on this year: houses "from the future" become recent construction.
    future = year > today.year
    year[future] = rng.integers(today.year - 15, today.year + 1, future.sum())
    # Condos and mobile homes drawn older than their kind spread over the decades after it began.
    earliest_year = np.array(TYPE_EARLIEST_YEAR)[type_index]
    early = year < earliest_year
    year[early] = earliest_year[early] + rng.integers(0, 25, early.sum())
    year = np.clip(year, 1900, today.year)
    age = today.year - year

    living = 1_900 * np.array(TYPE_SQFT_FACTOR)[type_index] * rng.lognormal(0.0, 0.33, count)
    living *= 1 + np.clip(year - 1970, -40, 50) * 0.004  # newer houses are bigger
    living = _round_to(np.clip(living, 450, 9_000), 10)
    lot = np.array(TYPE_MEDIAN_LOT, dtype=float)[type_index] * (1 + miles / 25.0) * rng.lognormal(0.0, 0.45, count)
    lot = _nullable(_round_to(lot, 10), missing=type_index == PROPERTY_TYPES.index("condo"))
    bedrooms = np.clip(np.round(living / 650 + rng.normal(0.0, 0.6, count)), 1, 6).astype(np.int64)
    bathrooms = np.clip(np.round((bedrooms * 0.55 + 0.4 + rng.normal(0.0, 0.35, count)) * 2) / 2, 1.0, 5.0)
    stories = 1 + _categorical(rng, np.cumsum(TYPE_STORIES_P, axis=1)[type_index])

    median_value = np.array([m.median_value for m in METROS])[metro]
    value = (
        median_value
        * (living / 1_900) ** 0.85
        * np.array(TYPE_VALUE_FACTOR)[type_index]
        * (1 + 0.25 * np.exp(-miles / 6.0))  # close-in premium
        * (1 - 0.0025 * np.clip(age - 5, 0, 60))  # older houses are worth somewhat less
        * rng.lognormal(0.0, 0.22, count)
    )
    value = _round_to(value, 1_000)
    owner_occupied = rng.random(count) < np.array(TYPE_OWNER_OCCUPIED)[type_index]

    # Roof: replaced with a probability that rises with age; the last replacement is within the last
    # 24 years and at least 12 years after the house was built (clamped to this year for young houses).
    replaced = rng.random(count) < 1 - np.exp(-((age / ROOF_LIFE_YEARS) ** ROOF_LIFE_SHAPE))
    recorded = replaced & (rng.random(count) < ROOF_RECORDED)
    earliest = np.minimum(np.maximum(year + 12, today.year - 24), today.year)
    roof_year = earliest + np.floor(rng.random(count) * (today.year - earliest + 1)).astype(np.int64)
    roof_year = np.where(recorded, roof_year, 0)

    # Last sale: exponentially more likely in recent years, never before the house was built.
    today_day = _day(today)
    built_day = _year_start_day(year)
    days_ago = rng.exponential(SALE_MEAN_YEARS_AGO * 365.25, count)
    owned_days = today_day - built_day
    too_old = days_ago > owned_days
    days_ago[too_old] = rng.random(too_old.sum()) * owned_days[too_old]
    sold = rng.random(count) < SALE_RECORDED
    sale_day = today_day - np.floor(days_ago).astype(np.int64)
    sale_price = _deflated(rng, value, today_day - sale_day, noise=0.08)

    prefixes = np.array([m.prefix for m in METROS], dtype=object)
    per_metro = np.bincount(metro, minlength=len(METROS))
    starts = np.cumsum(per_metro) - per_metro
    number = np.arange(count) - starts[metro] + 1
    width = max(6, len(str(per_metro.max())))
    parcel_id = pd.Series(prefixes[metro]) + "-" + pd.Series(number).astype(str).str.zfill(width)
    street = _STREET_POOL[rng.integers(0, len(_STREET_POOL), count)]
    address = pd.Series(rng.integers(100, 10_000, count)).astype(str) + " " + pd.Series(street)

    frame = pd.DataFrame(
        {
            "parcel_id": parcel_id,
            "address": address,
            "city": metro_zips["city"].to_numpy()[zip_index],
            "state": metro_zips["state"].to_numpy()[zip_index],
            "zip": metro_zips["code"].to_numpy()[zip_index],
            "latitude": latitude,
            "longitude": longitude,
            "year_built": year,
            "roof_year": _nullable(roof_year, missing=~recorded),
            "living_sqft": living,
            "lot_sqft": lot,
            "bedrooms": bedrooms,
            "bathrooms": bathrooms,
            "stories": stories,
            "property_type": np.array(PROPERTY_TYPES, dtype=object)[type_index],
            "market_value": value,
            "owner_occupied": owner_occupied,
            "last_sale_date": pd.Series(_dates(sale_day)).where(sold),
            "last_sale_price": _nullable(sale_price, missing=~sold),
        }
    )
    return _Homes(
        frame=frame, metro=metro, type_index=type_index, year_built=year, roof_year=roof_year, living_sqft=living,
        market_value=value, sold=sold, sale_day=sale_day, sale_price=sale_price,
    )  # fmt: skip


def _deflated(rng: np.random.Generator, value: np.ndarray, days_ago: np.ndarray, *, noise: float) -> np.ndarray:
    """What a home worth `value` today sold for `days_ago`: home prices rose APPRECIATION_PER_YEAR a year."""
    years = np.maximum(days_ago, 0) / 365.25
    price = value / (1 + APPRECIATION_PER_YEAR) ** years * rng.lognormal(0.0, noise, len(value))
    return _round_to(price, 500)


def _storms(rng: np.random.Generator, metro_zips: pd.DataFrame, properties: int, today: dt.date) -> pd.DataFrame:
    present = np.unique(metro_zips["metro"].to_numpy())
    reports_total = max(MIN_STORM_REPORTS, round(properties * STORM_REPORTS_PER_PROPERTY))
    activity = np.array([METROS[i].storm_days for i in present], dtype=float)
    reports_per_metro = rng.multinomial(reports_total, activity / activity.sum())

    # Storm days: in the window, weighted by the season of the day; never two on one date in a metro.
    days_ago_all = np.arange(STORM_WINDOW_DAYS)
    months = _dates(_day(today) - days_ago_all).astype("datetime64[M]").astype(np.int64) % 12
    season = MONTH_STORM_WEIGHT[months] / MONTH_STORM_WEIGHT[months].sum()

    parts = []
    for metro_index, reports in zip(present, reports_per_metro, strict=True):
        if not reports:
            continue
        metro = METROS[metro_index]
        rows = metro_zips[metro_zips["metro"] == metro_index]
        days = int(np.clip(reports // STORM_REPORTS_PER_DAY, 1, metro.storm_days))
        day_ago = rng.choice(STORM_WINDOW_DAYS, size=days, replace=False, p=season)
        hail_day = rng.random(days) < metro.hail_share
        severe_day = rng.random(days) < 0.25
        # Every day has a report; the rest are spread unevenly (some storms are much bigger).
        per_day = 1 + rng.multinomial(reports - days, rng.dirichlet(np.ones(days)))
        day = np.repeat(np.arange(days), per_day)
        n = len(day)

        # A swath: a line through a point where homes are, moving roughly west to east.
        density = np.exp(-rows["miles"].to_numpy() / 10.0)
        centre = rng.choice(len(rows), size=days, p=density / density.sum())
        offset = rng.normal(0.0, 3.0, (2, days))  # miles north and east of that ZIP's centroid
        centre_lat = rows["latitude"].to_numpy()[centre] + offset[0] / MILES_PER_DEGREE_LAT
        centre_lon = rows["longitude"].to_numpy()[centre] + offset[1] / (
            MILES_PER_DEGREE_LAT * np.cos(np.radians(centre_lat))
        )
        heading = np.radians(rng.normal(20.0, 25.0, days))  # counter-clockwise from east
        length = rng.uniform(8.0, 25.0, days)
        along = rng.uniform(-0.5, 0.5, n) * length[day]
        across = rng.normal(0.0, 1.2, n)
        north = along * np.sin(heading[day]) + across * np.cos(heading[day])
        east = along * np.cos(heading[day]) - across * np.sin(heading[day])
        latitude = centre_lat[day] + north / MILES_PER_DEGREE_LAT
        longitude = centre_lon[day] + east / (MILES_PER_DEGREE_LAT * np.cos(np.radians(centre_lat[day])))

        # Most reports of a day are of its kind; hail days bring some wind too, and the reverse.
        hail = np.where(rng.random(n) < 0.85, hail_day[day], ~hail_day[day])
        size = rng.choice(len(HAIL_SIZES), size=n, p=HAIL_SIZE_P) + severe_day[day]
        hail_inches = HAIL_SIZES[np.minimum(size, len(HAIL_SIZES) - 1)]
        wind_mph = np.minimum(58 + np.round(rng.gamma(1.5, 7.0, n) + 6 * severe_day[day]), 90)
        magnitude = np.where(hail, hail_inches, wind_mph)
        radius = np.where(hail, np.round(rng.uniform(1.0, 3.0, n) * 2) / 2, np.round(rng.uniform(2.0, 5.0, n) * 2) / 2)

        event_day = _day(today) - day_ago[day]
        # Reports numbered in swath order (west to east along the heading) within each day.
        order = np.lexsort((along, day))
        sequence = np.empty(n, dtype=np.int64)
        sequence[order] = np.arange(n) - np.repeat(np.cumsum(per_day) - per_day, per_day)
        kind = np.where(hail, StormEvent.Kind.HAIL.value, StormEvent.Kind.WIND.value)
        event_id = (
            pd.Series(np.where(hail, "HAIL-", "WIND-"))
            + f"{metro.prefix}-"
            + pd.Series(_dates(event_day).astype(str)).str.replace("-", "", regex=False)
            + "-"
            + pd.Series(sequence + 1).astype(str).str.zfill(3)
        )
        parts.append(
            pd.DataFrame(
                {
                    "event_id": event_id,
                    "event_date": _dates(event_day),
                    "kind": kind,
                    "magnitude": magnitude,
                    "latitude": np.round(latitude, 6),
                    "longitude": np.round(longitude, 6),
                    "radius_miles": radius,
                    "zip": "",
                }
            )
        )
    storms = pd.concat(parts, ignore_index=True)
    return storms.sort_values(["event_date", "event_id"], kind="stable", ignore_index=True)[STORM_COLUMNS]


def _permit_types(rng: np.random.Generator, kind: PermitKind, count: int) -> tuple[np.ndarray, np.ndarray]:
    names = np.array([t[0] for t in kind.types], dtype=object)
    trades = np.array([t[2] for t in kind.types], dtype=object)
    chosen = rng.choice(len(kind.types), size=count, p=[t[1] for t in kind.types])
    return names[chosen], trades[chosen]


def _permits(rng: np.random.Generator, homes: _Homes, today: dt.date) -> pd.DataFrame:
    today_day = _day(today)
    built_day = _year_start_day(homes.year_built)
    count = len(homes.year_built)
    parts = []

    # Roofing: one permit for each recorded replacement since the permit records begin, in roof_year.
    roofed = np.flatnonzero(homes.roof_year >= ROOFING.since)
    year_start = _year_start_day(homes.roof_year[roofed])
    year_end = np.minimum(_year_start_day(homes.roof_year[roofed] + 1) - 1, today_day)
    issued = year_start + np.floor(rng.random(len(roofed)) * (year_end - year_start + 1)).astype(np.int64)
    parts.append((ROOFING, roofed, issued))

    # Solar goes on houses and townhouses, at the metro's rate.
    solar_rate = np.array([m.solar_rate for m in METROS])[homes.metro] * (homes.type_index <= 1)
    for kind, rate in ((SOLAR, solar_rate), *((k, np.full(count, k.rate)) for k in OTHER_PERMITS)):
        chosen = np.flatnonzero(rng.random(count) < rate)
        window = today_day - _day(dt.date(kind.since, 1, 1))
        days_ago = rng.exponential(kind.mean_years_ago * 365.25, len(chosen))
        outside = days_ago > window
        days_ago[outside] = rng.random(outside.sum()) * window
        issued = today_day - np.floor(days_ago).astype(np.int64)
        # A permit before the house was built is impossible; those homes simply have none of this kind.
        kept = issued >= built_day[chosen]
        parts.append((kind, chosen[kept], issued[kept]))

    frames = []
    for kind, home, issued in parts:
        permit_type, trade = _permit_types(rng, kind, len(home))
        value = kind.median_value * (homes.living_sqft[home] / 1_900) ** 0.7 * rng.lognormal(0.0, 0.3, len(home))
        frames.append(
            pd.DataFrame(
                {
                    "home": home,
                    "code": kind.code,
                    "issued": issued,
                    "permit_type": permit_type,
                    "trade": trade,
                    "value": np.maximum(_round_to(value, 50), 500),
                }
            )
        )
    permits = pd.concat(frames, ignore_index=True).sort_values(["issued", "home", "code"], kind="stable")
    # Numbered in the order they were issued, across the market: "DEN-RR-2019-0000123".
    prefixes = np.array([m.prefix for m in METROS], dtype=object)
    issued_dates = _dates(permits["issued"].to_numpy())
    number = (
        pd.Series(prefixes[homes.metro[permits["home"].to_numpy()]])
        + "-"
        + permits["code"].to_numpy()
        + "-"
        + pd.Series(issued_dates.astype("datetime64[Y]").astype(str))
        + "-"
        + pd.Series(np.arange(1, len(permits) + 1)).astype(str).str.zfill(7)
    )
    return pd.DataFrame(
        {
            "permit_number": number,
            "parcel_id": homes.frame["parcel_id"].to_numpy()[permits["home"].to_numpy()],
            "issued_date": issued_dates,
            "permit_type": permits["permit_type"].to_numpy(),
            "trade": permits["trade"].to_numpy(),
            "value": permits["value"].to_numpy(),
        }
    )


# Chance that a sale had an earlier one, for the 1st, 2nd and 3rd sale before the last.
EARLIER_SALE_P = (0.55, 0.4, 0.3)


def _sales(rng: np.random.Generator, homes: _Homes, today: dt.date) -> pd.DataFrame:
    today_day = _day(today)
    built_day = _year_start_day(homes.year_built)
    sold = np.flatnonzero(homes.sold)
    homes_part = [sold]
    days_part = [homes.sale_day[sold]]
    prices_part = [homes.sale_price[sold]]

    current = sold
    current_day = homes.sale_day[sold]
    for p in EARLIER_SALE_P:
        # At least half a year between sales, so no home sells twice on one day.
        earlier_day = current_day - 180 - np.floor(rng.exponential(7 * 365.25, len(current))).astype(np.int64)
        keep = (rng.random(len(current)) < p) & (earlier_day >= built_day[current])
        current, current_day = current[keep], earlier_day[keep]
        homes_part.append(current)
        days_part.append(current_day)
        prices_part.append(_deflated(rng, homes.market_value[current], today_day - current_day, noise=0.1))

    home = np.concatenate(homes_part)
    day = np.concatenate(days_part)
    order = np.lexsort((day, home))
    return pd.DataFrame(
        {
            "parcel_id": homes.frame["parcel_id"].to_numpy()[home[order]],
            "sale_date": _dates(day[order]),
            "price": np.concatenate(prices_part)[order],
        }
    )
