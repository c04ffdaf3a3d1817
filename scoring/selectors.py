"""Reads of scoring data for callers outside this app's models."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from django.db import connection, transaction
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from scoring import geo
from scoring.bulk import copy_frame, id_range_plan
from scoring.models import Permit, Property, Score, ScoringModel, ScoringRun, StormEvent, Trade, ZipCode


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
    """Per trade slug (every trade, by name), its last `per_trade` succeeded scoring runs, newest first: the
    runs whose score distributions show drift from one to the next."""
    runs = (
        ScoringRun.objects.filter(status=ScoringRun.Status.SUCCEEDED)
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
