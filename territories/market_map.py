"""A trade's market on a map: each ZIP of the market (territories.selectors.market_zips) a circle at its
centroid, coloured by what there is to do there (sold, free, free with demand to sell, contractors in
line), and a contractor's own ZIPs outlined. Drawn by core.maps; the colours are the CSS classes below, in
leadengine/static/leadengine/admin.css."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.safestring import SafeString

from core.maps import MapPoint, map_legend, point_map, regions
from core.text import counted
from territories.selectors import MarketZip

# Status -> its label. A ZIP with contractors in line is "waitlisted" whether it is owned or offered to the
# first in line; otherwise it is owned, or free: with demand (a sale to make) or without.
STATUSES = {
    "owned": "Owned",
    "demand": "Free with demand",
    "free": "Free",
    "waitlisted": "Waitlisted",
}
HIGHLIGHT = "zip-highlight"  # the contractor's own ZIPs
SELECTED = "zip-selected"  # the ZIP whose coverage row is shown
REGION_SIZE = {"width": 480, "max_height": 380}  # a metro's map: three side by side on a wide screen


def zip_status(row: MarketZip) -> str:
    """The ZIP's status, a key of STATUSES."""
    if row.waitlisted:
        return "waitlisted"
    if row.contractor_id is not None:
        return "owned"
    return "demand" if row.demand else "free"


def zip_title(row: MarketZip) -> str:
    """What a circle's tooltip says: ZIP, place, status, owner, demand."""
    parts = [f"{row.zip_code} {row.city}, {row.state}: {STATUSES[zip_status(row)].lower()}"]
    if row.waitlisted:
        parts[0] += f" ({counted(row.waitlisted, 'contractor')} in line)"
    parts.append(f"owner {row.contractor_name}" if row.contractor_id is not None else "no owner")
    parts.append(f"demand {row.demand}")
    return "; ".join(parts)


def zip_classes(row: MarketZip, *, highlight: int | None = None, selected: str | None = None) -> str:
    """The circle's CSS classes: `zip-<status>`, and HIGHLIGHT for the contractor `highlight`'s ZIPs,
    SELECTED for the ZIP `selected`."""
    classes = [f"zip-{zip_status(row)}"]
    if highlight is not None and row.contractor_id == highlight:
        classes.append(HIGHLIGHT)
    if row.zip_code == selected:
        classes.append(SELECTED)
    return " ".join(classes)


@dataclass(frozen=True)
class Region:
    """One map of a market of several metros: its name (its most common place) and its drawing."""

    name: str
    zips: int
    highlighted: int  # the highlighted contractor's ZIPs on it
    svg: SafeString


@dataclass(frozen=True)
class MarketMap:
    regions: list[Region]  # one map per metro (core.maps.regions), the biggest first
    legend: SafeString
    counts: dict[str, int]  # ZIPs per status, every status present


def region_name(rows: Sequence[MarketZip]) -> str:
    """The region's most common place, "Denver, CO" (ties: the first by name)."""
    places = Counter((row.city, row.state) for row in rows)
    (city, state), _ = min(places.items(), key=lambda item: (-item[1], item[0]))
    return f"{city}, {state}"


def market_map(
    label: str,
    rows: Sequence[MarketZip],
    *,
    link: Callable[[MarketZip], str],
    highlight: int | None = None,
    highlight_label: str = "The contractor's ZIPs",
    selected: str | None = None,
) -> MarketMap:
    """The map of `rows`, one per region (metro), each circle linking to `link(row)`; the highlighted
    contractor's ZIPs and the selected one drawn last, so that they are on top of their neighbours."""
    mine = highlight is not None
    on_top = sorted(rows, key=lambda row: (mine and row.contractor_id == highlight, row.zip_code == selected))
    drawn = []
    for region in regions(on_top, lambda row: (row.latitude, row.longitude)):
        name = region_name(region)
        points = [
            MapPoint(
                latitude=row.latitude,
                longitude=row.longitude,
                css_class=zip_classes(row, highlight=highlight, selected=selected),
                title=zip_title(row),
                href=link(row),
            )
            for row in region
        ]
        svg = point_map(f"{label}: around {name}", points, **REGION_SIZE)
        drawn.append(Region(name, len(region), sum(mine and row.contractor_id == highlight for row in region), svg))
    counts = Counter(zip_status(row) for row in rows)
    keys = [(f"zip-{status}", f"{name} ({counts[status]:,})") for status, name in STATUSES.items()]
    if highlight is not None:
        keys.append((HIGHLIGHT, highlight_label))
    return MarketMap(regions=drawn, legend=map_legend(keys), counts={status: counts[status] for status in STATUSES})
