"""Distances on the Earth's surface, vectorised with numpy and scipy (no ORM, no PostGIS)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

EARTH_RADIUS_MILES = 3958.8


def haversine_miles(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in miles between points given in degrees (arrays broadcast)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


class SphereIndex:
    """Reference points in a k-d tree of their 3-D unit vectors, for nearest-point searches.

    The straight-line (chord) distance between two unit vectors grows with their great-circle distance,
    so the nearest by chord is the nearest on the sphere, across the antimeridian and the poles alike,
    and the tree answers in logarithmic time where a scan of every reference point would not.
    """

    def __init__(self, ref_lat: np.ndarray, ref_lon: np.ndarray) -> None:
        self.ref_lat = np.array(ref_lat, dtype=float)
        self.ref_lon = np.array(ref_lon, dtype=float)
        self.tree = cKDTree(unit_vectors(self.ref_lat, self.ref_lon))

    def holds(self, ref_lat: np.ndarray, ref_lon: np.ndarray) -> bool:
        """Whether this index was built on these reference points (same values, in the same order)."""
        return np.array_equal(self.ref_lat, ref_lat) and np.array_equal(self.ref_lon, ref_lon)

    def nearest(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """For each point, the index of the nearest reference point and its great-circle miles."""
        lat = np.asarray(lat, dtype=float)
        lon = np.asarray(lon, dtype=float)
        if not len(lat):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=float)
        _, index = self.tree.query(unit_vectors(lat, lon))
        index = index.astype(np.int64, copy=False)
        return index, haversine_miles(lat, lon, self.ref_lat[index], self.ref_lon[index])


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points given in degrees as rows (x, y, z) of unit vectors from the Earth's centre."""
    lat = np.radians(np.asarray(lat, dtype=float))
    lon = np.radians(np.asarray(lon, dtype=float))
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)))


# The index of the last reference set searched: an import searches the same ZIP centroids chunk after
# chunk, and building the tree costs as much as searching tens of thousands of points.
_last_index: SphereIndex | None = None


def nearest(
    lat: npt.ArrayLike, lon: npt.ArrayLike, ref_lat: np.ndarray, ref_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the index of the nearest reference point and its distance in miles.

    Searched in a SphereIndex, kept for the next call with the same reference points (compared by
    value, which costs far less than a new tree), so the rows of a file without ZIPs get theirs at
    import speed. Points must be finite. The miles are exact great-circle distances; between reference
    points at the same distance either may be returned.
    """
    global _last_index
    index = _last_index
    if index is None or not index.holds(ref_lat, ref_lon):
        index = _last_index = SphereIndex(ref_lat, ref_lon)
    return index.nearest(lat, lon)


MILES_PER_DEGREE = EARTH_RADIUS_MILES * np.pi / 180
GRID_DEGREES = 0.02  # about 1.4 miles of latitude: a cell is smaller than most storm radii


def within_radius(
    lat: np.ndarray,
    lon: np.ndarray,
    centre_lat: np.ndarray,
    centre_lon: np.ndarray,
    radius_miles: np.ndarray,
    *,
    max_pairs: int = 4_000_000,
):
    """Every (point, circle) pair where the point lies within the circle, in batches.

    Yields (point index, circle index, miles) arrays. Points are sorted once into a grid of
    GRID_DEGREES cells keyed row by row, so the points of one grid row between two columns are one
    contiguous slice found by binary search. Each circle is cut into the grid rows it spans, and in
    each row only the columns its chord at that row covers are searched; only the points in those
    slices get an exact distance. Circles are taken in batches of at most about `max_pairs` candidate
    pairs, which bounds memory whatever the number of circles. Distances are equirectangular, within
    0.1% of great-circle distances at storm scales (< 100 miles).
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    centre_lat = np.asarray(centre_lat, dtype=float)
    centre_lon = np.asarray(centre_lon, dtype=float)
    radius_miles = np.asarray(radius_miles, dtype=float)
    if not len(lat) or not len(centre_lat):
        return
    columns = int(np.ceil(360 / GRID_DEGREES)) + 2
    row = np.floor((lat + 90) / GRID_DEGREES).astype(np.int64)
    column = np.floor((lon + 180) / GRID_DEGREES).astype(np.int64)
    order = np.argsort(row * columns + column, kind="stable")
    keys = (row * columns + column)[order]
    sorted_lat, sorted_lon = lat[order], lon[order]

    # Miles per degree of longitude at each circle's latitude, and the grid rows each circle spans.
    lon_miles = MILES_PER_DEGREE * np.maximum(np.cos(np.radians(centre_lat)), 0.01)
    lat_reach = radius_miles / MILES_PER_DEGREE
    first_row = np.floor((centre_lat - lat_reach + 90) / GRID_DEGREES).astype(np.int64)
    rows = np.floor((centre_lat + lat_reach + 90) / GRID_DEGREES).astype(np.int64) - first_row + 1

    circle = np.repeat(np.arange(len(centre_lat)), rows)
    grid_row = first_row[circle] + (np.arange(len(circle)) - np.repeat(np.cumsum(rows) - rows, rows))
    # The circle's half-width along the row's edge nearest its centre (its full radius when the row
    # holds the centre), widened by 1% for the equirectangular approximation.
    row_south = grid_row * GRID_DEGREES - 90
    gap = np.clip(centre_lat[circle], row_south, row_south + GRID_DEGREES) - centre_lat[circle]
    half_width = np.sqrt(np.maximum(radius_miles[circle] ** 2 - (gap * MILES_PER_DEGREE) ** 2, 0)) * 1.01
    lon_reach = half_width / lon_miles[circle]
    first_column = np.floor((centre_lon[circle] - lon_reach + 180) / GRID_DEGREES).astype(np.int64)
    last_column = np.floor((centre_lon[circle] + lon_reach + 180) / GRID_DEGREES).astype(np.int64)
    start = np.searchsorted(keys, grid_row * columns + first_column, side="left")
    stop = np.searchsorted(keys, grid_row * columns + last_column, side="right")
    counts = stop - start
    keep = counts > 0
    circle, start, counts = circle[keep], start[keep], counts[keep]
    radius_squared = radius_miles**2

    # Batches of whole slices, cut where the running count of candidates passes max_pairs.
    running = np.cumsum(counts)
    cuts = np.searchsorted(running, np.arange(max_pairs, running[-1] if len(running) else 0, max_pairs), side="right")
    for batch in np.split(np.arange(len(counts)), cuts):
        if not len(batch):
            continue
        batch_counts = counts[batch]
        offsets = np.arange(batch_counts.sum()) - np.repeat(np.cumsum(batch_counts) - batch_counts, batch_counts)
        candidate = np.repeat(start[batch], batch_counts) + offsets
        pair_circle = np.repeat(circle[batch], batch_counts)
        north = (sorted_lat[candidate] - centre_lat[pair_circle]) * MILES_PER_DEGREE
        east = (sorted_lon[candidate] - centre_lon[pair_circle]) * lon_miles[pair_circle]
        squared = north * north + east * east
        inside = squared <= radius_squared[pair_circle]
        yield order[candidate[inside]], pair_circle[inside], np.sqrt(squared[inside])
