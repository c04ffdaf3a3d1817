"""CSV imports of properties, storm events, permits and sales (`manage.py import_data`).

The path of every file, real or synthetic:

1. Read the header; map the file's column names to the canonical ones (see README, "Importing data").
2. Stream the rows in chunks of IMPORT_CHUNK_ROWS with pandas, all as text; memory stays bounded by
   the chunk, whatever the file's size.
3. Parse and check each chunk with vectorised rules (csv_fields); refused rows go to the rejects file
   with line, column, value and reason; good rows go through COPY into a temporary staging table.
4. In SQL, refuse keys that appear on several lines of the file and rows naming unknown parcels.
5. Upsert the staging table into the real table keyed by the natural key, touching only rows whose
   values changed, so importing a file twice leaves the database exactly as after the first time.

Everything from step 2 on is one transaction: a file that turns out to be unusable half-way (bad
encoding, broken CSV) rolls back and nothing is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from scoring import geo, selectors
from scoring.models import ImportRun, Permit, Property, Sale, StormEvent
from scoring.services import csv_fields as f

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


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, wrong encoding, missing columns): nothing is written."""


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


@dataclass
class ImportResult:
    run: ImportRun
    exit_code: int

    def summary(self) -> str:
        run = self.run
        if run.status == ImportRun.Status.FAILED:
            return f"{run.kind}: {run.file_name} was not imported: {run.error}"
        text = (
            f"{run.kind}: {run.rows_read:,} rows read, {run.rows_inserted:,} inserted, {run.rows_updated:,} updated, "
            f"{run.rows_unchanged:,} unchanged, {run.rows_rejected:,} rejected"
        )
        if run.rows_rejected:
            text += f" (see {run.rejects_file})"
        text += f" in {run.duration_seconds:.1f} s"
        if run.ignored_columns:
            text += f"; columns not used: {', '.join(run.ignored_columns)}"
        return text


class Importer:
    """What differs between the kinds of file: columns, row rules, natural key and the final upsert."""

    kind: str
    key: tuple[str, ...]
    checks_parcels = False

    def __init__(self, today: dt.date) -> None:
        self.today = today
        self.zips = selectors.zip_reference()
        self.present: set[str] = set()  # canonical columns the file has (set once its header is read)

    def updated_columns(self, columns: Mapping[str, str]) -> list[str]:
        """Target columns an existing row takes from the file: those it has, and what derives from them.

        A file without, say, roof_year says nothing about roofs, so the stored roof years stay.
        """
        sources = self.present | {derived for derived, given in self.derived_from.items() if given & self.present}
        return [target for target, expression in columns.items() if expression.split(".")[-1] in sources]

    # Stage columns computed from file columns: updated when any of those is in the file.
    derived_from: dict[str, set[str]] = {}

    def columns(self) -> list[Column]:
        raise NotImplementedError

    def required_header(self) -> list[tuple[str, ...]]:
        """Each entry is a group of columns of which the header must hold all of at least one."""
        return [(c.name,) for c in self.columns() if c.required]

    def check_rows(self, chunk: Chunk) -> None:
        """Rules across columns; may add derived columns to chunk.values."""

    def stage_columns(self) -> list[tuple[str, str]]:
        return [(c.name, c.sql_type) for c in self.columns()]

    def upsert(self, cursor) -> tuple[int, int]:
        raise NotImplementedError

    def after_upsert(self, cursor) -> None:
        """Follow-up writes from the staging table, once the rows are in."""

    # Rules shared by the kinds that carry coordinates.
    def check_coordinates(self, chunk: Chunk) -> None:
        lat, lon = chunk.given("latitude"), chunk.given("longitude")
        # Name the missing half row by row: a row's reject must not depend on the other rows of its chunk.
        chunk.refuse(lat & ~lon, "longitude", "latitude and longitude go together")
        chunk.refuse(lon & ~lat, "latitude", "latitude and longitude go together")

    def years(self) -> int:
        return self.today.year


def upsert(
    cursor,
    table: str,
    columns: Mapping[str, str],
    source: str,
    key: Iterable[str],
    *,
    stamped: bool,
    update: Iterable[str] | None = None,
) -> tuple[int, int]:
    """Write the rows of `source` into `table` by natural key: update rows whose values differ, insert
    new ones, leave identical rows untouched. Returns (inserted, updated).

    `columns` maps each target column to its expression over `source`; `update` limits which columns
    an existing row takes (by default all). Two plain statements instead of INSERT ... ON CONFLICT: at
    a million rows that is a second faster, and the caller holds a lock that keeps a second writer of
    the same keys out meanwhile.
    """
    key = list(key)
    names = list(columns)
    update = set(names if update is None else update)
    changing = [name for name in names if name not in key and name in update]
    rows = f"(SELECT {', '.join(f'{expr} AS {name}' for name, expr in columns.items())} FROM {source})"
    matches = " AND ".join(f"t.{k} = src.{k}" for k in key)
    assignments = [f"{name} = src.{name}" for name in changing] + (["updated_at = now()"] if stamped else [])
    updated = 0
    if changing:
        stored = ", ".join(f"t.{n}" for n in changing)
        incoming = ", ".join(f"src.{n}" for n in changing)
        cursor.execute(
            f"""
            UPDATE {table} t SET {", ".join(assignments)} FROM {rows} src
             WHERE {matches} AND ({stored}) IS DISTINCT FROM ({incoming})
            """
        )
        updated = cursor.rowcount
    insert_columns = names + (["created_at", "updated_at"] if stamped else [])
    select = [f"src.{name}" for name in names] + (["now()", "now()"] if stamped else [])
    cursor.execute(
        f"""
        INSERT INTO {table} ({", ".join(insert_columns)})
        SELECT {", ".join(select)} FROM {rows} src
         WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {matches})
        """
    )
    return cursor.rowcount, updated


class PropertyImporter(Importer):
    kind = ImportRun.Kind.PROPERTIES
    key = ("parcel_id",)
    derived_from = {"zip": {"latitude", "longitude"}, "zip_derived": {"zip", "latitude", "longitude"}}

    def columns(self) -> list[Column]:
        year = self.years()
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

    def upsert(self, cursor) -> tuple[int, int]:
        names = [name for name, _ in self.stage_columns() if name != "zip"]
        columns = {name: name for name in names} | {"zip_code": "zip"}
        return upsert(
            cursor, Property._meta.db_table, columns, "import_stage", self.key, stamped=True,
            update=self.updated_columns(columns),
        )  # fmt: skip


class StormImporter(Importer):
    kind = ImportRun.Kind.STORMS
    key = ("event_id",)
    derived_from = {"radius_miles": {"kind", "latitude", "longitude"}}

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

    def upsert(self, cursor) -> tuple[int, int]:
        columns = {name: name for name, _ in self.stage_columns() if name != "zip"} | {"zip_code": "zip"}
        return upsert(
            cursor, StormEvent._meta.db_table, columns, "import_stage", self.key, stamped=False,
            update=self.updated_columns(columns),
        )  # fmt: skip


class PermitImporter(Importer):
    kind = ImportRun.Kind.PERMITS
    key = ("permit_number",)
    checks_parcels = True
    derived_from = {"trade_id": {"trade", "permit_type"}, "id": {"parcel_id"}}

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

    def upsert(self, cursor) -> tuple[int, int]:
        columns = {
            "permit_number": "s.permit_number",
            "property_id": "p.id",
            "issued_date": "s.issued_date",
            "permit_type": "s.permit_type",
            "trade_id": "s.trade_id",
            "value": "s.value",
        }
        source = f"import_stage s JOIN {Property._meta.db_table} p ON p.parcel_id = s.parcel_id"
        return upsert(
            cursor, Permit._meta.db_table, columns, source, self.key, stamped=False,
            update=self.updated_columns(columns),
        )  # fmt: skip


def permit_keyword_pattern(keywords: Iterable[str]) -> str:
    """A regex for a trade's permit keywords: whole words, or word starts for keywords ending in *.

    "pv" finds "Rooftop PV system" but not "PVC plumbing"; "roof*" finds "ROOFING" but not "Waterproofing".
    """
    words = [re.escape(word[:-1]) if word.endswith("*") else re.escape(word) + r"\b" for word in keywords]
    return r"\b(?:" + "|".join(words) + ")"


class SaleImporter(Importer):
    kind = ImportRun.Kind.SALES
    key = ("parcel_id", "sale_date")
    checks_parcels = True

    def columns(self) -> list[Column]:
        return [
            Column("parcel_id", "text", f.text(64), required=True),
            Column("sale_date", "date", f.date(earliest=dt.date(1800, 1, 1), latest=lambda: self.today), required=True),
            Column("price", "int", f.number(low=0, high=2_000_000_000, whole=True, unit="dollars"), required=True),
        ]

    def upsert(self, cursor) -> tuple[int, int]:
        columns = {"property_id": "p.id", "sale_date": "s.sale_date", "price": "s.price"}
        source = f"import_stage s JOIN {Property._meta.db_table} p ON p.parcel_id = s.parcel_id"
        return upsert(cursor, Sale._meta.db_table, columns, source, ("property_id", "sale_date"), stamped=False)

    def after_upsert(self, cursor) -> None:
        # The property's last sale is its newest recorded sale.
        cursor.execute(
            f"""
            UPDATE {Property._meta.db_table} p
               SET last_sale_date = s.sale_date, last_sale_price = s.price, updated_at = now()
              FROM (SELECT DISTINCT ON (parcel_id) parcel_id, sale_date, price
                      FROM import_stage ORDER BY parcel_id, sale_date DESC) s
             WHERE p.parcel_id = s.parcel_id
               AND (p.last_sale_date IS NULL OR s.sale_date > p.last_sale_date
                    OR (s.sale_date = p.last_sale_date AND s.price IS DISTINCT FROM p.last_sale_price))
            """
        )


IMPORTERS: dict[str, type[Importer]] = {
    cls.kind: cls for cls in (PropertyImporter, StormImporter, PermitImporter, SaleImporter)
}


# Other spellings of canonical column names that exports commonly use (after normalise_header).
COLUMN_ALIASES = {
    "zip_code": "zip", "zipcode": "zip", "zip5": "zip", "postal_code": "zip",
    "lat": "latitude", "lon": "longitude", "lng": "longitude", "long": "longitude",
    "apn": "parcel_id", "parcel": "parcel_id", "parcel_number": "parcel_id",
    "permit_no": "permit_number", "permit_id": "permit_number",
}  # fmt: skip


def normalise_header(name: str) -> str:
    """`Parcel ID` and `parcel-id` are parcel_id; `Zip Code` is zip (COLUMN_ALIASES)."""
    name = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return COLUMN_ALIASES.get(name, name)


def parse_column_map(pairs: Iterable[str]) -> dict[str, str]:
    """`--map SOURCE=CANONICAL` values into {source: canonical}."""
    mapping = {}
    for pair in pairs:
        source, sep, canonical = pair.partition("=")
        if not sep or not source.strip() or not canonical.strip():
            raise ImportFileError(f"--map {pair!r}: expected SOURCE=CANONICAL, e.g. --map 'Parcel Number=parcel_id'")
        mapping[source.strip()] = canonical.strip()
    return mapping


def resolve_header(header: list[str], importer: Importer, column_map: Mapping[str, str]) -> list[str]:
    """Canonical name for each column of the file (or "" for columns LeadEngine does not use)."""
    canonical = {c.name for c in importer.columns()}
    for source, target in column_map.items():
        if target not in canonical:
            raise ImportFileError(
                f"--map {source}={target}: {target!r} is not a {importer.kind} column; "
                f"use one of {', '.join(sorted(canonical))}"
            )
        if source not in header and normalise_header(source) not in map(normalise_header, header):
            raise ImportFileError(f"--map {source}={target}: the file has no column {source!r}")
    normalised_map = {normalise_header(k): v for k, v in column_map.items()}
    names = []
    for raw in header:
        name = column_map.get(raw) or normalised_map.get(normalise_header(raw)) or normalise_header(raw)
        names.append(name if name in canonical else "")
    used = [n for n in names if n]
    doubled = sorted({n for n in used if used.count(n) > 1})
    if doubled:
        raise ImportFileError(f"several columns of the file map to {', '.join(doubled)}")
    missing = []
    for group in importer.required_header():
        if not any(all(part in used for part in option.split("+")) for option in group):
            missing.append(" or ".join(group))
    if missing:
        raise ImportFileError(
            f"missing required column(s): {'; '.join(missing)} (the file has: {', '.join(header)}; "
            f"use --map SOURCE=CANONICAL to name them)"
        )
    return names


class RejectsFile:
    """The rejects CSV next to the input, written as rows are refused; removed when there are none."""

    def __init__(self, source: Path) -> None:
        self.path = source.with_name(source.name + ".rejects.csv")
        self.partial = source.with_name(source.name + ".rejects.csv.partial")
        self.handle = open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed by finish/discard)
        self.handle.write("line,column,value,reason\n")
        self.rows = 0

    def write(self, rejects: pd.DataFrame) -> None:
        if len(rejects):
            rejects.to_csv(self.handle, header=False, index=False, lineterminator="\n")
            self.rows += rejects["line"].nunique()

    def finish(self) -> str:
        self.handle.close()
        if self.rows:
            os.replace(self.partial, self.path)
            return str(self.path)
        self.partial.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)  # a stale file from an earlier import would mislead
        return ""

    def discard(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


def read_header(path: Path, encoding: str) -> list[str]:
    try:
        with open(path, newline="", encoding=encoding) as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise ImportFileError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path} is a directory, not a CSV file") from None
    except PermissionError:
        raise ImportFileError(f"cannot read {path}: permission denied") from None
    except UnicodeDecodeError as error:
        raise ImportFileError(f"the file is not {encoding} text ({error.reason}); try --encoding latin-1") from None
    except csv.Error as error:
        raise ImportFileError(f"not a readable CSV file: {error}") from None
    if not header or not any(cell.strip() for cell in header):
        raise ImportFileError("the file is empty: expected a header row with column names")
    return header


def stage_frame(importer: Importer, chunk: Chunk, ok: pd.Series) -> pd.DataFrame:
    # Series keep their dtypes (nullable Int64 stays whole numbers) where numpy arrays would not.
    columns = {"line": pd.Series(chunk.raw.index + 2, index=chunk.raw.index)[ok]}
    for name, _ in importer.stage_columns():
        columns[name] = chunk.values[name][ok]
    return pd.DataFrame(columns)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A DataFrame as CSV for COPY ... (FORMAT csv): missing values are unquoted empty fields (NULL),
    empty strings are quoted (""). Arrow's writer is about twenty times faster than DataFrame.to_csv."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), sink, pa_csv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def copy_rows(cursor, table: str, frame: pd.DataFrame) -> None:
    """Bulk-load a DataFrame into `table` through COPY."""
    with cursor.copy(f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(csv_bytes(frame))


def refuse_in_sql(cursor, importer: Importer, rejects: RejectsFile) -> None:
    """Refuse natural keys repeated within the file, and rows naming parcels that are not loaded."""
    key = ", ".join(importer.key)
    cursor.execute(
        f"""
        DELETE FROM import_stage s USING (
            SELECT {key}, array_agg(line ORDER BY line) AS lines FROM import_stage GROUP BY {key} HAVING count(*) > 1
        ) d WHERE ({", ".join(f"s.{k}" for k in importer.key)}) = ({", ".join(f"d.{k}" for k in importer.key)})
        RETURNING s.line, concat_ws(' ', {", ".join(f"s.{k}" for k in importer.key)}), d.lines
        """
    )
    found = cursor.fetchall()
    if found:
        rejects.write(
            pd.DataFrame(
                {
                    "line": [row[0] for row in found],
                    "column": importer.key[0],
                    "value": [row[1] for row in found],
                    "reason": [
                        f"appears on more than one line of the file (lines {', '.join(map(str, row[2]))})"
                        for row in found
                    ],
                }
            ).sort_values("line")
        )
    if importer.checks_parcels:
        cursor.execute(
            f"""
            DELETE FROM import_stage s
             WHERE NOT EXISTS (SELECT 1 FROM {Property._meta.db_table} p WHERE p.parcel_id = s.parcel_id)
            RETURNING s.line, s.parcel_id
            """
        )
        unknown = cursor.fetchall()
        if unknown:
            rejects.write(
                pd.DataFrame(
                    {
                        "line": [row[0] for row in unknown],
                        "column": "parcel_id",
                        "value": [row[1] for row in unknown],
                        "reason": "no property with this parcel_id (import properties first)",
                    }
                ).sort_values("line")
            )


def check_chunk(importer: Importer, raw: pd.DataFrame) -> Chunk:
    chunk = Chunk(raw=raw)
    for column in importer.columns():
        if column.name in raw:
            text = raw[column.name]
            parsed = column.parse(text)
            chunk.values[column.name] = parsed.values
            chunk.reasons[column.name] = parsed.reasons
            if column.required:
                chunk.refuse(chunk.missing(column.name), column.name, "required")
        else:  # absent from the file: all empty, typed as the parser types it
            chunk.values[column.name] = column.parse(pd.Series("", index=raw.index, dtype=object)).values
    importer.check_rows(chunk)
    return chunk


ProgressCallback = Callable[[int, int, int], None]


def data_file_import(
    *,
    kind: str,
    path: str | os.PathLike,
    column_map: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
    chunk_rows: int | None = None,
    progress: ProgressCallback | None = None,
    today: dt.date | None = None,
) -> ImportResult:
    """Import one CSV file of `kind` (properties, storms, permits, sales). See the module docstring.

    Exit codes in the result: 0 all rows loaded, 3 some rows rejected, 2 the file was unusable.
    """
    if kind not in IMPORTERS:
        raise ImportFileError(f"unknown kind {kind!r}: use one of {', '.join(IMPORTERS)}")
    path = Path(path)
    started = time.monotonic()
    run = ImportRun.objects.create(
        kind=kind, file_name=str(path.resolve()), file_size=path.stat().st_size if path.is_file() else None
    )
    importer = IMPORTERS[kind](today or timezone.localdate())
    rejects = None
    try:
        header = read_header(path, encoding)
        names = resolve_header(header, importer, column_map or {})
        importer.present = {name for name in names if name}
        run.ignored_columns = [raw for raw, name in zip(header, names, strict=True) if not name]
        rejects = RejectsFile(path)
        with transaction.atomic(), connection.cursor() as cursor:
            counts = load(
                cursor, importer, path, names, encoding, chunk_rows or settings.IMPORT_CHUNK_ROWS, rejects, progress
            )
        run.rejects_file = rejects.finish()
    except ImportFileError as error:
        if rejects:
            rejects.discard()
        return finish(run, started, status=ImportRun.Status.FAILED, error=str(error))
    except BaseException as error:
        if rejects:
            rejects.discard()
        finish(run, started, status=ImportRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    run.rows_read, run.rows_inserted, run.rows_updated = counts["read"], counts["inserted"], counts["updated"]
    run.rows_rejected = rejects.rows
    run.rows_unchanged = run.rows_read - run.rows_rejected - run.rows_inserted - run.rows_updated
    return finish(run, started, status=ImportRun.Status.PARTIAL if rejects.rows else ImportRun.Status.SUCCEEDED)


EXIT_CODES = {ImportRun.Status.SUCCEEDED: 0, ImportRun.Status.PARTIAL: 3, ImportRun.Status.FAILED: 2}


def finish(run: ImportRun, started: float, *, status: str, error: str = "") -> ImportResult:
    run.status = status
    run.error = error
    run.finished_at = run.started_at + dt.timedelta(seconds=time.monotonic() - started)
    run.save()
    return ImportResult(run=run, exit_code=EXIT_CODES[status])


def read_chunks(importer, path, names, encoding, chunk_rows) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks of text, columns renamed to canonical names, blank lines dropped.

    Row labels count records from 0 with blank lines included, so a row's line is its label + 2.
    """
    with open(path, "rb") as handle:
        try:
            reader = pd.read_csv(
                handle,
                dtype=object,
                header=0,
                names=None,
                index_col=False,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=False,
                chunksize=chunk_rows,
                encoding=encoding,
                encoding_errors="strict",
            )
            for raw in reader:
                raw.columns = names
                raw = raw.loc[:, [n for n in names if n]].fillna("")
                maybe_blank = raw.iloc[:, 0] == ""
                if maybe_blank.any():
                    blank = (raw[maybe_blank] == "").all(axis=1).reindex(raw.index, fill_value=False)
                    raw = raw[~blank]
                yield raw, handle.tell()
        except UnicodeDecodeError as error:
            raise ImportFileError(f"the file is not {encoding} text ({error.reason}); try --encoding latin-1") from None
        except pd.errors.ParserError as error:
            # pandas ends some of its messages with a newline
            raise ImportFileError(f"not a well-formed CSV file: {str(error).strip()}") from None


def checked_chunks(importer, path, names, encoding, chunk_rows, rejects, progress, counts) -> Iterator[bytes]:
    """Check each chunk, write its rejects, and yield its good rows as CSV ready for COPY."""
    total_bytes = path.stat().st_size
    for raw, position in read_chunks(importer, path, names, encoding, chunk_rows):
        counts["read"] += len(raw)
        if len(raw):
            chunk = check_chunk(importer, raw)
            ok = chunk.ok()
            rejects.write(chunk.rejects())
            if ok.any():
                yield csv_bytes(stage_frame(importer, chunk, ok))
        if progress:
            progress(position, total_bytes, counts["read"])


def in_background(items: Iterator, depth: int = 2) -> Iterator:
    """Run an iterator in a thread, `depth` items ahead: the file is parsed on one core while
    PostgreSQL ingests the previous chunk on the other. Errors are raised in the caller's thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(("item", item), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(("done", done))
        except BaseException as error:  # handed to the consumer, which raises it
            queue.put(("error", error))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()
        thread.join()


def load(cursor, importer, path, names, encoding, chunk_rows, rejects, progress) -> dict[str, int]:
    stage = ", ".join(f"{name} {sql_type}" for name, sql_type in [("line", "int")] + importer.stage_columns())
    # One import of a kind at a time: the upsert below is two statements (UPDATE, then INSERT).
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"leadengine.import.{importer.kind}"])
    cursor.execute("SET LOCAL work_mem = '256MB'")
    # Statistics of a table that was empty when last analysed say "no rows"; the planner then joins
    # the staged rows to it by nested loops over sequential scans, which turns an import into hours
    # as the table fills. Hash and merge joins cost the same whatever the statistics say.
    cursor.execute("SET LOCAL enable_nestloop = off")
    cursor.execute("DROP TABLE IF EXISTS import_stage")
    cursor.execute(f"CREATE TEMPORARY TABLE import_stage ({stage}) ON COMMIT DROP")
    counts = {"read": 0}
    columns = ", ".join(["line"] + [name for name, _ in importer.stage_columns()])
    for data in in_background(checked_chunks(importer, path, names, encoding, chunk_rows, rejects, progress, counts)):
        with cursor.copy(f"COPY import_stage ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)
    refuse_in_sql(cursor, importer, rejects)
    cursor.execute("ANALYZE import_stage")
    counts["inserted"], counts["updated"] = importer.upsert(cursor)
    importer.after_upsert(cursor)
    cursor.execute("DROP TABLE import_stage")
    return counts
