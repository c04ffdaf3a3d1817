"""The dashboard's links in a real browser: the "needs attention" box opens the filtered lists, a funnel
bar opens the lead list of the leads that reached that step, and the charts take the page's width."""

from django.utils import timezone
from playwright.sync_api import expect

from leads.models import Lead
from tests.browser.conftest import user


def result_ids(page) -> set[str]:
    """The ids an admin change list shows (its first column, a link to each row)."""
    return {text.strip() for text in page.locator("#result_list tbody tr th").all_inner_texts()}


def test_the_attention_box_links_to_the_filtered_lists(screen, market):
    user("boss", is_superuser=True)
    waiting = market["leads"][Lead.State.DELIVERED][0]
    Lead.objects.filter(pk=waiting.pk).update(return_requested_at=timezone.now())

    screen.log_in("boss")

    page = screen.page
    box = page.locator("#dashboard-attention")
    expect(box.locator("li.attention-none", has_text="leads whose webhook gave up")).to_be_visible()
    box.get_by_role("link", name="1 returns waiting for approval").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    assert result_ids(page) == {str(waiting.pk)}
    expect(page.locator("#changelist-filter")).to_contain_text("Return waiting for approval")

    page.go_back()
    box.get_by_role("link", name="1 Roofing ZIPs with demand and no owner").click()
    expect(page.locator("body")).to_contain_text("80204")
    assert "status=demand" in page.url
    screen.shot("coverage")
    assert screen.errors == []


def test_a_funnel_bar_opens_the_leads_that_reached_its_step(screen, market):
    user("boss", is_superuser=True)

    screen.log_in("boss")

    page = screen.page
    funnel = page.locator('#dashboard-funnel figure[data-trade="roofing"] svg.chart')
    per_day = page.locator("#dashboard-per-day svg.chart")
    content = page.locator("#dashboard").bounding_box()
    assert per_day.bounding_box()["width"] > 0.9 * content["width"]  # the chart takes the width it is given
    screen.shot("dashboard")
    funnel.locator("a.chart-link", has=page.locator("title", has_text="delivered: 4 leads")).click()

    expect(page.locator("#result_list tbody tr")).to_have_count(4)
    assert "reached=delivered" in page.url
    assert f"trade__id__exact={market['roofing'].pk}" in page.url
    assert result_ids(page) == {str(lead.pk) for lead in Lead.objects.filter(contractor=market["acme"])}
    expect(page.locator("#changelist-filter")).to_contain_text("step reached")
    assert screen.errors == []
