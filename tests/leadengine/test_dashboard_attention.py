"""The dashboard's "needs attention" box and its links: each count is the number of rows of the admin list
its link opens, and every figure that stands for leads opens the lead list showing exactly those leads."""

import datetime as dt
import json
import re
from html import unescape

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from contractors.models import Contractor
from leadengine.dashboard import dashboard_build
from leadengine.models import JobRun
from leadengine.selectors import SCHEDULED_TASK
from leads.models import Lead, WebhookAttempt
from leads.selectors import FUNNEL_STEPS
from territories.models import WaitlistEntry
from tests.leadengine.test_dashboard import market


def needing_attention(roofing, settings) -> dict:
    """The small market of test_dashboard, with one of each thing that needs attention: a failed run (and
    one failed two days ago, no longer news), an overdue schedule, a return waiting, a webhook given up, an
    offer lapsing in two hours (and one in three days), Acme at its daily cap, Bolt paused, and 80204 free
    with demand."""
    known = market(roofing, settings)
    acme, bolt = known["acme"], known["bolt"]
    now = timezone.now()
    failed = JobRun.objects.create(job="offer_expiry", status="failed", queued_at=now, finished_at=now, error="x")
    JobRun.objects.create(
        job="lead_expiry", status="failed", queued_at=now - dt.timedelta(days=2), finished_at=now, error="x"
    )
    every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    overdue = PeriodicTask.objects.create(
        name="Offer expiry", task=SCHEDULED_TASK, interval=every_minute, kwargs=json.dumps({"job": "offer_expiry"}),
        last_run_at=now - dt.timedelta(hours=2),
    )  # fmt: skip
    PeriodicTask.objects.filter(pk=overdue.pk).update(date_changed=now - dt.timedelta(days=1))
    # The two leads market() lets expire, as if still open: one delivered with a return asked, one assigned.
    Lead.objects.filter(pk=known["held"][2].pk).update(
        state=Lead.State.DELIVERED, return_requested_at=now, closed_at=None
    )
    Lead.objects.filter(zip_code="80203").update(state=Lead.State.ASSIGNED, closed_at=None)
    returning, webhook_lead = Lead.objects.get(pk=known["held"][2].pk), Lead.objects.get(zip_code="80203")
    WebhookAttempt.objects.create(
        lead=webhook_lead, assigned_at=webhook_lead.assigned_at, contractor=bolt, number=1, at=now,
        url="https://bolt.example/hook", outcome=WebhookAttempt.Outcome.GAVE_UP,
    )  # fmt: skip
    soon, _later = (
        WaitlistEntry.objects.create(
            zip_code_id=code, trade=roofing, contractor=bolt, status=WaitlistEntry.Status.OFFERED,
            joined_at=now - dt.timedelta(days=3), offered_at=now - dt.timedelta(hours=1),
            offer_expires_at=now + dt.timedelta(hours=hours),
        )
        for code, hours in (("80202", 2), ("80205", 72))
    )  # fmt: skip
    Contractor.objects.filter(pk=acme.pk).update(daily_cap=2)  # three assigned today, one returned: full
    Contractor.objects.filter(pk=bolt.pk).update(status=Contractor.Status.PAUSED)
    return {**known, "failed": failed, "overdue": overdue, "returning": returning, "webhook": webhook_lead,
            "offer": soon}  # fmt: skip


def listed(client, url: str) -> list:
    """The rows (primary keys) the admin list at `url` shows; the list must take every parameter."""
    response = client.get(url)
    assert response.status_code == 200, url  # an unknown parameter redirects to ?e=1
    if "cl" in response.context:
        return sorted(obj.pk for obj in response.context["cl"].result_list)
    return sorted(row.zip_code for row, *_ in response.context["rows"])  # coverage


def test_each_attention_count_links_to_the_list_of_exactly_those_rows(staff_client, roofing, settings):
    known = needing_attention(roofing, settings)

    items = {item.text: item for item in dashboard_build(days=30)["attention"]}

    expected = {
        "failed job runs in the last 24 hours": [known["failed"].pk],
        "overdue job schedules": [known["overdue"].pk],
        "returns waiting for approval": [known["returning"].pk],
        "leads whose webhook gave up": [known["webhook"].pk],
        "waitlist offers expiring within 24 hours": [known["offer"].pk],
        "contractors at a lead cap": [known["acme"].pk],
        "contractors paused": [known["bolt"].pk],
        "Roofing ZIPs with demand and no owner": ["80204"],
    }
    assert {text: item.count for text, item in items.items() if text in expected} == {
        text: len(rows) for text, rows in expected.items()
    }
    for text, rows in expected.items():
        assert listed(staff_client, items[text].url) == rows, text


def test_the_attention_box_leads_the_page_and_shows_nothing_to_do_quietly(staff_client, roofing, settings):
    market(roofing, settings)

    html = staff_client.get("/admin/").content.decode()

    box = html.split('id="dashboard-attention"')[1].split("</section>")[0]
    assert html.index('id="dashboard-attention"') < html.index('id="dashboard-totals"')
    assert '<li class="attention-item attention-none"><b>0</b> returns waiting for approval</li>' in box
    assert "Roofing ZIPs with demand and no owner</a>" in box  # 80204: one, linked


@pytest.mark.parametrize("days", [7, 30])
def test_every_lead_figure_links_to_the_list_of_exactly_its_leads(staff_client, roofing, settings, days):
    known = market(roofing, settings)
    figures = dashboard_build(days=days)

    (funnel,) = figures["funnel"]
    bars = re.findall(r'<a class="chart-link" href="([^"]+)"><rect[^>]*><title>([a-z]+): (\d+) leads', funnel["chart"])
    assert [step for _, step, _ in bars] == list(FUNNEL_STEPS)
    for url, step, count in bars:
        assert len(listed(staff_client, unescape(url))) == int(count) == funnel["steps"][step], step
    for step, count, url in figures["totals_shown"]:
        assert len(listed(staff_client, url)) == int(count), step
    for step, count, url in figures["today"]:
        assert len(listed(staff_client, url)) == int(count), step
    per_day = re.findall(
        r'<a class="chart-link" href="([^"]+)"><circle[^>]*><title>[^:]+: (\d+) ', figures["per_day_chart"]
    )
    assert len(per_day) == 3 * days
    for url, count in per_day:
        assert len(listed(staff_client, unescape(url))) == int(count)
    acme = known["acme"]
    rates = re.findall(r'href="([^"]+)"><rect[^>]*><title>([^<]+)</title>', figures["contractor_chart"])
    links = {title: unescape(url) for url, title in rates}
    assert listed(staff_client, links["Acme Roofing (3): 33.3% converted"]) == [known["held"][0].pk]
    assert listed(staff_client, links["Acme Roofing (3): 33.3% returned"]) == [known["held"][1].pk]
    assert f"contractor__id__exact={acme.pk}" in links["Acme Roofing (3): 33.3% returned"]
    zips = re.findall(r'href="([^"]+)"><rect[^>]*><title>([^<]+)</title>', figures["zip_chart"])
    zip_links = {title: unescape(url) for url, title in zips}
    assert listed(staff_client, zip_links["80202 (3): 33.3% returned"]) == [known["held"][1].pk]


def test_a_step_reached_with_a_bad_date_or_step_is_refused(staff_client, roofing):
    for query in ("reached=delivered&reached_since=yesterday", "reached=nowhere", "reached_since=2026-01-01"):
        response = staff_client.get(f"/admin/leads/lead/?{query}")
        assert response.status_code == 302
        assert response["Location"].endswith("?e=1")
