"""The lead list on a 1440 x 900 screen: no horizontal scrolling with the filters open, a long contractor name
wrapped whole in its cell, and the contractor chosen in the filters by typing its name; the schedules in
words, on their list and on a schedule's page from its first view."""

import re

from django_celery_beat.models import PeriodicTask
from playwright.sync_api import expect

from leadengine.services.schedules import schedules_seed
from leads.models import Lead
from leads.services.lifecycle import lead_assign
from tests.browser.conftest import user
from tests.leads.factories import owner

WIDE = {"width": 1440, "height": 900}
LONG_NAME = "Comfort Air Heating & Cooling of the Front Range and the Northern Colorado Plains, LLC"


def scrolls_sideways(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


def test_the_lead_list_fits_1440_px_with_the_filters_open(screen, market):
    roofing = market["roofing"]
    long_named = owner(roofing, name=LONG_NAME, slug="comfort-air")
    (free,) = market["leads"][Lead.State.GENERATED]
    lead_assign(lead=free, contractor=long_named, user=None, reason="Called the office", override=True)
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page
    page.set_viewport_size(WIDE)

    screen.goto("/admin/leads/lead/")

    expect(page.locator("#changelist-filter")).to_be_visible()
    expect(page.locator("#result_list tbody tr")).to_have_count(7)
    cell = page.locator(f'#result_list tbody tr:has(a[href="/admin/leads/lead/{free.pk}/change/"]) td.field-contractor')
    expect(cell).to_have_text(LONG_NAME)
    assert cell.evaluate("cell => cell.scrollWidth <= cell.clientWidth && cell.clientHeight > 2 * 13")  # wrapped
    screen.shot("lead-list")
    assert not scrolls_sideways(page)

    screen.goto(f"/admin/leads/lead/?contractor__id__exact={long_named.pk}&state__exact=assigned")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#changelist-filter .select2-selection__rendered")).to_have_attribute("title", LONG_NAME)
    assert not scrolls_sideways(page)
    assert screen.errors == []


def test_staff_choose_a_contractor_by_typing_its_name(screen, market):
    bolt = market["bolt"]
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page
    page.set_viewport_size(WIDE)
    screen.goto("/admin/leads/lead/?state__exact=assigned")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)

    page.locator("#changelist-filter .select2-selection").click()
    page.locator(".select2-search__field").fill("bol")
    expect(page.locator(".select2-results__option")).to_have_text(["Bolt Roofing"])
    page.locator(".select2-results__option", has_text="Bolt Roofing").click()

    page.wait_for_url(re.compile(rf"contractor__id__exact={bolt.pk}"))
    assert "state__exact=assigned" in page.url  # the other filters stay
    rows = page.locator("#result_list tbody tr")
    expect(rows.locator("td.field-contractor")).to_have_text(["Bolt Roofing", "Bolt Roofing"])
    expect(page.locator("#changelist-filter .select2-selection__rendered")).to_contain_text("Bolt Roofing")
    screen.shot("chosen")

    page.locator("#changelist-filter .select2-selection__clear").click()
    page.wait_for_url(re.compile(r"/admin/leads/lead/\?state__exact=assigned$"))
    expect(rows).to_have_count(2)
    assert screen.errors == []


def test_a_schedules_list_and_page_read_in_words(screen, transactional_db, settings):
    schedules_seed()
    nightly = PeriodicTask.objects.get(name="Nightly run")
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page
    page.set_viewport_size(WIDE)
    words = f"every day at 02:00 {settings.TIME_ZONE}"

    screen.goto("/admin/django_celery_beat/periodictask/")
    row = page.locator("#result_list tbody tr", has=page.get_by_role("link", name="Nightly run", exact=True))
    expect(row.locator("td.field-schedule")).to_have_text(f"{words} 0 2 * * *")
    assert not scrolls_sideways(page)

    screen.goto(f"/admin/django_celery_beat/periodictask/{nightly.pk}/change/")
    expect(page.locator(".field-crontab .help")).to_contain_text(f"Translation: {words}")  # at once, unchanged
    screen.shot("schedule")
    assert screen.errors == []
