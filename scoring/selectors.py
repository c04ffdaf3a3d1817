"""Reads of scoring data for callers outside this app's models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection

from scoring.models import Trade, ZipCode


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


def residential_zip_frame() -> pd.DataFrame:
    """Standard, active ZIP codes (the ones with homes): code, city, state, latitude, longitude, by code."""
    rows = (
        ZipCode.objects.filter(kind=ZipCode.Kind.STANDARD, active=True)
        .order_by("code")
        .values_list("code", "city", "state", "latitude", "longitude")
    )
    return pd.DataFrame(list(rows), columns=["code", "city", "state", "latitude", "longitude"])
