"""Import profiles: how to read one source's files (see README, "Importing data: profiles").

A profile is a column map (the file's column names -> LeadEngine's canonical ones, applied like
`--map`) and options that turn the file's values into the text the column parsers read:

    constants    {"kind": "hail"}               the same value on every row, written as LeadEngine reads it
    multiply     {"magnitude": 0.01}            numbers times a factor (unit conversion)
    date_format  "%d.%m.%Y"                     strptime format of the file's date columns
    converter    "spc-reports"                  a conversion written in code for a public format (CONVERTERS)
    event_types  {"Hail": "hail", ...}          noaa-storm-events only: the NOAA event types read, as kinds

A county's or vendor's profile is a column map and perhaps a constant or a factor: no code. Each chunk
goes through, in order: constants, date_format and multiply (on the columns read from the file), then
the converter. Rows a converter leaves out (event types LeadEngine does not score) are counted as
skipped; rows it cannot convert are refused by line, like any other reject.

SHIPPED_PROFILES holds the profiles that come with LeadEngine; migration 0015 installs them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from django.core.exceptions import ValidationError
from django.utils import timezone

from scoring.errors import ImportFileError
from scoring.models import ImportProfile, StormEvent
from scoring.services.imports import fields as f
from scoring.services.imports.files import normalise_header
from scoring.services.imports.kinds import IMPORTERS, Column, Importer

OPTIONS = ("constants", "multiply", "date_format", "converter", "event_types")
NUMERIC_SQL_TYPES = {"int", "bigint", "float8"}
WHOLE_SQL_TYPES = {"int", "bigint"}
MPH_PER_KNOT = 1.150779
REJECT_COLUMNS = ["line", "column", "value", "reason"]
# Any number, written as the column parsers read numbers (1,234.5, $350,000); bounds are the columns' own.
any_number = f.number(low=-1e15, high=1e15)
ARROW_TEXT = pd.StringDtype("pyarrow")

# A storm report that names no speed is still a storm: it gets the least its report implies. A wind
# report (NOAA Thunderstorm Wind, SPC wind) meets the severe criterion, gusts of 50 kt (58 mph) or
# damage; a tornado of unknown rating is at least EF0 (65 mph); a hurricane is at least 74 mph.
UNKNOWN_MPH = {"wind": 58, "tornado": 65, "hurricane": 74}
# The lowest wind speed (mph) of each tornado rating: the Enhanced Fujita scale (from 2007), and the
# original Fujita scale of older records.
TORNADO_RATING_MPH = {
    "EF0": 65, "EF1": 86, "EF2": 111, "EF3": 136, "EF4": 166, "EF5": 201,
    "F0": 40, "F1": 73, "F2": 113, "F3": 158, "F4": 207, "F5": 261,
}  # fmt: skip
UNKNOWN_RATINGS = {"", "UNK", "EFU", "FU", "U"}

SHIPPED_PROFILES: dict[str, dict[str, Any]] = {
    "noaa-storm-events": {
        "kind": "storms",
        "description": (
            "NOAA Storm Events Database details files (StormEvents_details-ftp_v1.0_dYYYY_cYYYYMMDD.csv). "
            "Hail in inches; wind in knots, made mph; tornadoes by the lowest speed of their (E)F rating. "
            "Event types not listed in event_types are skipped."
        ),
        "column_map": {
            "EVENT_ID": "event_id",
            "EVENT_TYPE": "kind",
            "MAGNITUDE": "magnitude",
            "BEGIN_LAT": "latitude",
            "BEGIN_LON": "longitude",
        },
        "options": {
            "converter": "noaa-storm-events",
            "event_types": {"Hail": "hail", "Thunderstorm Wind": "wind", "Tornado": "tornado"},
        },
    },
    "spc-hail": {
        "kind": "storms",
        "description": (
            "Storm Prediction Center daily hail reports (YYMMDD_rpts_hail.csv); Size in hundredths of an inch."
        ),
        "column_map": {"Size": "magnitude", "Lat": "latitude", "Lon": "longitude"},
        "options": {"converter": "spc-reports", "constants": {"kind": "hail"}, "multiply": {"magnitude": 0.01}},
    },
    "spc-wind": {
        "kind": "storms",
        "description": (
            "Storm Prediction Center daily wind reports (YYMMDD_rpts_wind.csv); Speed in mph unless the header "
            "names knots (Speed(kt)); UNK is 58 mph."
        ),
        "column_map": {"Speed": "magnitude", "Lat": "latitude", "Lon": "longitude"},
        "options": {"converter": "spc-reports", "constants": {"kind": "wind"}},
    },
    "spc-tornado": {
        "kind": "storms",
        "description": (
            "Storm Prediction Center daily tornado reports (YYMMDD_rpts_torn.csv); F_Scale as the lowest speed "
            "of the rating; UNK is 65 mph (EF0)."
        ),
        "column_map": {"F_Scale": "magnitude", "Lat": "latitude", "Lon": "longitude"},
        "options": {"converter": "spc-reports", "constants": {"kind": "tornado"}},
    },
}


def import_profiles_shipped_install(*, model: type[ImportProfile] = ImportProfile) -> int:
    """Create the shipped profiles that are missing (by name); ones staff edited stay as they are.
    `model`: the ImportProfile model (a migration passes its historical one). Returns how many were made."""
    made = 0
    for name, spec in SHIPPED_PROFILES.items():
        _, created = model.objects.get_or_create(name=name, defaults={**spec, "shipped": True})
        made += created
    return made


def import_profile_get(*, kind: str, name: str) -> ImportProfile:
    """The profile `name` for files of `kind`; ImportFileError naming the profiles of that kind if there is none."""
    profile = ImportProfile.objects.filter(name=name).first()
    if profile is not None and profile.kind == kind:
        return profile
    names = list(ImportProfile.objects.filter(kind=kind).order_by("name").values_list("name", flat=True))
    choices = f"profiles for {kind}: {', '.join(names)}" if names else f"there is no profile for {kind}"
    if profile is None:
        raise ImportFileError(f"no import profile {name!r}; {choices}")
    raise ImportFileError(f"profile {name!r} reads {profile.kind} files, not {kind}; {choices}")


def import_profile_check(*, profile: ImportProfile, importer: Importer | None = None) -> None:
    """ValidationError, by field, when the profile's column map or options cannot be applied: unknown
    columns, unknown or malformed options, a constant its column would refuse. Run by the admin's form
    (scoring.admin.imports.ImportProfileForm) and by every import that uses the profile."""
    problems = profile_problems(profile, importer)
    if problems:
        raise ValidationError(problems)


def profile_problems(profile: ImportProfile, importer: Importer | None) -> dict[str, list[str]]:
    if profile.kind not in IMPORTERS:  # blank: the form's own check says so
        return {"kind": [f"unknown kind {profile.kind!r}: use one of {', '.join(IMPORTERS)}"]} if profile.kind else {}
    importer = importer or IMPORTERS[profile.kind](timezone.localdate())
    columns = {column.name: column for column in importer.columns()}
    listed = ", ".join(sorted(columns))
    problems: dict[str, list[str]] = {"column_map": [], "options": []}
    column_map, options = profile.column_map, profile.options

    if not isinstance(column_map, dict):
        problems["column_map"].append('expected an object {"file column": "LeadEngine column"}')
        column_map = {}
    for source, target in column_map.items():
        if not source.strip():
            problems["column_map"].append(f"a file column's name is blank (mapped to {target!r})")
        elif not isinstance(target, str) or target not in columns:
            problems["column_map"].append(f"{source!r}: {target!r} is not a {profile.kind} column; use one of {listed}")
    targets = [target for target in column_map.values() if isinstance(target, str)]
    for doubled in sorted({t for t in targets if targets.count(t) > 1}):
        sources = ", ".join(repr(s) for s, t in column_map.items() if t == doubled)
        problems["column_map"].append(f"several columns map to {doubled}: {sources}")

    if not isinstance(options, dict):
        problems["options"].append(f"expected an object with some of {', '.join(OPTIONS)}")
        options = {}
    unknown = [key for key in options if key not in OPTIONS]
    if unknown:
        problems["options"].append(f"unknown option {', '.join(map(repr, unknown))}: use {', '.join(OPTIONS)}")
    mapped = {target: source for source, target in column_map.items() if isinstance(target, str)}
    problems["options"] += constants_problems(options.get("constants", {}), columns, mapped, listed)
    problems["options"] += multiply_problems(options.get("multiply", {}), columns, listed)
    if "date_format" in options:
        problems["options"] += date_format_problems(options["date_format"], columns)
    problems["options"] += converter_problems(profile, options, mapped)
    return {field: messages for field, messages in problems.items() if messages}


def constants_problems(
    constants: object, columns: Mapping[str, Column], mapped: Mapping[str, str], listed: str
) -> list[str]:
    if not isinstance(constants, dict):
        return ['constants: expected an object {"LeadEngine column": value}']
    problems = []
    for name, value in constants.items():
        if name not in columns:
            problems.append(f"constants: {name!r} is not a column of this kind; use one of {listed}")
        elif isinstance(value, dict | list) or value is None:
            problems.append(f"constants: {name}: expected a text, number or true/false value")
        elif name in mapped:
            problems.append(f"constants: {name} is also read from the file's column {mapped[name]!r}; keep one")
        else:
            reason = columns[name].parse(pd.Series([constant_text(value)], dtype=object)).reasons.iloc[0]
            if not pd.isna(reason):
                problems.append(f"constants: {name} {value!r}: {reason}")
    return problems


def multiply_problems(multiply: object, columns: Mapping[str, Column], listed: str) -> list[str]:
    if not isinstance(multiply, dict):
        return ['multiply: expected an object {"LeadEngine column": factor}']
    problems = []
    numeric = ", ".join(sorted(name for name, column in columns.items() if column.sql_type in NUMERIC_SQL_TYPES))
    for name, factor in multiply.items():
        if name not in columns:
            problems.append(f"multiply: {name!r} is not a column of this kind; use one of {listed}")
        elif columns[name].sql_type not in NUMERIC_SQL_TYPES:
            problems.append(f"multiply: {name} is not a number column; use one of {numeric}")
        elif isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < math.inf:
            problems.append(f"multiply: {name}: the factor must be a number above 0, not {factor!r}")
    return problems


def date_format_problems(date_format: object, columns: Mapping[str, Column]) -> list[str]:
    if not any(column.sql_type == "date" for column in columns.values()):
        return ["date_format: this kind of file has no date column"]
    sample = dt.datetime(2001, 2, 3)
    try:
        read_back = (
            dt.datetime.strptime(sample.strftime(date_format), date_format)
            if isinstance(date_format, str) and "%" in date_format
            else None
        )
    except (TypeError, ValueError):
        read_back = None
    if read_back is None or read_back.date() != sample.date():
        return [
            (
                f"date_format {date_format!r} does not read a date back (use strptime codes with a year, month "
                'and day, e.g. "%d.%m.%Y" or "%Y%m%d")'
            )
        ]
    return []


def converter_problems(profile: ImportProfile, options: Mapping[str, Any], mapped: Mapping[str, str]) -> list[str]:
    name = options.get("converter")
    shipped = SHIPPED_PROFILES.get(profile.name) if profile.shipped else None
    problems = []
    if shipped and name != shipped["options"].get("converter"):
        problems.append(f"converter: a shipped profile keeps its converter {shipped['options']['converter']!r}")
    if name is None:
        if "event_types" in options:
            problems.append("event_types: only with the noaa-storm-events converter")
        return problems
    converter = CONVERTERS.get(name) if isinstance(name, str) else None
    if converter is None:
        return [*problems, f"converter: unknown converter {name!r}; use one of {', '.join(CONVERTERS)}"]
    if converter.kind != profile.kind:
        return [*problems, f"converter: {name} reads {converter.kind} files, not {profile.kind}"]
    constants: Mapping[str, Any] = options["constants"] if isinstance(options.get("constants"), dict) else {}
    for column in converter.produces:
        if column in mapped:
            problems.append(f"converter: {name} makes {column}; remove {mapped[column]!r} from the column map")
        if column in constants:
            problems.append(f"converter: {name} makes {column}; remove it from constants")
    return problems + converter.option_problems(options)


def constant_text(value: str | int | float | bool) -> str:
    """A constant as a cell of the file would hold it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rejects_frame(
    frame: pd.DataFrame, mask: pd.Series, column: str, value: pd.Series | str, reason: pd.Series | str
) -> pd.DataFrame:
    """Rejects (line, column, value, reason) for the rows of `frame` where `mask` holds."""
    rows = frame.index[np.asarray(mask, dtype=bool)]
    values = value[rows] if isinstance(value, pd.Series) else value
    reasons = reason[rows] if isinstance(reason, pd.Series) else reason
    return pd.DataFrame({"line": rows + 2, "column": column, "value": values, "reason": reasons}, index=rows)


def stripped(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column's text without surrounding whitespace, as Arrow strings (vectorised string operations)."""
    if column not in frame:
        return pd.Series("", index=frame.index, dtype=ARROW_TEXT)
    text = pc.utf8_trim_whitespace(pa.array(frame[column], type=pa.string(), from_pandas=True))
    return pd.Series(text, index=frame.index, dtype=ARROW_TEXT)


def per_distinct(column: pd.Series, convert: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`convert` run once per distinct value of the column (ratings, event types: a handful), spread
    back over its rows."""
    codes, uniques = pd.factorize(column)
    converted = convert(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
    return pd.Series(converted[codes], index=column.index, dtype=object)


def two_decimals(text: pd.Series) -> pd.Series:
    """Coordinates to two decimals ("41.3" and "41.30" are one place); text that is no number stays.
    Written with Arrow's kernels from whole hundredths: formatting floats one by one costs seconds."""
    numbers = any_number(text).values.to_numpy(dtype=float)
    given = ~np.isnan(numbers)
    hundredths = np.rint(np.where(given, numbers, 0) * 100).astype(np.int64)
    whole, fraction = np.divmod(np.abs(hundredths), 100)
    signed = pc.binary_join_element_wise(
        pa.array(np.where(hundredths < 0, "-", "")), pc.cast(pa.array(whole), pa.string()), ""
    )
    written = pc.binary_join_element_wise(
        signed, pc.utf8_lpad(pc.cast(pa.array(fraction), pa.string()), width=2, padding="0"), "."
    )
    kept = pa.array(text.astype(object), type=pa.string(), from_pandas=True)
    return pd.Series(pc.if_else(pa.array(given), written, kept), index=text.index, dtype=ARROW_TEXT)


def whole_mph(numbers: pd.Series) -> pd.Series:
    """Speeds as the text of whole mph (a storm report's speed is never more precise than that)."""
    return numbers.round().astype("Int64").astype(str)


def tornado_mph(ratings: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The lowest wind speed (mph text) of each tornado rating (EF2, EF-2, F2; UNK and EFU are EF0's),
    and where the rating is not one."""

    def rating_mph(ratings: pd.Series) -> pd.Series:
        keys = ratings.str.upper().str.replace(r"[\s\-]", "", regex=True)
        mph = keys.map(lambda key: UNKNOWN_MPH["tornado"] if key in UNKNOWN_RATINGS else TORNADO_RATING_MPH.get(key))
        return mph.map(lambda value: "" if pd.isna(value) else str(int(value)))

    mph = per_distinct(ratings, rating_mph)
    return mph, mph == ""


@dataclass
class Converted:
    """A chunk after its profile: the rows kept, how many were skipped, and the rows refused."""

    frame: pd.DataFrame
    skipped: int
    rejects: pd.DataFrame


def no_rejects() -> pd.DataFrame:
    return pd.DataFrame(columns=REJECT_COLUMNS)


def joined(rejects: list[pd.DataFrame]) -> pd.DataFrame:
    found = [frame for frame in rejects if len(frame)]
    return pd.concat(found) if found else no_rejects()


class Converter:
    """A conversion written in code for a public file format, made once per file."""

    name: ClassVar[str]
    kind: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ()  # more of the file's columns it reads, named as in the file
    produces: ClassVar[tuple[str, ...]] = ()  # canonical columns it makes that no column of the file holds

    def __init__(self, *, options: Mapping[str, Any], path: Path, header: list[str], as_of: dt.date) -> None:
        self.options = options

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[str]:
        return []

    def header(self, header: list[str]) -> list[str]:
        """The header as the column map reads it."""
        return header

    def convert(self, frame: pd.DataFrame) -> Converted:
        raise NotImplementedError


class NoaaStormEvents(Converter):
    """NOAA's Storm Events Database "details" CSV: one row per event of any of ~50 types.

    Rows of the types in the event_types option are read as that kind, the others skipped. The date
    is BEGIN_YEARMONTH + BEGIN_DAY (local standard time; BEGIN_DATE_TIME has a two-digit year). Hail
    MAGNITUDE is in inches; wind MAGNITUDE in knots (MAGNITUDE_TYPE EG, ES, MG, MS), made mph; a
    tornado's speed is the lowest of its TOR_F_SCALE rating. A scored event without BEGIN_LAT/BEGIN_LON
    (NOAA gives some only by county or forecast zone) is refused: LeadEngine places a storm by a point.
    """

    name = "noaa-storm-events"
    kind = "storms"
    inputs = ("BEGIN_YEARMONTH", "BEGIN_DAY", "TOR_F_SCALE")
    produces = ("event_date",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        types = self.options.get("event_types") or SHIPPED_PROFILES[self.name]["options"]["event_types"]
        self.event_types = {event_type.strip().lower(): kind for event_type, kind in types.items()}

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[str]:
        types = options.get("event_types", {})
        if not isinstance(types, dict):
            return ['event_types: expected an object {"NOAA event type": "kind"}']
        kinds = list(StormEvent.Kind.values)
        return [
            f"event_types: {event_type!r}: {kind!r} is not one of {', '.join(kinds)}"
            for event_type, kind in types.items()
            if kind not in kinds
        ]

    def convert(self, frame: pd.DataFrame) -> Converted:
        event_type = stripped(frame, "kind")
        kinds = per_distinct(event_type, lambda types: types.str.lower().map(self.event_types))
        scored = kinds.notna()
        frame, kinds, event_type = frame[scored].copy(), kinds[scored].astype(str), event_type[scored]
        frame["kind"] = kinds
        ids = stripped(frame, "event_id")
        frame["event_id"] = ("noaa-" + ids).where(ids != "", "")

        # Each problem of a row is a line of the rejects file.
        lat, lon = stripped(frame, "latitude"), stripped(frame, "longitude")
        unplaced = (lat == "") | (lon == "")
        reason: pd.Series | str = (
            "no coordinates (BEGIN_LAT/BEGIN_LON) for this " + event_type + " event: a storm is placed by a point"
        )
        rejects = [rejects_frame(frame, unplaced, "latitude", "", reason)]

        month, day = stripped(frame, "BEGIN_YEARMONTH"), stripped(frame, "BEGIN_DAY")
        dated = month.str.fullmatch(r"\d{6}") & day.str.fullmatch(r"\d{1,2}")
        frame["event_date"] = (month.str[:4] + "-" + month.str[4:] + "-" + day.str.zfill(2)).where(dated, "")
        reason = "BEGIN_YEARMONTH and BEGIN_DAY do not make a date"
        rejects.append(rejects_frame(frame, ~dated, "event_date", month + " " + day, reason))

        magnitude = stripped(frame, "magnitude")
        windy = kinds.isin(["wind", "hurricane"])
        knots = any_number(magnitude).values
        converted = windy & knots.notna()
        frame.loc[converted, "magnitude"] = whole_mph(knots[converted] * MPH_PER_KNOT)
        unknown = windy & (magnitude == "")
        frame.loc[unknown, "magnitude"] = kinds[unknown].map(UNKNOWN_MPH).astype(int).astype(str)

        tornado = kinds == "tornado"
        rating = stripped(frame, "TOR_F_SCALE")
        mph, unrated = tornado_mph(rating[tornado])
        frame.loc[tornado, "magnitude"] = mph
        unrated = unrated.reindex(frame.index, fill_value=False)
        reason = "TOR_F_SCALE is not a tornado rating (EF0 to EF5, F0 to F5, EFU)"
        rejects.append(rejects_frame(frame, unrated, "magnitude", rating, reason))

        refused = unplaced | ~dated | unrated
        return Converted(frame=frame[~refused], skipped=int((~scored).sum()), rejects=joined(rejects))


class SpcReports(Converter):
    """The Storm Prediction Center's daily storm reports, one file per kind (YYMMDD_rpts_hail.csv,
    _wind.csv, _torn.csv), columns Time,Size|Speed|F_Scale,Location,County,State,Lat,Lon,Comments.

    The kind is the profile's constant. The file has no date: it is the SPC day in the file's name
    (reports from 12 UTC that day to 12 UTC the next), else the import's as-of date. Time is HHMM UTC.
    Wind Speed is in mph unless the header names knots (Speed(kt)); a tornado's speed is the lowest of
    its rating; UNK is 58 mph for wind and 65 mph (EF0) for a tornado. The event id is made from the
    kind, date, time and point, so importing the same file again finds the same events.
    """

    name = "spc-reports"
    kind = "storms"
    inputs = ("Time",)
    produces = ("event_id", "event_date")
    SPEED_HEADER = re.compile(r"^speed(?:_(?P<unit>[a-z0-9_]+))?$")
    KNOTS = {"kt", "kts", "knot", "knots"}

    def __init__(self, *, path: Path, as_of: dt.date, **kwargs: Any) -> None:
        super().__init__(path=path, as_of=as_of, **kwargs)
        self.kind_value = self.options["constants"]["kind"]
        self.knots = False
        # Anywhere in the name: an upload from the admin is stored under a prefix of its own.
        named = re.search(r"(?<!\d)(\d{2})(\d{2})(\d{2})_rpts", path.name)
        if named is None:
            self.date = as_of
        else:
            try:
                self.date = dt.date(2000 + int(named[1]), int(named[2]), int(named[3]))
            except ValueError:
                raise ImportFileError(f"the file name {path.name} does not start with a date (YYMMDD)") from None

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[str]:
        kinds = [StormEvent.Kind.HAIL, StormEvent.Kind.WIND, StormEvent.Kind.TORNADO]
        constants = options.get("constants")
        if not isinstance(constants, dict) or constants.get("kind") not in kinds:
            return [f"converter: spc-reports needs the kind as a constant: one of {', '.join(kinds)}"]
        return []

    def header(self, header: list[str]) -> list[str]:
        named = []
        for column in header:
            speed = self.SPEED_HEADER.match(normalise_header(column))
            if speed and self.kind_value == StormEvent.Kind.WIND:
                unit = speed["unit"]
                if unit not in (None, "mph", *self.KNOTS):
                    raise ImportFileError(f"the speed column {column!r} names a unit other than mph or knots")
                self.knots = unit in self.KNOTS
                column = "Speed"
            named.append(column)
        return named

    def convert(self, frame: pd.DataFrame) -> Converted:
        frame = frame.copy()
        rejects = []
        magnitude = stripped(frame, "magnitude")
        if self.kind_value == StormEvent.Kind.WIND:
            unknown = magnitude.str.upper().isin(UNKNOWN_RATINGS)
            frame.loc[unknown, "magnitude"] = str(UNKNOWN_MPH["wind"])
            if self.knots:
                knots = any_number(magnitude).values
                frame.loc[knots.notna(), "magnitude"] = whole_mph(knots[knots.notna()] * MPH_PER_KNOT)
        elif self.kind_value == StormEvent.Kind.TORNADO:
            mph, unrated = tornado_mph(magnitude)
            frame["magnitude"] = mph.where(~unrated, magnitude)
            reason = "not a tornado rating (EF0 to EF5, F0 to F5, UNK)"
            rejects.append(rejects_frame(frame, unrated, "magnitude", magnitude, reason))

        written = stripped(frame, "Time")
        time = written.str.zfill(4)
        timed = (written != "") & time.str.fullmatch(r"([01]\d|2[0-3])[0-5]\d")
        rejects.append(rejects_frame(frame, ~timed, "Time", written, "not a time of day (HHMM, UTC)"))
        lat, lon = stripped(frame, "latitude"), stripped(frame, "longitude")
        unplaced = (lat == "") | (lon == "")
        reason = "no coordinates (Lat/Lon): a storm is placed by a point"
        rejects.append(rejects_frame(frame, unplaced, "latitude", "", reason))

        point = two_decimals(lat).str[:12] + "," + two_decimals(lon).str[:12]
        frame["event_id"] = f"spc-{self.kind_value}-{self.date:%Y%m%d}-" + time + "Z-" + point
        frame["event_date"] = self.date.isoformat()
        refused = ~timed | unplaced
        if self.kind_value == StormEvent.Kind.TORNADO:
            refused |= unrated
        return Converted(frame=frame[~refused], skipped=0, rejects=joined(rejects))


CONVERTERS: dict[str, type[Converter]] = {converter.name: converter for converter in (NoaaStormEvents, SpcReports)}


class ProfileReader:
    """A profile applied to one file: the columns it reads and the conversion of each chunk.

    Made once the header is read; ImportFileError (nothing imported) when the profile cannot be applied.
    """

    def __init__(
        self, *, profile: ImportProfile, importer: Importer, header: list[str], path: Path, as_of: dt.date
    ) -> None:
        self.name = profile.name
        try:
            import_profile_check(profile=profile, importer=importer)
        except ValidationError as error:
            messages = [message for messages in error.message_dict.values() for message in messages]
            raise ImportFileError(f"profile {profile.name}: {'; '.join(messages)}") from None
        options = profile.options
        self.column_map: dict[str, str] = dict(profile.column_map)
        self.constants = {name: constant_text(value) for name, value in options.get("constants", {}).items()}
        self.multiply: dict[str, float] = dict(options.get("multiply", {}))
        self.date_format: str | None = options.get("date_format")
        self.columns = {column.name: column for column in importer.columns()}
        self.converter: Converter | None = None
        if "converter" in options:
            converter = CONVERTERS[options["converter"]]
            try:
                self.converter = converter(options=options, path=path, header=header, as_of=as_of)
            except ImportFileError as error:
                raise ImportFileError(f"profile {profile.name}: {error}") from None
        self.inputs: tuple[str, ...] = self.converter.inputs if self.converter else ()
        # Canonical columns every row has a value of, whatever the file's columns.
        self.provided: frozenset[str] = frozenset(self.constants) | frozenset(
            self.converter.produces if self.converter else ()
        )

    def header(self, header: list[str]) -> list[str]:
        """The file's header as the column map reads it (a converter may rename a column)."""
        if self.converter is None:
            return header
        try:
            header = self.converter.header(header)
        except ImportFileError as error:
            raise ImportFileError(f"profile {self.name}: {error}") from None
        present = {normalise_header(column) for column in header}
        missing = [name for name in self.inputs if normalise_header(name) not in present]
        if missing:
            raise ImportFileError(
                f"profile {self.name}: the file has no column {', '.join(missing)}, which its converter "
                f"{self.converter.name} reads (the file has: {', '.join(header)})"
            )
        return header

    def key_columns(self, key: tuple[str, ...]) -> tuple[str, ...] | None:
        """The columns to read to know the rows' keys (None: all of them, as a converter needs)."""
        return None if self.converter else key

    def apply(self, frame: pd.DataFrame) -> Converted:
        """The chunk's text as the column parsers read it (row labels kept: line = label + 2)."""
        frame = frame.copy()
        for name, value in self.constants.items():
            frame[name] = value
        rejects = []
        if self.date_format:
            for name, column in self.columns.items():
                if column.sql_type == "date" and name in frame and name not in self.provided:
                    frame[name], refused = self.dates(frame[name])
                    rejects.append(refused)
        for name, factor in self.multiply.items():
            if name in frame and name not in self.constants:
                frame[name] = multiplied(frame[name], factor, whole=self.columns[name].sql_type in WHOLE_SQL_TYPES)
        refused = joined(rejects)
        frame = frame.drop(index=refused.index.unique())
        skipped = 0
        if self.converter is not None and len(frame):
            converted = self.converter.convert(frame)
            frame, skipped = converted.frame, converted.skipped
            refused = joined([refused, converted.rejects])
        return Converted(frame=frame, skipped=skipped, rejects=refused.sort_values("line", kind="stable"))

    def dates(self, text: pd.Series) -> tuple[pd.Series, pd.DataFrame]:
        """Dates written in the profile's date_format, as ISO text; rejects for the others."""
        date_format = self.date_format

        def parse_distinct(values: pd.Series) -> f.Parsed:
            parsed = pd.to_datetime(values, format=date_format, errors="coerce")
            reasons = f.no_reasons(values.index)
            f.add_reason(reasons, parsed.isna() & (values != ""), f"not a date in the format {date_format}")
            return f.Parsed(parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), values).astype(object), reasons)

        parsed = f.by_distinct_value(text.astype(str), parse_distinct)
        bad = parsed.reasons.notna()
        refused = pd.DataFrame(
            {"line": text.index[bad] + 2, "column": text.name, "value": text[bad], "reason": parsed.reasons[bad]},
            index=text.index[bad],
        )
        return parsed.values, refused


def multiplied(text: pd.Series, factor: float, *, whole: bool) -> pd.Series:
    """Numbers (as the column parsers read them: 1,234.5 or $350,000) times `factor`, as text; other
    values stay as they are for the parser to refuse. Whole-number columns get whole numbers."""
    numbers = any_number(text).values * factor
    given = numbers.notna()
    result = text.astype(object).copy()
    if given.any():
        values = numbers[given]
        result[given] = values.round().astype("Int64").astype(str) if whole else values.round(9).astype(str)
    return result
