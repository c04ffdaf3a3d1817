"""Maps drawn on the server as inline SVG, as the charts are (core.charts): points at latitude and longitude,
no map tiles, no script, no network.

A point is a circle coloured by its CSS class (the pages' Content-Security-Policy refuses inline styles;
leadengine/static/leadengine/admin.css gives the colours), with a <title> for its tooltip and screen
readers, and optionally a link. Latitude and longitude are projected equirectangularly: longitude scaled by
the cosine of the middle latitude, so that a metro's shape is kept, which is all a market of a few states
needs (no projection library, a few multiplications per point)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PADDING = 10  # room around the outermost points, so that their circles are whole
REGION_REACH = 1.0  # degrees: points this close (through neighbours) are drawn on one map

T = TypeVar("T")


@dataclass(frozen=True)
class MapPoint:
    latitude: float
    longitude: float
    css_class: str
    title: str
    href: str = ""


@dataclass(frozen=True)
class Projection:
    """Degrees to the map's pixels: x grows east, y grows south."""

    west: float
    north: float
    x_scale: float  # pixels per degree of longitude (the cosine of the middle latitude applied)
    y_scale: float  # pixels per degree of latitude
    x_offset: float  # centres a map whose height, not its width, set the scale
    height: int

    def __call__(self, latitude: float, longitude: float) -> tuple[float, float]:
        return (
            self.x_offset + (longitude - self.west) * self.x_scale,
            PADDING + (self.north - latitude) * self.y_scale,
        )


def projection(points: Sequence[MapPoint], *, width: int, max_height: int, min_height: int = 120) -> Projection:
    """The equirectangular projection that fits `points` into `width` pixels and at most `max_height`,
    north up, with one scale for both axes (after the longitude's cosine) so that distances look alike
    both ways. A single point, or points on one line, sit in the middle."""
    south, north = min(p.latitude for p in points), max(p.latitude for p in points)
    west, east = min(p.longitude for p in points), max(p.longitude for p in points)
    cosine = math.cos(math.radians((south + north) / 2))
    span_x, span_y = (east - west) * cosine, north - south
    room_x, room_y = width - 2 * PADDING, max_height - 2 * PADDING
    scales = [room / span for room, span in ((room_x, span_x), (room_y, span_y)) if span > 0]
    scale = min(scales) if scales else 1.0
    height = max(min_height, math.ceil(span_y * scale) + 2 * PADDING)
    x_offset = (width - span_x * scale) / 2
    if span_y == 0:  # one row of points: in the middle of the minimum height
        north += (height / 2 - PADDING) / scale
    return Projection(west, north, scale * cosine, scale, x_offset, height)


def point_radius(count: int, width: int, height: int) -> float:
    """Circles that stay apart on a dense map and are easy to hit on a sparse one: a quarter of the side of
    each point's share of the area, between 2 and 7 pixels."""
    return round(min(7.0, max(2.0, math.sqrt(width * height / max(count, 1)) / 4)), 1)


def point_map(label: str, points: Sequence[MapPoint], *, width: int = 900, max_height: int = 560) -> SafeString:
    """The points as circles on an SVG map `width` wide (its height follows the points' extent), drawn in
    the order given (the last on top); each circle has its title and, with an href, is a link."""
    if not points:
        return mark_safe(
            f'<svg class="point-map" role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {width} 60" width="{width}" height="60"><title>{escape(label)}</title>'
            f'<text class="chart-empty" x="{width / 2:.0f}" y="34" text-anchor="middle">No ZIPs to show</text></svg>'
        )
    project = projection(points, width=width, max_height=max_height)
    radius = point_radius(len(points), width, project.height)
    body = []
    for point in points:
        x, y = project(point.latitude, point.longitude)
        circle = (
            f'<circle class="{escape(point.css_class)}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}">'
            f"<title>{escape(point.title)}</title></circle>"
        )
        body.append(f'<a href="{escape(point.href)}">{circle}</a>' if point.href else circle)
    return mark_safe(
        f'<svg class="point-map" role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {project.height}" width="{width}" height="{project.height}" '
        f'preserveAspectRatio="xMidYMid meet"><title>{escape(label)}</title>'
        f'<rect class="point-map-ground" width="{width}" height="{project.height}"/>{"".join(body)}</svg>'
    )


def regions(
    items: Sequence[T], position: Callable[[T], tuple[float, float]], *, reach: float = REGION_REACH
) -> list[list[T]]:
    """`items` grouped into regions, biggest first, each in the order given: two items whose positions
    (latitude, longitude) fall in the same or touching cells of a grid `reach` degrees wide share a region,
    and so do their neighbours' neighbours (single linkage on the grid). A market of several metros a
    thousand miles apart is then drawn one map per metro, each at its own scale, rather than as dots on a
    map of the country."""
    cell_of = [(math.floor(lat / reach), math.floor(lon / reach)) for lat, lon in map(position, items)]
    parent = {cell: cell for cell in cell_of}

    def root(cell: tuple[int, int]) -> tuple[int, int]:
        while parent[cell] != cell:
            parent[cell] = parent[parent[cell]]
            cell = parent[cell]
        return cell

    for y, x in list(parent):
        for neighbour in ((y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
            if neighbour in parent:
                parent[root(neighbour)] = root((y, x))
    grouped: dict[tuple[int, int], list[T]] = {}
    for item, cell in zip(items, cell_of, strict=True):
        grouped.setdefault(root(cell), []).append(item)
    return sorted(grouped.values(), key=len, reverse=True)


def map_legend(keys: Sequence[tuple[str, str]]) -> SafeString:
    """(CSS class, label) of each kind of point, as swatches the stylesheet colours like the circles."""
    items = "".join(
        f'<span class="map-key"><span class="map-swatch {escape(css_class)}"></span>{escape(name)}</span>'
        for css_class, name in keys
    )
    return mark_safe(f'<p class="map-legend">{items}</p>')
