"""The nearest-centroid search that gives a property without a ZIP the ZIP of its coordinates, checked
against a scan of every centroid on the real residential ZIP reference."""

from __future__ import annotations

import numpy as np
import pytest

from scoring import geo, selectors

# Two centroids this close are equally near for any use of a ZIP (a few millimetres).
TIE_MILES = 1e-6


def brute_force_nearest(lat, lon, ref_lat, ref_lon, *, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Every point's great-circle distance to every reference point, and the smallest: the answer the
    indexed search must give."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    index = np.empty(len(lat), dtype=np.int64)
    miles = np.empty(len(lat), dtype=float)
    for start in range(0, len(lat), block):
        rows = slice(start, start + block)
        distances = geo.haversine_miles(lat[rows, None], lon[rows, None], ref_lat[None, :], ref_lon[None, :])
        best = distances.argmin(axis=1)
        index[rows] = best
        miles[rows] = distances[np.arange(len(best)), best]
    return index, miles


def assert_same_nearest(lat, lon, ref_lat, ref_lon) -> tuple[np.ndarray, np.ndarray]:
    """The indexed search finds, for every point, a centroid as near as the scan's, and reports its
    exact distance; where the two pick different centroids, those are equally near (a tie)."""
    index, miles = geo.nearest(lat, lon, ref_lat, ref_lon)
    expected_index, expected_miles = brute_force_nearest(lat, lon, ref_lat, ref_lon)

    assert index.shape == miles.shape == (len(lat),)
    np.testing.assert_allclose(miles, expected_miles, rtol=0, atol=TIE_MILES)
    np.testing.assert_array_equal(miles, geo.haversine_miles(lat, lon, ref_lat[index], ref_lon[index]))
    differs = index != expected_index
    picked = geo.haversine_miles(lat[differs], lon[differs], ref_lat[index[differs]], ref_lon[index[differs]])
    np.testing.assert_allclose(picked, expected_miles[differs], rtol=0, atol=TIE_MILES)
    return index, miles


@pytest.fixture
def centroids(zip_codes):
    """The residential ZIP centroids, as the property importer reads them."""
    zips = selectors.zip_reference()
    return zips.centroid_codes, zips.centroid_lat, zips.centroid_lon


def test_points_scattered_around_real_centroids_get_the_same_centroid_as_a_full_scan(centroids):
    codes, ref_lat, ref_lon = centroids
    rng = np.random.default_rng(20261101)
    # From a few hundred yards (inside the ZIP) to a few hundred miles (far from any ZIP) around
    # centroids drawn from the whole reference.
    picks = rng.integers(0, len(codes), 3_000)
    spread = rng.choice([0.005, 0.05, 0.3, 3.0], size=len(picks))
    lat = np.clip(ref_lat[picks] + rng.normal(0, 1, len(picks)) * spread, -90, 90)
    lon = (ref_lon[picks] + rng.normal(0, 1, len(picks)) * spread + 180) % 360 - 180

    index, miles = assert_same_nearest(lat, lon, ref_lat, ref_lon)

    assert len(codes) > 29_000
    assert (miles < 1).sum() > 500  # many points inside their ZIP, not only far ones
    assert (index == picks).sum() > 1_000  # and close points get back the centroid they were drawn near


def test_edge_points_get_the_same_centroid_as_a_full_scan(centroids):
    codes, ref_lat, ref_lon = centroids
    points = [
        (90.0, 0.0),  # the North Pole: every longitude at once
        (-90.0, 0.0),  # the South Pole, thousands of miles from any ZIP
        (89.999, -150.0),
        (71.2906, -156.7886),  # Utqiagvik, Alaska, the northernmost US town
        (51.88, -176.65),  # Adak, Alaska, the westernmost ZIPs
        (52.0, 179.99),  # across the antimeridian from the Aleutians
        (52.0, -179.99),
        (51.9, 180.0),
        (-14.3, -170.7),  # American Samoa
        (13.45, 144.75),  # Guam, past the antimeridian
        (61.2181, -149.9003),  # Anchorage
        (19.7074, -155.0885),  # Hilo, Hawaii
        (21.3069, -157.8583),  # Honolulu
        (22.0, -159.5),  # Kauai
        (18.4655, -66.1057),  # San Juan, Puerto Rico
        (24.5551, -81.78),  # Key West, Florida
        (0.0, 0.0),  # the Gulf of Guinea, far from every ZIP
    ]
    lat, lon = (np.array(values) for values in zip(*points, strict=True))

    index, miles = assert_same_nearest(lat, lon, ref_lat, ref_lon)

    honolulu = points.index((21.3069, -157.8583))
    assert codes[index[honolulu]].startswith("968")
    anchorage = points.index((61.2181, -149.9003))
    assert codes[index[anchorage]].startswith("995")
    # The Aleutians have no residential ZIP: both sides of the antimeridian, a mile apart, get the same
    # Alaskan centroid at nearly the same distance, found eastward across the line, not the long way round.
    east, west = points.index((52.0, 179.99)), points.index((52.0, -179.99))
    assert codes[index[east]] == codes[index[west]]
    assert codes[index[east]].startswith("99")
    assert abs(miles[east] - miles[west]) < 1.0
    assert miles[east] < 1_500


def test_a_point_exactly_on_a_centroid_is_zero_miles_from_a_centroid_at_that_spot(centroids):
    _, ref_lat, ref_lon = centroids

    index, miles = geo.nearest(ref_lat, ref_lon, ref_lat, ref_lon)

    # Zero, exactly: the distance is computed from the centroid found, not from the tree's chord.
    assert (miles == 0).all()
    # The centroid itself, or another ZIP whose centroid is the same point.
    np.testing.assert_array_equal(ref_lat[index], ref_lat)
    np.testing.assert_array_equal(ref_lon[index], ref_lon)


def test_a_search_on_other_reference_points_uses_those_points_not_the_ones_searched_before(centroids):
    _, ref_lat, ref_lon = centroids
    lat = np.array([40.7128, 34.0522, 61.2181])
    lon = np.array([-74.006, -118.2437, -149.9003])
    geo.nearest(lat, lon, ref_lat, ref_lon)
    western = ref_lon < -100
    west_lat, west_lon = ref_lat[western], ref_lon[western]

    assert_same_nearest(lat, lon, west_lat, west_lon)

    # The same arrays changed in place are different reference points too.
    west_lat[:] = west_lat[::-1].copy()
    west_lon[:] = west_lon[::-1].copy()
    assert_same_nearest(lat, lon, west_lat, west_lon)


def test_chunk_after_chunk_on_the_same_reference_points_reuses_one_index(centroids):
    _, ref_lat, ref_lon = centroids
    rng = np.random.default_rng(7)
    chunks = [(rng.uniform(25, 49, 200), rng.uniform(-124, -67, 200)) for _ in range(3)]

    geo.nearest(*chunks[0], ref_lat, ref_lon)
    index = geo._last_index
    geo.nearest(*chunks[1], ref_lat, ref_lon)
    geo.nearest(*chunks[2], ref_lat.copy(), ref_lon.copy())  # equal values, other arrays

    assert geo._last_index is index
    for lat, lon in chunks:
        assert_same_nearest(lat, lon, ref_lat, ref_lon)


def test_no_points_give_no_answers():
    index, miles = geo.nearest(np.array([]), np.array([]), np.array([40.0]), np.array([-75.0]))

    assert index.dtype == np.int64
    assert index.shape == miles.shape == (0,)
