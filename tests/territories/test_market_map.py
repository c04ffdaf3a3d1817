"""The market map (territories.market_map, drawn by core.maps) and the coverage page it stands on: every ZIP of a
trade's market coloured by status, a contractor's ZIPs outlined, each circle a link to its coverage row, which
carries the claim link of a free ZIP; the page opens on a default trade, is paginated and sorted."""

import math
import re
import xml.etree.ElementTree as ET

import pytest

from core.maps import PADDING, MapPoint, point_map, projection, regions
from territories import admin as territories_admin
from territories.market_map import market_map, zip_status
from territories.selectors import coverage_default_trade, market_zips
from territories.services.claims import territory_claim
from territories.services.waitlist import waitlist_join
from tests.admin_pages import page_of
from tests.contractors.factories import ContractorFactory
from tests.territories.test_coverage import scored_homes

COVERAGE = "/admin/territories/territory/coverage/"
CLAIM = "/admin/territories/territory/claim/"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def market(zip_codes, trades):
    """Roofing's market, one ZIP of each status: Acme owns 80301 (demand 2); Peak owns 80304 and Acme waits in
    line for it; 80302 is free with demand 2; 80305 and 80303 are free without roofing demand (80303 has
    solar's). Peak owns solar in 80501, which has no homes: not in roofing's market."""
    roofing, solar = trades["roofing"], trades["solar"]
    acme = ContractorFactory(name="Acme Roofing", slug="acme", trades=[roofing])
    peak = ContractorFactory(name="Peak Roofing", slug="peak", trades=[roofing, solar])
    scored_homes(roofing, "80301", 70, 88.5, 69.9)
    territory_claim(contractor=acme, trade=roofing, zip_code="80301")
    territory_claim(contractor=peak, trade=roofing, zip_code="80304")
    waitlist_join(contractor=acme, trade=roofing, zip_code="80304")
    scored_homes(roofing, "80302", 71, 95)
    scored_homes(roofing, "80305", 69, 50)
    scored_homes(solar, "80303", 99)
    territory_claim(contractor=peak, trade=solar, zip_code="80501")
    return {"roofing": roofing, "solar": solar, "acme": acme, "peak": peak}


def circles(svg: str) -> dict[str, tuple[str, str, str]]:
    """ZIP -> (classes, title, link) of each circle of a map."""
    drawn = {}
    for link in ET.fromstring(svg).iter(f"{SVG}a"):
        circle = link.find(f"{SVG}circle")
        title = circle.find(f"{SVG}title").text
        drawn[title[:5]] = (circle.get("class"), title, link.get("href"))
    return drawn


def only_map(drawn) -> str:
    """The map of a market that lies in one region (Boulder's ZIPs)."""
    (region,) = drawn.regions
    return region.svg


def svg_of(response, index: int = 0) -> str:
    """The page's `index`-th map, as served (its entities kept, for the XML parser)."""
    return re.findall(r"<svg class=\"point-map\".*?</svg>", response.content.decode(), re.S)[index]


def test_market_zips_lists_the_market_with_demand_owner_and_line_in_one_query(market, django_assert_num_queries):
    with django_assert_num_queries(1):
        zips = market_zips(trade=market["roofing"], min_score=70)

    assert [(row.zip_code, row.demand, row.contractor_name, row.waitlisted, zip_status(row)) for row in zips] == [
        ("80301", 2, "Acme Roofing", 0, "owned"),
        ("80302", 2, "", 0, "demand"),
        ("80303", 0, "", 0, "free"),
        ("80304", 0, "Peak Roofing", 1, "waitlisted"),
        ("80305", 0, "", 0, "free"),
    ]
    first = zips[0]
    assert (first.city, first.state, first.contractor_id) == ("Boulder", "CO", market["acme"].pk)
    assert first.owned_since is not None
    assert zips[1].owned_since is None
    assert -106 < first.longitude < -105
    assert 39 < first.latitude < 41
    assert [row.zip_code for row in market_zips(trade=market["solar"])] == ["80301", "80302", "80303", "80305", "80501"]
    assert market_zips(trade=market["roofing"], state="TX") == []


def test_each_zip_is_a_circle_coloured_by_its_status_with_its_title_and_link(market):
    zips = market_zips(trade=market["roofing"], min_score=70)
    drawn = market_map("Roofing", zips, link=lambda row: f"/rows/{row.zip_code}")

    assert {code: classes for code, (classes, _, _) in circles(only_map(drawn)).items()} == {
        "80301": "zip-owned",
        "80302": "zip-demand",
        "80303": "zip-free",
        "80304": "zip-waitlisted",
        "80305": "zip-free",
    }
    shown = circles(only_map(drawn))
    assert shown["80304"][1] == "80304 Boulder, CO: waitlisted (1 contractor in line); owner Peak Roofing; demand 0"
    assert shown["80302"][1] == "80302 Boulder, CO: free with demand; no owner; demand 2"
    assert shown["80302"][2] == "/rows/80302"
    assert drawn.counts == {"owned": 1, "demand": 1, "free": 2, "waitlisted": 1}
    legend = re.sub(r"<[^>]+>", " ", drawn.legend).split()
    assert " ".join(legend) == "Owned (1) Free with demand (1) Free (2) Waitlisted (1)"


def test_a_contractors_zips_are_outlined_and_drawn_on_top(market):
    zips = market_zips(trade=market["roofing"])
    drawn = market_map("Roofing", zips, link=lambda row: "", highlight=market["peak"].pk, selected="80302")

    titles = [title.text[:5] for title in ET.fromstring(only_map(drawn)).iter(f"{SVG}title")][1:]  # the map's own first
    assert titles == ["80301", "80303", "80305", "80302", "80304"]  # the selected ZIP, then Peak's, last
    classes = {title.text[:5]: circle.get("class") for circle in ET.fromstring(only_map(drawn)).iter(f"{SVG}circle")
               for title in circle.iter(f"{SVG}title")}  # fmt: skip
    assert classes["80304"] == "zip-waitlisted zip-highlight"
    assert classes["80302"] == "zip-demand zip-selected"
    assert classes["80301"] == "zip-owned"  # Acme's
    assert "The contractor&#x27;s ZIPs</span>" in drawn.legend
    assert not list(ET.fromstring(only_map(drawn)).iter(f"{SVG}a"))  # no link asked for: none drawn


def test_projection_keeps_the_shape_with_the_cosine_of_the_middle_latitude():
    points = [MapPoint(40, -105, "a", "south-west"), MapPoint(41, -104, "b", "north-east")]
    project = projection(points, width=900, max_height=560)

    # One degree of latitude is 540 pixels (the height sets the scale); one of longitude cos(40.5°) of that.
    assert project.height == 560
    south_west, north_east = project(40, -105), project(41, -104)
    assert north_east[1] == pytest.approx(PADDING)
    assert south_west[1] == pytest.approx(560 - PADDING)
    assert north_east[0] - south_west[0] == pytest.approx(540 * math.cos(math.radians(40.5)))
    assert (south_west[0] + north_east[0]) / 2 == pytest.approx(450)  # centred across

    single = projection(points[:1], width=900, max_height=560)
    assert single(40, -105) == pytest.approx((450, single.height / 2))
    svg = point_map("One", points[:1])
    assert 'cx="450.0"' in svg
    assert "<title>south-west</title>" in svg


def test_an_empty_market_draws_a_map_that_says_so():
    assert "No ZIPs to show" in point_map("Nothing", [])


def test_coverage_opens_on_the_trade_with_most_territories(market, staff_client, django_assert_max_num_queries):
    assert coverage_default_trade() == market["roofing"]  # 2 territories; solar 1

    with django_assert_max_num_queries(12):
        response = staff_client.get(COVERAGE)
    page = page_of(response)
    assert f'<option value="{market["roofing"].pk}" selected>Roofing</option>' in page
    assert set(circles(svg_of(response))) == {"80301", "80302", "80303", "80304", "80305"}
    rows = re.findall(r'<tr id="zip-(\d{5})">', page)
    assert rows == ["80301", "80302", "80303", "80304", "80305"]  # by demand, most first, then by code
    assert "Roofing: ZIPs (5)" in page


def test_coverage_of_no_trade_at_all_says_so(staff_client, db):
    from scoring.models import ScoringModel, Trade

    ScoringModel.objects.all().delete()
    Trade.objects.all().delete()
    page = page_of(staff_client.get(COVERAGE))
    assert "No trade yet" in page
    assert "point-map" not in page


def test_coverage_rows_sorted_filtered_and_paginated(market, staff_client, monkeypatch):
    roofing = market["roofing"].pk
    by_zip = page_of(staff_client.get(f"{COVERAGE}?trade={roofing}&sort=zip&status=free"))
    assert re.findall(r'<tr id="zip-(\d{5})">', by_zip) == ["80303", "80305"]

    monkeypatch.setattr(territories_admin, "COVERAGE_PAGE_SIZE", 2)
    response = staff_client.get(f"{COVERAGE}?trade={roofing}&sort=demand&page=2")
    second = page_of(response)
    assert re.findall(r'<tr id="zip-(\d{5})">', second) == ["80303", "80304"]
    assert "Page 2 of 3 (3–4)" in second
    assert f'href="?trade={roofing}&sort=demand&page=3#zips">next</a>' in second
    assert len(circles(svg_of(response))) == 5  # the map shows the whole market whatever the page


def test_a_circle_opens_its_coverage_row_with_the_claim_link(market, staff_client):
    roofing, acme = market["roofing"], market["acme"]
    query = f"?trade={roofing.pk}&contractor={acme.pk}&state=co&sort=demand&min_score=70"
    shown = circles(svg_of(staff_client.get(COVERAGE + query)))
    classes, _, link = shown["80302"]
    assert classes == "zip-demand"
    assert shown["80301"][0] == "zip-owned zip-highlight"
    assert link == f"?trade={roofing.pk}&contractor={acme.pk}&state=CO&zip=80302#zip-80302"  # the defaults left out

    response = staff_client.get(COVERAGE + link.split("#")[0])
    row_page = page_of(response)
    assert re.findall(r'<tr id="zip-(\d{5})">', row_page) == ["80302"]
    claim = re.search(r'<tr id="zip-80302">.*?<a class="claim-link" href="([^"]+)">Claim</a>', row_page, re.S)
    assert claim.group(1) == f"{CLAIM}?trade={roofing.pk}&zip_codes=80302&contractor={acme.pk}"
    assert circles(svg_of(response))["80302"][0] == "zip-demand zip-selected"

    owned_row = page_of(staff_client.get(f"{COVERAGE}?trade={roofing.pk}&zip=80301"))
    assert re.findall(r'<tr id="zip-(\d{5})">', owned_row) == ["80301"]
    assert "claim-link" not in owned_row  # owned: nothing to claim

    form = page_of(staff_client.get(claim.group(1)))
    assert re.search(r'<textarea name="zip_codes"[^>]*>\s*80302</textarea>', form)
    assert f'<option value="{roofing.pk}" selected>Roofing</option>' in form
    assert f'<option value="{acme.pk}" selected>Acme Roofing</option>' in form


def test_coverage_refuses_bad_input_with_the_reason(market, staff_client):
    unknown = page_of(staff_client.get(f"{COVERAGE}?trade=999999"))
    assert "Select a valid choice" in unknown
    assert "point-map" not in unknown
    malformed = page_of(staff_client.get(f"{COVERAGE}?trade={market['roofing'].pk}&zip=8030"))
    assert "Enter a five-digit ZIP code." in malformed
    assert "point-map" not in malformed
    outside = page_of(staff_client.get(f"{COVERAGE}?trade={market['roofing'].pk}&zip=10001"))
    assert "10001 is not in the Roofing market." in outside


def test_the_contractors_page_maps_its_trades_with_its_zips_outlined(market, staff_client):
    peak = market["peak"]
    response = staff_client.get(f"/admin/contractors/contractor/{peak.pk}/change/")
    page = page_of(response)

    roofing_map, solar_map = circles(svg_of(response, 0)), circles(svg_of(response, 1))
    assert "Roofing: around Boulder, CO (5 ZIPs)" in page
    assert "Solar: around Boulder, CO (5 ZIPs)" in page
    assert roofing_map["80304"][0] == "zip-waitlisted zip-highlight"
    assert roofing_map["80301"][0] == "zip-owned"
    assert solar_map["80501"][0] == "zip-owned zip-highlight"
    assert roofing_map["80304"][2] == (
        f"{COVERAGE}?trade={market['roofing'].pk}&contractor={peak.pk}&zip=80304#zip-80304"
    )


def test_points_a_degree_apart_through_neighbours_share_a_region_and_keep_their_order():
    # A chain of points half a degree apart is one region however long; a point ten degrees away is another.
    chain = [(39.0 + 0.5 * step, -105.0) for step in range(6)]
    far = (29.7, -95.4)
    items = [chain[3], far, *chain[:3], *chain[4:]]

    found = regions(items, lambda item: item, reach=1.0)

    assert found == [[chain[3], *chain[:3], *chain[4:]], [far]]  # the biggest first, each in the given order
    assert regions([], lambda item: item) == []


def test_a_market_of_two_metros_is_drawn_as_a_map_of_each(market, trades):
    roofing = market["roofing"]
    scored_homes(roofing, "75201", 90)  # Dallas, 1,000 miles from Boulder
    zips = market_zips(trade=roofing)

    drawn = market_map("Roofing", zips, link=lambda row: f"/rows/{row.zip_code}")

    assert [(region.name, region.zips) for region in drawn.regions] == [("Boulder, CO", 5), ("Dallas, TX", 1)]
    assert set(circles(drawn.regions[1].svg)) == {"75201"}
    assert drawn.counts["demand"] == 2  # the legend counts the whole market


def test_the_contractor_page_maps_only_the_metros_it_owns_zips_in(staff_client, market, trades):
    roofing = market["roofing"]
    scored_homes(roofing, "75201", 90)

    page = staff_client.get(f"/admin/contractors/contractor/{market['acme'].pk}/change/").content.decode()

    assert "Roofing: around Boulder, CO (5 ZIPs)" in page
    assert "around Dallas, TX" not in page
