"""Reads of scoring data for callers outside this app's models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from django.db import connection, transaction
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from core.text import sentence
from scoring import geo
from scoring.bulk import copy_frame, id_range_plan
from scoring.features import STORM_FEATURES
from scoring.models import (
    EvaluationRun,
    ImportRun,
    Permit,
    Property,
    Score,
    ScoringModel,
    ScoringRun,
    StormEvent,
    Trade,
    ZipCode,
)


@dataclass(frozen=True)
class ZipReference:
    """The ZIP reference table in the shapes an import needs."""

    codes: frozenset[str]
    states: frozenset[str]
    places: pd.DataFrame  # index: ZIP code; columns: city, state
    centroid_codes: np.ndarray  # residential (standard, active) ZIPs only
    centroid_lat: np.ndarray
    centroid_lon: np.ndarray


def zip_reference() -> ZipReference:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT code, city, state, kind, active, latitude, longitude FROM {ZipCode._meta.db_table}")
        rows = cursor.fetchall()
    frame = pd.DataFrame(rows, columns=["code", "city", "state", "kind", "active", "latitude", "longitude"])
    # PO box, unique and military ZIPs have no homes; their centroids would attract the wrong properties.
    residential = frame[(frame["kind"] == ZipCode.Kind.STANDARD) & frame["active"]]
    return ZipReference(
        codes=frozenset(frame["code"]),
        states=frozenset(frame["state"]),
        places=frame.set_index("code")[["city", "state"]],
        centroid_codes=residential["code"].to_numpy(),
        centroid_lat=residential["latitude"].to_numpy(dtype=float),
        centroid_lon=residential["longitude"].to_numpy(dtype=float),
    )


def trade_permit_keywords() -> dict[int, list[str]]:
    """Trade id -> keywords that mark a permit as one of that trade's, in a stable order."""
    return {trade.id: trade.permit_keywords for trade in Trade.objects.order_by("id")}


def trade_ids_by_slug() -> dict[str, int]:
    return dict(Trade.objects.values_list("slug", "id"))


def trades_with_active_model() -> QuerySet[Trade]:
    """The trades with an active scoring model, by slug: the ones the nightly run scores and makes leads
    for, and the per-trade schedules cover. One row each (ScoringModel's one_active_per_trade)."""
    return Trade.objects.filter(scoring_models__status=ScoringModel.Status.ACTIVE).order_by("slug")


def trades_reading_storms() -> QuerySet[Trade]:
    """The trades whose active model (or challenger) has a factor on a storm feature: the only ones whose
    scores a storm report can change."""
    return (
        trades_with_active_model()
        .filter(
            scoring_models__status__in=[ScoringModel.Status.ACTIVE, ScoringModel.Status.CHALLENGER],
            scoring_models__factors__feature__in=STORM_FEATURES,
        )
        .distinct()
    )


def trade_challenger(*, trade_id: int) -> ScoringModel | None:
    """The trade's challenger version, if it runs one (ScoringModel's one_challenger_per_trade)."""
    return ScoringModel.objects.filter(trade_id=trade_id, status=ScoringModel.Status.CHALLENGER).first()


def trades_named(slugs: list[str]) -> list[Trade]:
    """The trades with these slugs, each once, in the order given; ValueError naming the unknown ones
    and the trades there are."""
    found = {trade.slug: trade for trade in Trade.objects.filter(slug__in=slugs)}
    unknown = [slug for slug in slugs if slug not in found]
    if unknown:
        known = ", ".join(Trade.objects.order_by("slug").values_list("slug", flat=True))
        raise ValueError(f"unknown trade {', '.join(unknown)}; the trades are {known}")
    return [found[slug] for slug in dict.fromkeys(slugs)]


def residential_zip_frame() -> pd.DataFrame:
    """Standard, active ZIP codes (the ones with homes): code, city, state, latitude, longitude, by code."""
    rows = (
        ZipCode.objects.filter(kind=ZipCode.Kind.STANDARD, active=True)
        .order_by("code")
        .values_list("code", "city", "state", "latitude", "longitude")
    )
    return pd.DataFrame(list(rows), columns=["code", "city", "state", "latitude", "longitude"])


# Partition reads of the scoring engine: one row per property, with the columns of
# scoring.features.PROPERTY_COLUMNS, read through COPY.
SCORING_PROPERTY_TYPES = {
    "id": pa.int64(),
    "zip_code": pa.string(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "year_built": pa.float64(),
    "roof_year": pa.float64(),
    "market_value": pa.float64(),
    "owner_occupied": pa.bool_(),
    "property_type": pa.string(),
    "last_sale_date": pa.date32(),
    "trade_permit_date": pa.date32(),
    "scored": pa.bool_(),
    "digest": pa.int64(),
}
REACH_TYPES = {"id": pa.int64(), "latitude": pa.float64(), "longitude": pa.float64(), "zip_storm": pa.bool_()}
SCORING_STORM_TYPES = {
    "event_date": pa.date32(),
    "kind": pa.string(),
    "magnitude": pa.float64(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "radius_miles": pa.float64(),
    "zip_code": pa.string(),
}


SCORING_PROPERTY_SELECT = f"""
    SELECT p.id, p.zip_code, coalesce(p.latitude, z.latitude), coalesce(p.longitude, z.longitude),
           p.year_built, p.roof_year, p.market_value, p.owner_occupied, p.property_type, p.last_sale_date,
           permit.issued, score.id IS NOT NULL, coalesce(score.digest, 0)
    FROM {{homes}} p
    JOIN {ZipCode._meta.db_table} z ON z.code = p.zip_code
    LEFT JOIN {Score._meta.db_table} score ON score.property_id = p.id AND score.trade_id = %(trade)s
"""
# Spelt out for partitions: the range of the partition's scores in their unique index.
SCORING_SCORE_RANGE = "AND score.property_id BETWEEN %(first)s AND %(last)s"


def scoring_properties(*, trade_id: int, first_id: int, last_id: int, as_of: dt.date) -> pd.DataFrame:
    """The properties with ids in [first_id, last_id] as the engine reads them: coordinates from the
    ZIP centroid where the property has none, the date of the last permit of the trade issued on or
    before `as_of` (through the index scoring_permit_prop_trade, one range scan for the partition),
    and whether the property has a score for the trade with which digest (0 when it has none)."""
    query = (
        SCORING_PROPERTY_SELECT.format(homes=Property._meta.db_table)
        + SCORING_SCORE_RANGE
        + f"""
        LEFT JOIN (
            SELECT property_id, max(issued_date) AS issued FROM {Permit._meta.db_table}
            WHERE property_id BETWEEN %(first)s AND %(last)s AND trade_id = %(trade)s AND issued_date <= %(as_of)s
            GROUP BY property_id
        ) permit ON permit.property_id = p.id
        WHERE p.id BETWEEN %(first)s AND %(last)s
        ORDER BY p.id
        """
    )
    params = {"first": first_id, "last": last_id, "trade": trade_id, "as_of": as_of}
    with transaction.atomic(), connection.cursor() as cursor:
        id_range_plan(cursor)
        return copy_frame(cursor, query, params, SCORING_PROPERTY_TYPES)


def scoring_properties_of(*, trade_id: int, property_ids: list[int], as_of: dt.date) -> pd.DataFrame:
    """The properties with these ids as scoring_properties reads them, their last permit of the trade
    counted as of `as_of` (through scoring_permit_prop_trade, property first): a home's features as they
    stood on a past day, for learning from the leads of that day. The property's own columns are today's
    (the table keeps no history); ages, permits and storms are counted to `as_of`."""
    query = (
        SCORING_PROPERTY_SELECT.format(homes=f"(SELECT * FROM {Property._meta.db_table} WHERE id = ANY(%(ids)s))")
        + f"""
        LEFT JOIN (
            SELECT property_id, max(issued_date) AS issued FROM {Permit._meta.db_table}
            WHERE property_id = ANY(%(ids)s) AND trade_id = %(trade)s AND issued_date <= %(as_of)s
            GROUP BY property_id
        ) permit ON permit.property_id = p.id
        ORDER BY p.id
        """
    )
    params = {"ids": sorted({int(i) for i in property_ids}), "trade": trade_id, "as_of": as_of}
    with connection.cursor() as cursor:
        return copy_frame(cursor, query, params, SCORING_PROPERTY_TYPES)


def scoring_property_sample(*, trade_id: int, size: int, as_of: dt.date, seed: int = 1) -> pd.DataFrame:
    """About `size` properties drawn at random (the same ones for the same seed while the table is
    unchanged), read as scoring_properties reads a partition; for previews of a draft model."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT reltuples FROM pg_class WHERE oid = '{Property._meta.db_table}'::regclass")
        estimate = cursor.fetchone()[0]
        if estimate <= 0:  # never analysed: count
            cursor.execute(f"SELECT count(*) FROM {Property._meta.db_table}")
            estimate = cursor.fetchone()[0]
        percent = min(100.0, 100.0 * size / max(estimate, 1))
        homes = f"(SELECT * FROM {Property._meta.db_table} TABLESAMPLE BERNOULLI (%(percent)s) REPEATABLE (%(seed)s))"
        query = (
            SCORING_PROPERTY_SELECT.format(homes=homes)
            + f"""
            LEFT JOIN LATERAL (
                SELECT max(issued_date) AS issued FROM {Permit._meta.db_table}
                WHERE property_id = p.id AND trade_id = %(trade)s AND issued_date <= %(as_of)s
            ) permit ON true
            ORDER BY p.id LIMIT %(size)s
            """
        )
        params = {"percent": percent, "seed": seed, "trade": trade_id, "as_of": as_of, "size": size}
        return copy_frame(cursor, query, params, SCORING_PROPERTY_TYPES)


def scoring_storms(*, as_of: dt.date, window_days: int, near: tuple[float, float, str] | None = None) -> pd.DataFrame:
    """Storm reports of the `window_days` days up to `as_of`, with the columns of
    scoring.features.STORM_COLUMNS; with `near` (latitude, longitude, ZIP), only those that can reach
    that point: its ZIP's reports and those whose radius spans its latitude and longitude."""
    where = ["event_date > %(since)s", "event_date <= %(as_of)s"]
    params: dict[str, Any] = {"since": as_of - dt.timedelta(days=window_days), "as_of": as_of}
    if near is not None:
        params.update(latitude=near[0], longitude=near[1], zip=near[2], miles_per_degree=geo.MILES_PER_DEGREE)
        where.append(
            "(zip_code = %(zip)s OR (abs(latitude - %(latitude)s) * %(miles_per_degree)s <= radius_miles"
            " AND abs(longitude - %(longitude)s) * %(miles_per_degree)s * cos(radians(%(latitude)s)) <= radius_miles))"
        )
    query = f"""
        SELECT event_date, kind, magnitude, latitude, longitude, radius_miles, zip_code
        FROM {StormEvent._meta.db_table} WHERE {" AND ".join(where)}
    """
    with connection.cursor() as cursor:
        return copy_frame(cursor, query, params, SCORING_STORM_TYPES)


def properties_reached(*, storm_ids: list[int], as_of: dt.date, window_days: int) -> list[int]:
    """The ids of the properties that the storms `storm_ids` of the `window_days` days up to `as_of` reach, as
    the storm features count reach (scoring.features.storm_exposure): within a located storm's radius
    (geo.within_radius, on the property's coordinates or its ZIP's centroid), or in a ZIP-wide storm's ZIP.
    PostgreSQL reads only the properties within each located storm's bounding box (1% wider) or in a ZIP-wide
    storm's ZIP, one scan of the table; the exact distances are then computed here."""
    since = as_of - dt.timedelta(days=window_days)
    storms = list(
        StormEvent.objects.filter(pk__in=storm_ids, event_date__gt=since, event_date__lte=as_of).values_list(
            "latitude", "longitude", "radius_miles", "zip_code"
        )
    )
    located = [(lat, lon, miles) for lat, lon, miles, _ in storms if lat is not None and lon is not None and miles]
    zips = sorted({zip_code for lat, _, _, zip_code in storms if lat is None})
    if not located and not zips:
        return []
    lat = "coalesce(p.latitude, z.latitude)"
    lon = "coalesce(p.longitude, z.longitude)"
    boxes = []
    for centre_lat, centre_lon, miles in located:
        lat_reach = miles * 1.01 / geo.MILES_PER_DEGREE
        lon_reach = lat_reach / max(np.cos(np.radians(centre_lat)), 0.01)
        boxes.append((centre_lat - lat_reach, centre_lat + lat_reach, centre_lon - lon_reach, centre_lon + lon_reach))
    where: list[str] = ["p.zip_code = ANY(%(zips)s)"]
    params: dict[str, Any] = {"zips": zips}
    if boxes:
        # The box around them all first (one test a home, most homes fail it), then each storm's box.
        every = [min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes), max(b[3] for b in boxes)]
        each = " OR ".join(f"({lat} BETWEEN %(b{n}_0)s AND %(b{n}_1)s AND {lon} BETWEEN %(b{n}_2)s AND %(b{n}_3)s)"
                           for n in range(len(boxes)))  # fmt: skip
        where.append(f"({lat} BETWEEN %(all_0)s AND %(all_1)s AND {lon} BETWEEN %(all_2)s AND %(all_3)s AND ({each}))")
        params |= {f"all_{i}": value for i, value in enumerate(every)}
        params |= {f"b{n}_{i}": value for n, box in enumerate(boxes) for i, value in enumerate(box)}
    query = f"""SELECT p.id, {lat}, {lon}, p.zip_code = ANY(%(zips)s)
        FROM {Property._meta.db_table} p JOIN {ZipCode._meta.db_table} z ON z.code = p.zip_code
        WHERE {" OR ".join(where)}"""
    with connection.cursor() as cursor:
        frame = copy_frame(cursor, query, params, REACH_TYPES)
    if frame.empty:
        return []
    reached = frame["zip_storm"].to_numpy(dtype=bool, copy=True)
    if located:
        centres = np.array(located, dtype=float)
        for point, _, _ in geo.within_radius(
            frame["latitude"].to_numpy(dtype=float),
            frame["longitude"].to_numpy(dtype=float),
            centres[:, 0],
            centres[:, 1],
            centres[:, 2],
        ):
            reached[point] = True
    return sorted(frame["id"].to_numpy(dtype=np.int64)[reached].tolist())


def properties_changed_by(*, imports: Sequence[ImportRun], as_of: dt.date) -> list[int]:
    """The properties whose scores the imports may have changed: those whose own data they changed, and
    those their changed storms reach within the longest storm window of the trades' active models (a storm
    older than every window changes no score)."""
    changed = {pk for run in imports for pk in run.changed_properties}
    storm_ids = sorted({pk for run in imports for pk in run.changed_storms})
    windows = ScoringModel.objects.filter(status=ScoringModel.Status.ACTIVE).values_list("storm_window_days", flat=True)
    if storm_ids and windows:
        changed.update(properties_reached(storm_ids=storm_ids, as_of=as_of, window_days=max(windows)))
    return sorted(changed)


def properties_zip_codes(*, property_ids: Sequence[int]) -> list[str]:
    """The ZIP codes of these properties, each once (one array parameter: a list of 20,000 ids as parameters
    costs PostgreSQL half a second to parse)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT zip_code FROM {Property._meta.db_table} WHERE id = ANY(%s::bigint[]) ORDER BY 1",
            [list(property_ids)],
        )
        return [code for (code,) in cursor.fetchall()]


def property_id_ranges(*, rows: int) -> list[tuple[int, int]]:
    """Consecutive id ranges covering every property, `rows` properties each (the last may have fewer),
    from one scan of the primary key index."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT min(id), max(id) FROM (
                SELECT id, (row_number() OVER (ORDER BY id) - 1) / %s AS part FROM {Property._meta.db_table}
            ) numbered GROUP BY part ORDER BY part
            """,
            [rows],
        )
        ranges: list[tuple[int, int]] = cursor.fetchall()
        return ranges


def scoring_runs_latest(*, per_trade: int = 2) -> dict[str, list[ScoringRun]]:
    """Per trade slug (every trade, by name), its last `per_trade` succeeded full scoring runs, newest first:
    the runs whose score distributions show drift from one to the next (an incremental run's few properties
    are no market's distribution)."""
    runs = (
        ScoringRun.objects.filter(status=ScoringRun.Status.SUCCEEDED, kind=ScoringRun.Kind.FULL)
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("trade_id")], order_by=[F("started_at").desc(), F("id").desc()])
        )
        .filter(rank__lte=per_trade)
        .select_related("trade", "model")
        .order_by("trade__name", "-started_at", "-id")
    )
    latest: dict[str, list[ScoringRun]] = {
        slug: [] for slug in Trade.objects.order_by("name").values_list("slug", flat=True)
    }
    for run in runs:
        latest[run.trade.slug].append(run)
    return latest


EVALUATION_TREND_RUNS = 30  # evaluation runs a trend shows, the newest


def evaluation_runs_of(*, model_id: int, limit: int = EVALUATION_TREND_RUNS) -> list[EvaluationRun]:
    """The version's last `limit` evaluation runs, oldest first: a trend reads left to right."""
    runs = list(EvaluationRun.objects.filter(model_id=model_id).select_related("trade", "model")[:limit])
    return runs[::-1]


def evaluation_trends_active(*, limit: int = EVALUATION_TREND_RUNS) -> dict[str, list[EvaluationRun]]:
    """Per trade slug with an active version (by trade name): that version's last `limit` evaluation runs,
    oldest first; an empty list for an active version never evaluated."""
    runs = (
        EvaluationRun.objects.filter(model__status=ScoringModel.Status.ACTIVE)
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("model_id")], order_by=[F("created_at").desc(), F("id").desc()])
        )
        .filter(rank__lte=limit)
        .select_related("trade", "model")
        .order_by("trade__name", "created_at", "id")
    )
    trends: dict[str, list[EvaluationRun]] = {
        slug: [] for slug in trades_with_active_model().values_list("slug", flat=True)
    }
    for run in runs:
        trends.setdefault(run.trade.slug, []).append(run)
    return trends


@dataclass(frozen=True)
class EvaluationComparison:
    """A trade's active version against its challenger, each on its own leads over the same period."""

    active: ScoringModel
    challenger: ScoringModel
    active_run: EvaluationRun | None  # the active version's latest run over the challenger_run's period
    challenger_run: EvaluationRun | None  # the challenger's latest run
    apart: bool | None  # the AUCs differ beyond both 95% intervals; None: not both known
    statement: str


def _auc_known(run: EvaluationRun) -> tuple[float, float, float] | None:
    """The run's AUC and its interval, when all three are known."""
    if run.auc is None or run.auc_low is None or run.auc_high is None:
        return None
    return run.auc, run.auc_low, run.auc_high


def _auc_shown(run: EvaluationRun) -> str:
    return f"AUC {run.auc:.3f} [{run.auc_low:.3f}, {run.auc_high:.3f}]"


def evaluation_comparison(*, trade_id: int) -> EvaluationComparison | None:
    """The trade's active and challenger versions' latest evaluations over the same period, and whether the
    difference of their AUCs is beyond both intervals (the intervals do not overlap), in a plain sentence;
    None when the trade has no challenger (or no active version)."""
    versions = {
        model.status: model
        for model in ScoringModel.objects.select_related("trade").filter(
            trade_id=trade_id, status__in=[ScoringModel.Status.ACTIVE, ScoringModel.Status.CHALLENGER]
        )
    }
    active, challenger = versions.get(ScoringModel.Status.ACTIVE), versions.get(ScoringModel.Status.CHALLENGER)
    if active is None or challenger is None:
        return None
    challenger_run = EvaluationRun.objects.select_related("model").filter(model=challenger).first()
    active_run = (
        EvaluationRun.objects.select_related("model")
        .filter(model=active, first_day=challenger_run.first_day, last_day=challenger_run.last_day)
        .first()
        if challenger_run
        else None
    )
    names = f"the challenger, v{challenger.version}, and the active version, v{active.version},"
    apart = None
    if challenger_run is None:
        statement = f"No evaluation of the challenger, v{challenger.version}, yet: nothing to compare."
    elif active_run is None:
        statement = (
            f"No evaluation of the active version, v{active.version}, over the challenger's period "
            f"({challenger_run.first_day} to {challenger_run.last_day}) yet: nothing to compare."
        )
    elif (challenger_auc := _auc_known(challenger_run)) is None or (active_auc := _auc_known(active_run)) is None:
        missing = [
            f"v{run.model.version} ({run.figures.get('missing', {}).get('auc', 'no interval')})"
            for run in (challenger_run, active_run)
            if _auc_known(run) is None
        ]
        statement = f"Not comparable yet: no AUC for {' and '.join(missing)}."
    else:
        (auc_c, low_c, high_c), (auc_a, low_a, high_a) = challenger_auc, active_auc
        apart = low_c > high_a or low_a > high_c
        roles = {challenger_run.pk: "the challenger", active_run.pk: "the active version"}
        better, worse = (challenger_run, active_run) if auc_c > auc_a else (active_run, challenger_run)
        if apart:
            statement = (
                f"{sentence(roles[better.pk])}, v{better.model.version}, ranks its leads better than "
                f"{roles[worse.pk]}, v{worse.model.version}: {_auc_shown(better)} against {_auc_shown(worse)}, "
                "a difference beyond both 95% intervals."
            )
        else:
            statement = (
                f"{sentence(names)} differ within their 95% intervals ({_auc_shown(challenger_run)} against "
                f"{_auc_shown(active_run)}): they cannot be told apart yet."
            )
    return EvaluationComparison(
        active=active, challenger=challenger, active_run=active_run, challenger_run=challenger_run, apart=apart,
        statement=statement,
    )  # fmt: skip
