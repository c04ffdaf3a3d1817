"""The kinds of import file: their columns, the rules across columns, natural keys and upserts."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from django.db import models
from django.db.backends.utils import CursorWrapper

from scoring import geo, selectors
from scoring.bulk import Merged, merge, probe_plan
from scoring.models import ImportRun, Permit, Property, Sale, StormEvent
from scoring.services.imports import fields as f

if TYPE_CHECKING:
    from scoring.services.imports.files import RejectsFile
    from scoring.services.imports.profiles import ProfileReader

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
    cleared: dict[str, pd.Series] = field(default_factory=dict)  # cells holding CLEAR_TOKEN, per column

    def refuse(self, mask: pd.Series | np.ndarray, column: str, reason: str | pd.Series) -> None:
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

# A cell holding exactly this clears the stored value (in the columns an importer lists as clearable):
# a blank cell never does, it means "not known to this file".
CLEAR_TOKEN = "NULL"


@dataclass(frozen=True)
class Target:
    """A column of the table written. `value`: the file's value, an expression over the staged row s
    (NULL where the file's cell was blank); `sources`: the file columns it comes from (a stored row
    takes it only when the file has one of them). A new row takes COALESCE(value, default); a stored
    row takes `update` (an expression over s and the stored row t), by default the file's value, or
    the stored one where the cell was blank, or the cleared value where the cell said CLEAR_TOKEN."""

    value: str
    sources: frozenset[str]
    default: str | None = None
    update: str | None = None


class Importer:
    """What differs between the kinds of file: columns, row rules, natural key and how rows are written."""

    kind: str
    model: type[models.Model]
    key: tuple[str, ...]  # the natural key, as columns of the file
    table_key: dict[str, str]  # the same key as columns of the table and their values over a staged row
    stamped = True  # the table has created_at / updated_at
    dated = False  # rows carry an as-of date (source_as_of): an older row never overwrites a newer one
    clearable: frozenset[str] = frozenset()  # file columns whose stored value CLEAR_TOKEN may clear
    checks_parcels = False  # rows name a property by parcel_id, resolved into property_id
    keeps_written_rows = False  # after_write needs every row written, so the run keeps them

    def __init__(self, today: dt.date, as_of: dt.date | None = None) -> None:
        self.today = today
        self.as_of = as_of or today
        self.zips = selectors.zip_reference()
        self.present: set[str] = set()  # canonical columns the file has (set once its header is read)
        self.profile_reader: ProfileReader | None = None  # when the file is read through a profile (ditto)
        self.stored_newest: dt.date | None = None  # the newest source_as_of stored (see load_begin)
        self.started_empty = False  # the table had no row when the import began (see load_begin)
        self.writes_from: dt.datetime | None = None  # the clock before its first write (run.load)

    def columns(self) -> list[Column]:
        raise NotImplementedError

    def as_of_column(self) -> Column:
        """A per-row as-of date, for sources that date each row (overrides the import's as-of)."""
        return Column("as_of", "date", f.date(earliest=dt.date(1900, 1, 1), latest=lambda: self.today))

    def required_header(self) -> list[tuple[str, ...]]:
        """Each entry is a group of columns of which the header must hold all of at least one."""
        return [(c.name,) for c in self.columns() if c.required]

    def check_rows(self, chunk: Chunk) -> None:
        """Rules across columns; may add derived columns to chunk.values."""

    def derived_columns(self) -> list[tuple[str, str]]:
        """Staged columns computed from the file's (name, SQL type)."""
        return []

    def stage_columns(self) -> list[tuple[str, str]]:
        staged = [(c.name, c.sql_type) for c in self.columns() if c.name != "as_of"] + self.derived_columns()
        staged.append(("cleared", "bigint"))  # bit i: the cell of columns()[i] said CLEAR_TOKEN
        if self.dated:
            staged.append(("source_as_of", "date"))
        if self.checks_parcels:
            staged.append(("property_id", "bigint"))
        return staged

    def clear_bit(self, column: str) -> int:
        return 1 << [c.name for c in self.columns()].index(column)

    def targets(self) -> dict[str, Target]:
        """Every table column written (see Target); by default each file column into the table column
        of the same name."""
        return {c.name: Target(f"s.{c.name}", frozenset({c.name})) for c in self.columns() if c.name != "as_of"}

    def cleared_value(self, column: str) -> str:
        """What a cleared cell stores: NULL, or the column's default where it may not be NULL."""
        return self.targets()[column].default or "NULL"

    def update_expression(self, column: str, target: Target) -> str:
        if target.update:
            return target.update
        kept = f"COALESCE({target.value}, t.{column})"
        (source,) = target.sources if len(target.sources) == 1 else (None,)
        if source in self.clearable:
            return (
                f"CASE WHEN s.cleared & {self.clear_bit(source)} <> 0 THEN {self.cleared_value(column)} ELSE {kept} END"
            )
        return kept

    def updates(self) -> dict[str, str]:
        """The columns a stored row takes from this file: those the file has a source column for."""
        return {
            column: self.update_expression(column, target)
            for column, target in self.targets().items()
            if column not in self.table_key and target.sources & self.present
        }

    def load_begin(self, cursor: CursorWrapper) -> None:
        """Once per import, before any row is written (under the import's lock): whether the table is
        empty, so that the first import of a market only inserts (no key of a file is written twice, so
        none of its rows can meet a stored one); and the newest as-of stored, so that rows skip the
        check against each stored row's as-of while no stored row is newer than them."""
        table = self.model._meta.db_table
        cursor.execute(f"SELECT NOT EXISTS (SELECT FROM {table})")
        (self.started_empty,) = cursor.fetchone()
        if self.dated and not self.started_empty:
            cursor.execute(f"SELECT max(source_as_of) FROM {table}")
            (self.stored_newest,) = cursor.fetchone()

    def write(self, cursor: CursorWrapper, staged: str, rejects: RejectsFile) -> Merged:
        """Write the rows of the table `staged` (refusing those that cannot be written); see merge()."""
        if self.checks_parcels:
            self.refuse_unknown_parcels(cursor, staged, rejects)
        self.refuse_incomplete(cursor, staged, rejects)
        if not self.started_empty:
            self.refuse_with_stored(cursor, staged, rejects)
        older_possible = False
        if self.dated and self.stored_newest is not None:
            cursor.execute(f"SELECT min(source_as_of) FROM {staged}")
            (oldest,) = cursor.fetchone()
            older_possible = oldest is not None and oldest < self.stored_newest
        targets = self.targets()
        return merge(
            cursor,
            self.model._meta.db_table,
            f"{staged}",
            key=self.table_key,
            insert={
                column: f"COALESCE({t.value}, {t.default})" if t.default else t.value for column, t in targets.items()
            },
            update=self.updates(),
            stamped=self.stamped,
            as_of=self.dated,
            older_possible=older_possible,
            stored=not self.started_empty,
        )

    def refuse_incomplete(self, cursor: CursorWrapper, staged: str, rejects: RejectsFile) -> None:
        """Refuse rows that cannot be written as new rows and name no stored row (partial files)."""

    def refuse_with_stored(self, cursor: CursorWrapper, staged: str, rejects: RejectsFile) -> None:
        """Refuse rows that are fine alone but not with the stored row they update (partial files)."""

    def refuse_unknown_parcels(self, cursor: CursorWrapper, staged: str, rejects: RejectsFile) -> None:
        """Resolve each row's parcel_id into property_id; refuse the rows that name no stored property."""
        cursor.execute(f"UPDATE {staged} s SET property_id = {PROPERTY_BY_PARCEL}")
        cursor.execute(f"DELETE FROM {staged} WHERE property_id IS NULL RETURNING line, parcel_id")
        reason = "no property with this parcel_id (import properties first)"
        rejects.write_found([(line, "parcel_id", parcel, reason) for line, parcel in cursor.fetchall()])

    def after_write(self, cursor: CursorWrapper, written: str) -> None:
        """Follow-up writes from every row written (the table `written`), once all are in."""

    # Rules shared by the kinds that carry coordinates.
    def check_coordinates(self, chunk: Chunk) -> None:
        lat, lon = chunk.given("latitude"), chunk.given("longitude")
        # Name the missing half row by row: a row's reject must not depend on the other rows of its chunk.
        chunk.refuse(lat & ~lon, "longitude", "latitude and longitude go together")
        chunk.refuse(lon & ~lat, "latitude", "latitude and longitude go together")
        if "latitude" in chunk.cleared or "longitude" in chunk.cleared:
            none = pd.Series(False, index=chunk.raw.index)
            lat_cleared, lon_cleared = chunk.cleared.get("latitude", none), chunk.cleared.get("longitude", none)
            chunk.refuse(lat_cleared != lon_cleared, "latitude", "latitude and longitude are cleared together")


class PropertyImporter(Importer):
    kind = ImportRun.Kind.PROPERTIES
    model = Property
    key = ("parcel_id",)
    table_key = {"parcel_id": "s.parcel_id"}
    dated = True
    clearable = frozenset({
        "latitude", "longitude", "year_built", "roof_year", "living_sqft", "lot_sqft", "bedrooms", "bathrooms",
        "stories", "market_value", "owner_occupied", "owner_name",
    })  # fmt: skip

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
            self.as_of_column(),
        ]

    def required_header(self) -> list[tuple[str, ...]]:
        # Only the key: a file of some columns updates those columns of parcels already stored; a row
        # for a new parcel must have what a new property needs (refuse_with_stored).
        return [("parcel_id",)]

    def derived_columns(self) -> list[tuple[str, str]]:
        return [("zip_derived", "bool"), ("zip_city", "text"), ("zip_state", "text")]

    def check_rows(self, chunk: Chunk) -> None:
        values = chunk.values
        self.check_coordinates(chunk)
        has_point = chunk.given("latitude") & chunk.given("longitude")
        no_zip = chunk.missing("zip")

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
        values["zip_city"] = pd.Series(places["city"].to_numpy(), index=chunk.raw.index, dtype=object)
        values["zip_state"] = pd.Series(places["state"].to_numpy(), index=chunk.raw.index, dtype=object)

    def targets(self) -> dict[str, Target]:
        located = frozenset({"zip", "latitude", "longitude"})  # a ZIP given, or derived from coordinates
        # A derived ZIP does not replace one a file gave; a blank ZIP keeps the stored one.
        keeps_zip = "(s.zip IS NULL OR (s.zip_derived AND NOT t.zip_derived))"
        # The newest sale is the last sale, whatever the order of files; its price goes with its date.
        newer_sale = (
            "(s.last_sale_date IS NOT NULL AND (t.last_sale_date IS NULL OR s.last_sale_date >= t.last_sale_date))"
        )
        place: Callable[[str], Target] = lambda column: Target(  # noqa: E731
            f"s.{column}",
            frozenset({column, *located}),
            default=f"s.zip_{column}",
            update=(
                f"COALESCE(s.{column}, CASE WHEN NOT {keeps_zip} AND s.zip <> t.zip_code THEN s.zip_{column} END, "
                f"t.{column})"
            ),
        )
        targets = {name: target for name, target in super().targets().items() if name != "zip"}
        return targets | {
            "city": place("city"),
            "state": place("state"),
            "zip_code": Target("s.zip", located, update=f"CASE WHEN {keeps_zip} THEN t.zip_code ELSE s.zip END"),
            "zip_derived": Target(
                "s.zip_derived", located, update=f"CASE WHEN {keeps_zip} THEN t.zip_derived ELSE s.zip_derived END"
            ),
            "property_type": Target("s.property_type", frozenset({"property_type"}), default="'other'"),
            "owner_name": Target("s.owner_name", frozenset({"owner_name"}), default="''"),
            "last_sale_date": Target(
                "s.last_sale_date",
                frozenset({"last_sale_date"}),
                update=f"CASE WHEN {newer_sale} THEN s.last_sale_date ELSE t.last_sale_date END",
            ),
            "last_sale_price": Target(
                "s.last_sale_price",
                frozenset({"last_sale_date", "last_sale_price"}),
                update=(
                    f"CASE WHEN {newer_sale} AND (s.last_sale_date > t.last_sale_date OR t.last_sale_date IS NULL "
                    "OR s.last_sale_price IS NOT NULL) THEN s.last_sale_price ELSE t.last_sale_price END"
                ),
            ),
        }

    def refuse_incomplete(self, cursor: CursorWrapper, staged: str, rejects: RejectsFile) -> None:
        table = Property._meta.db_table
        # A new parcel needs an address and a place (a ZIP, given or derived from coordinates).
        with probe_plan(cursor):
            cursor.execute(
                f"""
                DELETE FROM {staged} s WHERE (s.address IS NULL OR s.zip IS NULL)
                   AND NOT EXISTS (SELECT FROM {table} t WHERE t.parcel_id = s.parcel_id)
                RETURNING s.line, s.parcel_id, s.address IS NULL, s.zip IS NULL
                """
            )
            incomplete = cursor.fetchall()
        found = []
        for line, parcel, no_address, no_zip in incomplete:
            lacks = " and ".join(
                (["an address"] if no_address else []) + (["a ZIP code or latitude/longitude"] if no_zip else [])
            )
            found.append((line, "parcel_id", parcel, f"a new parcel (not stored yet) needs {lacks}"))
        rejects.write_found(found)

    def refuse_with_stored(self, cursor: CursorWrapper, staged: str, rejects: RejectsFile) -> None:
        table = Property._meta.db_table
        # The roof is not older than the house, with the stored year where the file leaves one out (a
        # row that gives both was checked as it was read).
        if self.present & {"roof_year", "year_built"}:
            roof = self.update_expression("roof_year", self.targets()["roof_year"])
            built = self.update_expression("year_built", self.targets()["year_built"])
            with probe_plan(cursor):
                cursor.execute(
                    f"""
                    DELETE FROM {staged} s USING {table} t
                     WHERE (s.roof_year IS NULL) <> (s.year_built IS NULL) AND t.parcel_id = s.parcel_id
                       AND {roof} < {built}
                    RETURNING s.line, {roof}, {built}
                    """
                )
                rows = cursor.fetchall()
            rejects.write_found(
                [
                    (line, "roof_year", str(roof_year), f"roof replaced before the house was built ({built_year})")
                    for line, roof_year, built_year in rows
                ]
            )


class StormImporter(Importer):
    kind = ImportRun.Kind.STORMS
    model = StormEvent
    key = ("event_id",)
    table_key = {"event_id": "s.event_id"}
    dated = True

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
            self.as_of_column(),
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

    def targets(self) -> dict[str, Target]:
        targets = {name: target for name, target in super().targets().items() if name != "zip"}
        # The default radius depends on the kind and applies to points.
        radius = Target("s.radius_miles", frozenset({"radius_miles", "kind", "latitude", "longitude"}))
        return targets | {"zip_code": Target("s.zip", frozenset({"zip"})), "radius_miles": radius}


class PermitImporter(Importer):
    kind = ImportRun.Kind.PERMITS
    model = Permit
    key = ("permit_number",)
    table_key = {"permit_number": "s.permit_number"}
    dated = True
    clearable = frozenset({"value"})
    checks_parcels = True

    def __init__(self, today: dt.date, as_of: dt.date | None = None) -> None:
        super().__init__(today, as_of)
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
            self.as_of_column(),
        ]

    def derived_columns(self) -> list[tuple[str, str]]:
        return [("trade_id", "bigint")]

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

    def targets(self) -> dict[str, Target]:
        targets = {name: target for name, target in super().targets().items() if name not in ("parcel_id", "trade")}
        return targets | {
            "property_id": Target("s.property_id", frozenset({"parcel_id"})),
            "trade_id": Target("s.trade_id", frozenset({"trade", "permit_type"})),  # explicit, or by keyword
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
    table_key = {"property_id": "s.property_id", "sale_date": "s.sale_date"}
    stamped = False
    checks_parcels = True
    keeps_written_rows = True

    def columns(self) -> list[Column]:
        return [
            Column("parcel_id", "text", f.text(64), required=True),
            Column("sale_date", "date", f.date(earliest=dt.date(1800, 1, 1), latest=lambda: self.today), required=True),
            Column("price", "int", f.number(low=0, high=2_000_000_000, whole=True, unit="dollars"), required=True),
        ]

    def targets(self) -> dict[str, Target]:
        targets = {name: target for name, target in super().targets().items() if name != "parcel_id"}
        return targets | {"property_id": Target("s.property_id", frozenset({"parcel_id"}))}

    def after_write(self, cursor: CursorWrapper, written: str) -> None:
        # The property's last sale is its newest recorded sale.
        cursor.execute(
            f"""
            UPDATE {Property._meta.db_table} p
               SET last_sale_date = s.sale_date, last_sale_price = s.price, updated_at = statement_timestamp()
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
