"""The kinds of import file: their columns, the rules across columns, natural keys and upserts."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scoring import geo, selectors
from scoring.bulk import upsert
from scoring.models import ImportRun, Permit, Property, Sale, StormEvent
from scoring.services.imports import fields as f

# A property whose coordinates are further than this from every residential ZIP centroid is refused
# rather than given a ZIP that is not really its own (swapped or mistyped coordinates).
MAX_DERIVED_ZIP_MILES = 25.0
STORM_DEFAULT_RADIUS_MILES = {"hail": 2.0, "wind": 5.0, "tornado": 1.0, "hurricane": 50.0}
PROPERTY_TYPE_SYNONYMS = {
    "sfr": "single_family",
    "sfh": "single_family",
    "single_family_residence": "single_family",
    "single_family_residential": "single_family",
    "residential": "single_family",
    "house": "single_family",
    "detached": "single_family",
    "townhome": "townhouse",
    "row_house": "townhouse",
    "condominium": "condo",
    "duplex": "multi_family",
    "triplex": "multi_family",
    "fourplex": "multi_family",
    "quadplex": "multi_family",
    "multifamily": "multi_family",
    "mobile": "mobile_home",
    "manufactured": "mobile_home",
    "manufactured_home": "mobile_home",
}
STORM_KIND_SYNONYMS = {
    "thunderstorm_wind": "wind",
    "tstm_wind": "wind",
    "high_wind": "wind",
    "strong_wind": "wind",
    "hurricane_(typhoon)": "hurricane",
    "typhoon": "hurricane",
    "tropical_storm": "hurricane",
}


@dataclass(frozen=True)
class Column:
    """A canonical column of an import file and how to read its values."""

    name: str
    sql_type: str
    parse: Callable[[pd.Series], f.Parsed]
    required: bool = False


@dataclass
class Chunk:
    """One chunk of a file being checked: the raw text, the parsed values and the reasons to refuse."""

    raw: pd.DataFrame
    values: dict[str, pd.Series] = field(default_factory=dict)
    reasons: dict[str, pd.Series] = field(default_factory=dict)

    def refuse(self, mask, column: str, reason: str | pd.Series) -> None:
        if column not in self.reasons:
            self.reasons[column] = f.no_reasons(self.raw.index)
        f.add_reason(self.reasons[column], mask, reason)

    def ok(self) -> pd.Series:
        refused = np.zeros(len(self.raw), dtype=bool)
        for reasons in self.reasons.values():
            refused |= reasons.notna().to_numpy()
        return pd.Series(~refused, index=self.raw.index)

    def given(self, column: str) -> pd.Series:
        return self.values[column].notna()

    def missing(self, column: str) -> pd.Series:
        """Empty in the file (as opposed to given, or given but refused)."""
        refused = self.reasons[column].notna() if column in self.reasons else False
        return ~self.given(column) & ~refused

    def rejects(self) -> pd.DataFrame:
        frames = []
        for column, reasons in self.reasons.items():
            bad = reasons.notna()
            if bad.any():
                raw = self.raw[column][bad] if column in self.raw else pd.Series("", index=bad[bad].index)
                frames.append(
                    pd.DataFrame({"line": bad[bad].index + 2, "column": column, "value": raw, "reason": reasons[bad]})
                )
        if not frames:
            return pd.DataFrame(columns=["line", "column", "value", "reason"])
        return pd.concat(frames).sort_values(["line", "column"], kind="stable")


# The id of the property a staged row (alias s) names: a scalar subquery, which PostgreSQL always runs
# as one probe of the parcel_id index per row, never as a join planned on possibly stale statistics.
PROPERTY_BY_PARCEL = f"(SELECT p.id FROM {Property._meta.db_table} p WHERE p.parcel_id = s.parcel_id)"


class Importer:
    """What differs between the kinds of file: columns, row rules, natural key and the final upsert."""

    kind: str
    model: type
    key: tuple[str, ...]  # the natural key, as columns of the file
    conflict: tuple[str, ...]  # the same key as a unique constraint of the table
    stamped = False  # the table has created_at / updated_at
    checks_parcels = False
    keeps_written_rows = False  # after_upsert needs every row written, so the run keeps them

    def __init__(self, today: dt.date) -> None:
        self.today = today
        self.zips = selectors.zip_reference()
        self.present: set[str] = set()  # canonical columns the file has (set once its header is read)

    def targets(self) -> dict[str, tuple[str, set[str]]]:
        """Each table column written: its expression over a staged row (alias s), and the file columns
        it comes from. By default every staged column, from the file column of the same name."""
        return {name: (f"s.{name}", {name}) for name, _ in self.stage_columns()}

    def columns(self) -> list[Column]:
        raise NotImplementedError

    def required_header(self) -> list[tuple[str, ...]]:
        """Each entry is a group of columns of which the header must hold all of at least one."""
        return [(c.name,) for c in self.columns() if c.required]

    def check_rows(self, chunk: Chunk) -> None:
        """Rules across columns; may add derived columns to chunk.values."""

    def stage_columns(self) -> list[tuple[str, str]]:
        return [(c.name, c.sql_type) for c in self.columns()]

    def upsert(self, cursor, staged: str) -> tuple[int, int]:
        """Write the rows of the table `staged`; returns (inserted, updated).

        An existing row takes only the columns the file has: a file without, say, roof_year says
        nothing about roofs, so the stored roof years stay.
        """
        targets = self.targets()
        return upsert(
            cursor,
            self.model._meta.db_table,
            {column: expression for column, (expression, _) in targets.items()},
            f"{staged} s",
            self.conflict,
            stamped=self.stamped,
            update=[column for column, (_, sources) in targets.items() if sources & self.present],
        )

    def after_upsert(self, cursor, written: str) -> None:
        """Follow-up writes from every row written (the table `written`), once all are in."""

    # Rules shared by the kinds that carry coordinates.
    def check_coordinates(self, chunk: Chunk) -> None:
        lat, lon = chunk.given("latitude"), chunk.given("longitude")
        # Name the missing half row by row: a row's reject must not depend on the other rows of its chunk.
        chunk.refuse(lat & ~lon, "longitude", "latitude and longitude go together")
        chunk.refuse(lon & ~lat, "latitude", "latitude and longitude go together")


class PropertyImporter(Importer):
    kind = ImportRun.Kind.PROPERTIES
    model = Property
    key = conflict = ("parcel_id",)
    stamped = True

    def columns(self) -> list[Column]:
        year = self.today.year
        return [
            Column("parcel_id", "text", f.text(64), required=True),
            Column("address", "text", f.text(200), required=True),
            Column("city", "text", f.text(64)),
            Column("state", "text", f.state(self.zips.states)),
            Column("zip", "text", f.zip_code(self.zips.codes)),
            Column("latitude", "float8", f.number(low=-90, high=90)),
            Column("longitude", "float8", f.number(low=-180, high=180)),
            Column("year_built", "int", f.number(low=1600, high=year + 1, whole=True)),
            Column("roof_year", "int", f.number(low=1600, high=year, whole=True)),
            Column("living_sqft", "int", f.number(low=1, high=1_000_000, whole=True, unit="sq ft")),
            Column("lot_sqft", "int", f.number(low=0, high=2_000_000_000, whole=True, unit="sq ft")),
            Column("bedrooms", "int", f.number(low=0, high=100, whole=True)),
            Column("bathrooms", "float8", f.number(low=0, high=100)),
            Column("stories", "float8", f.number(low=0, high=200)),
            Column("property_type", "text", f.choice(PROPERTY_TYPE_SYNONYMS, list(Property.Type.values))),
            Column("market_value", "int", f.number(low=0, high=2_000_000_000, whole=True, unit="dollars")),
            Column("owner_occupied", "bool", f.boolean),
            Column("owner_name", "text", f.text(200)),
            Column("last_sale_date", "date", f.date(earliest=dt.date(1800, 1, 1), latest=lambda: self.today)),
            Column("last_sale_price", "int", f.number(low=0, high=2_000_000_000, whole=True, unit="dollars")),
        ]

    def required_header(self) -> list[tuple[str, ...]]:
        return [("parcel_id",), ("address",), ("zip", "latitude+longitude")]

    def stage_columns(self) -> list[tuple[str, str]]:
        return super().stage_columns() + [("zip_derived", "bool")]

    def check_rows(self, chunk: Chunk) -> None:
        values = chunk.values
        self.check_coordinates(chunk)
        has_point = chunk.given("latitude") & chunk.given("longitude")
        no_zip = chunk.missing("zip")
        chunk.refuse(no_zip & ~has_point, "zip", "no ZIP code, and no latitude/longitude to derive one from")

        derive = no_zip & has_point & chunk.ok()
        values["zip_derived"] = pd.Series(False, index=chunk.raw.index)
        if derive.any():
            index, miles = geo.nearest(
                values["latitude"][derive], values["longitude"][derive], self.zips.centroid_lat, self.zips.centroid_lon
            )
            far = pd.Series(miles > MAX_DERIVED_ZIP_MILES, index=derive[derive].index).reindex(
                chunk.raw.index, fill_value=False
            )
            chunk.refuse(far, "zip", f"no ZIP centroid within {MAX_DERIVED_ZIP_MILES:g} miles of these coordinates")
            values["zip"] = values["zip"].astype(object)
            values["zip"][derive] = self.zips.centroid_codes[index]
            values["zip_derived"][derive] = True

        built, roof = values["year_built"], values["roof_year"]
        roof_first = (roof < built).fillna(False).astype(bool)
        chunk.refuse(roof_first, "roof_year", "roof replaced before the house was built (" + built.astype(str) + ")")
        chunk.refuse(
            values["last_sale_price"].notna() & values["last_sale_date"].isna(),
            "last_sale_date",
            "a last sale price needs its date",
        )

        # City and state come from the ZIP when the file leaves them out.
        places = self.zips.places.reindex(values["zip"].fillna("").to_numpy())
        for column in ("city", "state"):
            filled = values[column].astype(object)
            missing = filled.isna().to_numpy()
            filled[missing] = places[column].to_numpy()[missing]
            values[column] = filled
        values["property_type"] = values["property_type"].fillna(Property.Type.OTHER)
        values["owner_name"] = values["owner_name"].fillna("")

    def targets(self) -> dict[str, tuple[str, set[str]]]:
        located = {"zip", "latitude", "longitude"}  # a ZIP given, or derived from coordinates
        targets = {name: target for name, target in super().targets().items() if name != "zip"}
        return targets | {"zip_code": ("s.zip", located), "zip_derived": ("s.zip_derived", located)}


class StormImporter(Importer):
    kind = ImportRun.Kind.STORMS
    model = StormEvent
    key = conflict = ("event_id",)

    def columns(self) -> list[Column]:
        return [
            Column("event_id", "text", f.text(64), required=True),
            Column(
                "event_date", "date", f.date(earliest=dt.date(1950, 1, 1), latest=lambda: self.today), required=True
            ),
            Column("kind", "text", f.choice(STORM_KIND_SYNONYMS, list(StormEvent.Kind.values)), required=True),
            Column("magnitude", "float8", f.number(low=0, high=400), required=True),
            Column("latitude", "float8", f.number(low=-90, high=90)),
            Column("longitude", "float8", f.number(low=-180, high=180)),
            Column("radius_miles", "float8", f.number(low=0.01, high=500, unit="miles")),
            Column("zip", "text", f.zip_code(self.zips.codes)),
        ]

    def required_header(self) -> list[tuple[str, ...]]:
        return [("event_id",), ("event_date",), ("kind",), ("magnitude",), ("zip", "latitude+longitude")]

    def check_rows(self, chunk: Chunk) -> None:
        values = chunk.values
        self.check_coordinates(chunk)
        has_point = chunk.given("latitude") & chunk.given("longitude")
        chunk.refuse(
            ~has_point & chunk.missing("zip"),
            "zip",
            "no location: give latitude/longitude (with radius_miles) or a ZIP code",
        )
        hail = values["kind"] == StormEvent.Kind.HAIL
        chunk.refuse(hail & (values["magnitude"] > 10), "magnitude", "hail is measured in inches; over 10 is not hail")
        default_radius = values["kind"].map(STORM_DEFAULT_RADIUS_MILES)
        values["radius_miles"] = (
            values["radius_miles"]
            .astype(float)
            .where(~has_point | values["radius_miles"].notna(), default_radius)
            .where(has_point, None)
        )

    def targets(self) -> dict[str, tuple[str, set[str]]]:
        targets = {name: target for name, target in super().targets().items() if name != "zip"}
        # The default radius depends on the kind and applies to points.
        radius = ("s.radius_miles", {"radius_miles", "kind", "latitude", "longitude"})
        return targets | {"zip_code": ("s.zip", {"zip"}), "radius_miles": radius}


class PermitImporter(Importer):
    kind = ImportRun.Kind.PERMITS
    model = Permit
    key = conflict = ("permit_number",)
    checks_parcels = True

    def __init__(self, today: dt.date) -> None:
        super().__init__(today)
        self.trade_ids = selectors.trade_ids_by_slug()
        self.trade_keywords = selectors.trade_permit_keywords()

    def columns(self) -> list[Column]:
        return [
            Column("permit_number", "text", f.text(64), required=True),
            Column("parcel_id", "text", f.text(64), required=True),
            Column(
                "issued_date", "date", f.date(earliest=dt.date(1900, 1, 1), latest=lambda: self.today), required=True
            ),
            Column("permit_type", "text", f.text(100), required=True),
            Column("trade", "text", f.choice({}, sorted(self.trade_ids))),
            Column("value", "int", f.number(low=0, high=2_000_000_000, whole=True, unit="dollars")),
        ]

    def stage_columns(self) -> list[tuple[str, str]]:
        return [c for c in super().stage_columns() if c[0] != "trade"] + [("trade_id", "bigint")]

    def check_rows(self, chunk: Chunk) -> None:
        values = chunk.values
        trade_id = values["trade"].map(self.trade_ids).astype("Int64")
        permit_type = values["permit_type"].fillna("")
        # A permit without an explicit trade takes the first trade whose keyword appears in its type.
        for tid, keywords in self.trade_keywords.items():
            if not keywords:
                continue
            pattern = permit_keyword_pattern(keywords)
            matches = trade_id.isna() & permit_type.str.contains(pattern, case=False, regex=True)
            trade_id[matches] = tid
        values["trade_id"] = trade_id

    def targets(self) -> dict[str, tuple[str, set[str]]]:
        targets = {name: target for name, target in super().targets().items() if name != "parcel_id"}
        return targets | {
            "property_id": (PROPERTY_BY_PARCEL, {"parcel_id"}),
            "trade_id": ("s.trade_id", {"trade", "permit_type"}),  # explicit, or by keyword
        }


def permit_keyword_pattern(keywords: Iterable[str]) -> str:
    """A regex for a trade's permit keywords: whole words, or word starts for keywords ending in *.

    "pv" finds "Rooftop PV system" but not "PVC plumbing"; "roof*" finds "ROOFING" but not "Waterproofing".
    """
    words = [re.escape(word[:-1]) if word.endswith("*") else re.escape(word) + r"\b" for word in keywords]
    return r"\b(?:" + "|".join(words) + ")"


class SaleImporter(Importer):
    kind = ImportRun.Kind.SALES
    model = Sale
    key = ("parcel_id", "sale_date")
    conflict = ("property_id", "sale_date")
    checks_parcels = True
    keeps_written_rows = True

    def columns(self) -> list[Column]:
        return [
            Column("parcel_id", "text", f.text(64), required=True),
            Column("sale_date", "date", f.date(earliest=dt.date(1800, 1, 1), latest=lambda: self.today), required=True),
            Column("price", "int", f.number(low=0, high=2_000_000_000, whole=True, unit="dollars"), required=True),
        ]

    def targets(self) -> dict[str, tuple[str, set[str]]]:
        targets = {name: target for name, target in super().targets().items() if name != "parcel_id"}
        return targets | {"property_id": (PROPERTY_BY_PARCEL, {"parcel_id"})}

    def after_upsert(self, cursor, written: str) -> None:
        # The property's last sale is its newest recorded sale.
        cursor.execute(
            f"""
            UPDATE {Property._meta.db_table} p
               SET last_sale_date = s.sale_date, last_sale_price = s.price, updated_at = now()
              FROM (SELECT DISTINCT ON (parcel_id) parcel_id, sale_date, price
                      FROM {written} ORDER BY parcel_id, sale_date DESC) s
             WHERE p.parcel_id = s.parcel_id
               AND (p.last_sale_date IS NULL OR s.sale_date > p.last_sale_date
                    OR (s.sale_date = p.last_sale_date AND s.price IS DISTINCT FROM p.last_sale_price))
            """
        )


IMPORTERS: dict[str, type[Importer]] = {
    cls.kind: cls for cls in (PropertyImporter, StormImporter, PermitImporter, SaleImporter)
}
