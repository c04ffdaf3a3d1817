"""The market map in a real browser: coverage opens on roofing with every ZIP of the market a circle coloured by
its status; clicking a ZIP lands on its coverage row, whose claim link opens the claim form filled in."""

import re

from playwright.sync_api import expect

from territories.services.waitlist import waitlist_join
from tests.browser.conftest import user
from tests.leads.factories import scored_home


def circle(page, zip_code: str):
    """The map's circle of `zip_code` (its title starts with the ZIP)."""
    title = page.locator("title", has_text=re.compile(f"^{zip_code} "))
    return page.locator(".market-map svg circle").filter(has=title)


def test_coverage_map_colours_the_zips_and_a_click_opens_the_zips_row_with_its_claim_link(screen, market):
    # The market's ZIPs: Acme's 80202, Bolt's 80203 with Acme in line for it, 80204 free with demand (75),
    # 80205 free with a home scoring too low to count as demand.
    roofing, acme = market["roofing"], market["acme"]
    waitlist_join(contractor=acme, trade=roofing, zip_code="80203")
    scored_home(roofing, score=40, zip_code="80205")
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page

    screen.goto("/admin/territories/territory/coverage/")  # no trade chosen: the one with most territories
    expect(page.locator("#id_trade")).to_have_value(str(roofing.pk))
    expect(page.locator(".market-map svg circle")).to_have_count(4)
    expect(circle(page, "80202")).to_have_class("zip-owned")
    expect(circle(page, "80203")).to_have_class("zip-waitlisted")
    expect(circle(page, "80204")).to_have_class("zip-demand")
    expect(circle(page, "80205")).to_have_class("zip-free")
    expect(circle(page, "80204").locator("title")).to_have_text(
        "80204 Denver, CO: free with demand; no owner; demand 1"
    )
    # Coloured by the stylesheet (leadengine/admin.css), as the page's policy allows no inline style.
    assert circle(page, "80204").evaluate("node => getComputedStyle(node).fill") == "rgb(230, 159, 0)"
    assert circle(page, "80202").evaluate("node => getComputedStyle(node).fill") == "rgb(65, 118, 144)"
    expect(page.locator(".map-legend")).to_contain_text("Free with demand (1)")
    screen.shot("coverage")

    circle(page, "80204").click()
    expect(page).to_have_url(re.compile(r"[?&]zip=80204#zip-80204$"))
    row = page.locator("#zip-80204")
    expect(row).to_be_visible()
    expect(page.locator("#coverage-zips tbody tr")).to_have_count(1)
    expect(row).to_contain_text("Free with demand")
    expect(circle(page, "80204")).to_have_class("zip-demand zip-selected")
    screen.shot("row")

    row.get_by_role("link", name="Claim").click()
    expect(page).to_have_url(re.compile(r"/admin/territories/territory/claim/\?trade=\d+&zip_codes=80204$"))
    expect(page.locator("#id_zip_codes")).to_have_value("80204")
    expect(page.locator("#id_trade")).to_have_value(str(roofing.pk))
    screen.shot("claim")
    assert screen.errors == []


def test_a_contractors_zips_are_outlined_on_coverage_and_on_its_page(screen, market):
    roofing, acme = market["roofing"], market["acme"]
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page

    screen.goto(f"/admin/territories/territory/coverage/?trade={roofing.pk}&contractor={acme.pk}")
    expect(circle(page, "80202")).to_have_class("zip-owned zip-highlight")
    expect(circle(page, "80203")).to_have_class("zip-owned")
    assert circle(page, "80202").evaluate("node => getComputedStyle(node).strokeWidth") == "2px"

    screen.goto(f"/admin/contractors/contractor/{acme.pk}/change/")
    expect(circle(page, "80202")).to_have_class("zip-owned zip-highlight")
    expect(circle(page, "80203")).to_have_class("zip-owned")
    screen.shot("contractor")
    circle(page, "80203").click()
    expect(page).to_have_url(re.compile(rf"coverage/\?trade={roofing.pk}&contractor={acme.pk}&zip=80203#zip-80203$"))
    expect(page.locator("#zip-80203")).to_contain_text("Bolt Roofing")
    assert screen.errors == []
