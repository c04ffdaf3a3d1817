"""The dashboard on the admin index: its figures on a small known market, the page with its charts, the
period asked for, its cache in Redis and the job runs that refresh it; and the SVG charts module."""

import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from core import charts
from leadengine.dashboard import (
    dashboard_build,
    dashboard_funnel,
    period_of,
    period_parse,
)
from leadengine.models import JobRun
from leadengine.services.jobs import job_run_scheduled
from leads.models import Lead, LeadEvent
from leads.selectors import lead_outcomes, leads_per_day, revenue
from leads.services.billing import Band, ledger_entry_add, price_list_create
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_accept, lead_convert, lead_return, leads_deliver, leads_expire
from leads.services.routing import leads_route
from scoring.models import ScoringRun
from territories.selectors import territory_coverage_summary
from tests.leads.factories import active_model, owner, scored_home

SVG = "{http://www.w3.org/2000/svg}"
STAFF = LeadEvent.Actor.STAFF


def market(roofing, settings) -> dict:
    """Acme owns 80202 (homes scoring 95, 90, 85), Bolt owns 80203 (80); 80204 (75) is nobody's.
    Five leads are generated and four routed; Acme's three are delivered, one accepted and converted, one
    returned; the pool lead and the two left unaccepted expire. The pool lead was generated 20 days ago."""
    settings.LEAD_RETURN_RATE_PERCENT = 100
    acme = owner(roofing, "80202", name="Acme Roofing")
    bolt = owner(roofing, "80203", name="Bolt Roofing")
    for score in (95, 90, 85):
        scored_home(roofing, score=score, zip_code="80202")
    scored_home(roofing, score=80, zip_code="80203")
    scored_home(roofing, score=75, zip_code="80204")
    leads_generate(trade=roofing)
    leads_route(trade_ids=[roofing.pk])
    held = list(Lead.objects.filter(contractor=acme).order_by("-score"))
    leads_deliver(lead_ids=[lead.pk for lead in held], via="api")
    lead_accept(lead=held[0], actor="contractor")
    lead_convert(lead=held[0], actor="contractor", job_value="9000")
    lead_return(lead=held[1], reason="not_owner", actor=STAFF)
    now = timezone.now()
    leads_expire(now=now + dt.timedelta(days=15))
    LeadEvent.objects.filter(to_state="expired").update(at=now)  # expired today, not in 15 days
    pool = Lead.objects.get(zip_code="80204")
    LeadEvent.objects.filter(lead=pool, to_state="generated").update(at=now - dt.timedelta(days=20))
    return {"acme": acme, "bolt": bolt, "held": held, "pool": pool}


def scoring_run(trade, *, histogram: dict, mean: float, as_of: dt.date) -> ScoringRun:
    count = sum(histogram.values())
    return ScoringRun.objects.create(
        trade=trade, model=active_model(trade), status=ScoringRun.Status.SUCCEEDED, as_of=as_of,
        properties_scored=count, finished_at=timezone.now(),
        distribution={"count": count, "mean_score": mean, "p50": mean, "histogram": histogram},
    )  # fmt: skip


def bins(**counts) -> dict:
    return {f"{ten}-{ten + 10}": counts.get(f"b{ten}", 0) for ten in range(0, 100, 10)}


def svgs_of(html: str) -> list[ET.Element]:
    """Every chart of the page, parsed as XML (so each is well-formed on its own)."""
    return [ET.fromstring(markup) for markup in re.findall(r'<svg class="chart".*?</svg>', html, flags=re.S)]


def titles_of(svg: ET.Element) -> list[str]:
    """The chart's title, then its bars' and points' (row labels carry their full text in titles too)."""
    figures = (f"{SVG}svg", f"{SVG}rect", f"{SVG}circle")
    return [element.find(f"{SVG}title").text for element in svg.iter() if element.tag in figures]


# The figures on a known market


def test_the_funnel_counts_each_step_once_per_lead_with_its_rates(roofing, settings):
    market(roofing, settings)

    figures = dashboard_build(days=30)

    assert figures["totals"] == {
        "generated": 5, "assigned": 4, "delivered": 3, "accepted": 1, "converted": 1, "rejected": 0,
        "returned": 1, "expired": 3,
    }  # fmt: skip
    (trade,) = figures["funnel"]  # only trades with leads in the period
    assert trade["slug"] == "roofing"
    assert trade["rates"] == {"assigned": 80.0, "accepted": 33.3, "converted": 25.0, "returned": 25.0, "expired": 60.0}
    assert figures["total_rates"] == {"converted": 25.0, "returned": 25.0}
    assert titles_of(ET.fromstring(trade["chart"]))[1:] == [
        "generated: 5 leads", "assigned: 4 leads", "delivered: 3 leads", "accepted: 1 leads", "converted: 1 leads",
        "rejected: 0 leads", "returned: 1 leads", "expired: 3 leads",
    ]  # fmt: skip


def test_a_shorter_period_leaves_out_what_happened_before_it(roofing, settings):
    market(roofing, settings)

    assert dashboard_build(days=7)["totals"]["generated"] == 4  # the pool lead was generated 20 days ago
    assert dashboard_build(days=30)["totals"]["generated"] == 5


def test_leads_per_day_are_counted_by_local_day(roofing, settings):
    market(roofing, settings)
    period = period_of(days=30)
    today = timezone.localdate()

    per_day = leads_per_day(start=period.start, end=period.end, zone=settings.TIME_ZONE)

    assert per_day == {
        today - dt.timedelta(days=20): {"generated": 1, "assigned": 0, "converted": 0},
        today: {"generated": 4, "assigned": 4, "converted": 1},
    }
    chart = ET.fromstring(dashboard_build(days=30)["per_day_chart"])
    points = [title for title in titles_of(chart) if title.endswith(" generated")]
    assert len(points) == 30  # every day of the period, quiet days at zero
    assert points[-1] == f"{today:%b} {today.day}: 4 generated"


def test_conversion_and_return_rates_by_contractor_and_by_zip(roofing, settings):
    known = market(roofing, settings)
    period = period_of(days=30)

    outcomes = lead_outcomes(start=period.start, end=period.end)

    by_contractor = {row.key: (row.assigned, row.converted, row.returned) for row in outcomes["contractor"]}
    assert by_contractor == {str(known["acme"].pk): (3, 1, 1), str(known["bolt"].pk): (1, 0, 0)}
    acme = outcomes["contractor"][0]
    assert (round(acme.conversion_rate, 1), round(acme.return_rate, 1)) == (33.3, 33.3)
    assert {row.key: (row.assigned, row.converted, row.returned) for row in outcomes["zip"]} == {
        "80202": (3, 1, 1),
        "80203": (1, 0, 0),
    }
    chart = ET.fromstring(dashboard_build(days=30)["contractor_chart"])
    assert "Acme Roofing (3): 33.3% converted" in titles_of(chart)
    assert "Bolt Roofing (1): 0% returned" in titles_of(chart)


def test_coverage_counts_owned_free_and_free_zips_in_demand_per_trade(roofing, settings):
    market(roofing, settings)

    summary = {row.trade_slug: (row.owned, row.free, row.free_high_demand) for row in territory_coverage_summary()}
    in_demand = {row.trade_slug: row.free_high_demand for row in territory_coverage_summary(high_demand=1)}

    assert summary["roofing"] == (2, 1, 0)  # 80204's one home scoring 75 is not high demand (10+)
    assert summary["solar"] == (0, 3, 0)
    assert in_demand["roofing"] == 1
    chart = ET.fromstring(dashboard_build(days=30)["coverage_chart"])
    assert "Roofing: 2 owned" in titles_of(chart)


def test_the_score_distribution_of_the_last_run_is_drawn_against_the_previous_one(roofing):
    today = timezone.localdate()
    scoring_run(roofing, histogram=bins(b50=8), mean=55, as_of=today - dt.timedelta(days=2))  # too old
    previous = scoring_run(roofing, histogram=bins(b50=2, b60=2), mean=60, as_of=today - dt.timedelta(days=1))
    last = scoring_run(roofing, histogram=bins(b60=1, b70=3), mean=72.5, as_of=today)

    (trade,) = dashboard_build(days=30)["distributions"]

    assert [run.pk for run in trade["runs"]] == [last.pk, previous.pk]
    titles = titles_of(ET.fromstring(trade["chart"]))
    assert f"70-80: 75% (run {last.pk}, as of {today:%b} {today.day})" in titles
    assert any(title.startswith(f"50-60: 50% (run {previous.pk},") for title in titles)


def test_recent_job_runs_count_the_failed_ones(roofing):
    now = timezone.now()
    JobRun.objects.create(job="lead_expiry", status="succeeded", queued_at=now, started_at=now, finished_at=now)
    JobRun.objects.create(
        job="offer_expiry", status="failed", queued_at=now, started_at=now, finished_at=now, error="boom"
    )

    figures = dashboard_build(days=30)

    assert [run.status for run in figures["runs"]] == ["failed", "succeeded"]
    assert figures["runs_failed"] == 1


# The page


def test_the_admin_index_shows_the_dashboard_with_its_charts_to_staff(staff_client, roofing, settings):
    market(roofing, settings)
    now = timezone.now()
    JobRun.objects.create(
        job="offer_expiry", status="failed", queued_at=now, started_at=now, finished_at=now, error="mail refused"
    )

    response = staff_client.get("/admin/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<div id="dashboard">' in html
    assert 'id="content-main"' in html
    charts_on_page = svgs_of(html)
    assert len(charts_on_page) == 5  # per day, funnel of roofing, two rates, coverage; no scoring run: no drift
    assert all(svg.get("role") == "img" and svg.get("aria-label") for svg in charts_on_page)
    assert "Figures as of " in html
    assert "(just now)" in html
    today = timezone.localdate().isoformat()
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    assert (
        f'<a href="/admin/leads/lead/?reached=generated&amp;reached_since={today}&amp;reached_before={tomorrow}">'
        "<b>4</b> generated</a>, "
    ) in html  # today's
    assert "<b>5</b> generated</a></span>" in html
    assert "<b>25.0%</b> converted of assigned" in html
    assert '<tr class="run-failed">' in html
    assert "mail refused" in html
    assert "1 failed" in html
    assert "http://" not in html.split('<div id="dashboard">')[1].replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html.split('<div id="dashboard">')[1]


def test_an_empty_database_shows_empty_charts(staff_client, roofing):
    response = staff_client.get("/admin/?days=7")

    assert response.status_code == 200
    html = response.content.decode()
    assert "No lead moved in this period." in html
    assert any("No data yet" in ET.tostring(svg, encoding="unicode") for svg in svgs_of(html))


def test_staff_who_may_not_view_leads_see_the_models_without_the_dashboard(client, django_user_model, roofing):
    client.force_login(django_user_model.objects.create_user("clerk", is_staff=True))

    response = client.get("/admin/")

    assert response.status_code == 200
    assert 'id="content-main"' in response.content.decode()
    assert 'id="dashboard"' not in response.content.decode()


def test_the_dashboard_is_not_shown_to_anonymous_visitors(client, roofing):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize("value", ["abc", "-7", "0", "31", "99999999999999999999999", "7.5", " "])
def test_a_bad_period_is_refused_with_a_message_and_the_default_shown(staff_client, roofing, value):
    response = staff_client.get("/admin/", {"days": value})

    assert response.status_code == 200
    assert response.context["dashboard"]["days"] == 30
    assert response.context["dashboard_error"].startswith("The period must be 7, 30, 90 days, not ")
    assert "The period must be 7, 30, 90 days" in response.content.decode()


@pytest.mark.parametrize(("value", "days"), [(None, 30), ("", 30), ("7", 7), ("90", 90), (" 30 ", 30)])
def test_a_period_of_the_offered_days_is_taken(value, days):
    assert period_parse(value) == (days, None)


def test_a_long_bad_period_is_cut_in_the_message():
    _, message = period_parse("x" * 500)
    assert len(message) < 200


# The cache


def test_a_second_load_reads_the_cached_figures(roofing, settings, django_assert_max_num_queries):
    market(roofing, settings)
    period = period_of(days=30)
    first, first_at = dashboard_funnel(period)
    Lead.objects.filter(zip_code="80204").delete()  # no job ran: the cached figures stand

    with django_assert_max_num_queries(0):
        second, second_at = dashboard_funnel(period)

    assert (second, second_at) == (first, first_at)
    assert second["roofing"]["generated"] == 5


@pytest.mark.django_db(transaction=True)
def test_a_job_run_that_moves_leads_refreshes_the_cached_figures(zip_codes, django_assert_num_queries):
    from tests.contractors.factories import seeded_trades
    from tests.leads.factories import filters

    roofing = seeded_trades()["roofing"]
    filters(roofing)
    owner(roofing, "80202")
    scored_home(roofing, score=90, zip_code="80202")
    period = period_of(days=30)
    before, before_at = dashboard_funnel(period)
    assert before["roofing"]["generated"] == 0

    run = job_run_scheduled(job="lead_generation", trade=roofing)

    assert run.status == JobRun.Status.SUCCEEDED
    with django_assert_num_queries(0):  # the run computed them again: the page reads them from Redis
        after, after_at = dashboard_funnel(period)
    assert (after["roofing"]["generated"], after["roofing"]["assigned"]) == (1, 1)
    assert after_at > before_at


@pytest.mark.django_db(transaction=True)  # bumps happen once a transaction commits: let them
def test_a_job_run_that_moved_no_lead_leaves_the_cached_figures(roofing, settings):
    market(roofing, settings)
    period = period_of(days=30)
    first = dashboard_funnel(period)
    Lead.objects.filter(zip_code="80204").delete()

    run = job_run_scheduled(job="lead_expiry")  # nothing is due

    assert run.status == JobRun.Status.SUCCEEDED
    assert run.counts == {"unassigned_expired": 0, "unaccepted_expired": 0}
    assert dashboard_funnel(period) == first


@pytest.mark.django_db(transaction=True)
def test_refresh_dashboard_shows_leads_moved_outside_a_job_and_leaves_the_figures_warm(
    roofing, settings, django_assert_num_queries
):
    """As after the demo's played days: leads moved with no job run, then `manage.py refresh_dashboard`."""
    market(roofing, settings)
    period = period_of(days=30)
    stale, _ = dashboard_funnel(period)
    Lead.objects.filter(zip_code="80204").delete()  # a change no job run made: the cache still shows the lead

    out = io.StringIO()
    call_command("refresh_dashboard", stdout=out)

    assert re.fullmatch(r"Dashboard figures computed in \d+\.\d s\n", out.getvalue())
    with django_assert_num_queries(0):  # computed by the command: the page reads them from Redis
        fresh, _ = dashboard_funnel(period)
    assert fresh["roofing"]["generated"] == stale["roofing"]["generated"] - 1


# The charts module


def test_round_axis_tops():
    assert [charts.nice_ceiling(value) for value in (0, 0.3, 1, 3, 7, 10, 11, 180, 2500)] == [
        1.0, 0.5, 1.0, 5.0, 10.0, 10.0, 20.0, 200.0, 5000.0,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("top", "expected"),
    [(1, [0, 0.2, 0.4, 0.6, 0.8, 1]), (2, [0, 0.5, 1, 1.5, 2]), (5, [0, 1, 2, 3, 4, 5]), (20, [0, 5, 10, 15, 20]),
     (200, [0, 50, 100, 150, 200]), (500, [0, 100, 200, 300, 400, 500])],
)  # fmt: skip
def test_axis_ticks_are_round_steps(top, expected):
    assert charts.ticks(top) == pytest.approx(expected)


def test_a_bar_chart_is_valid_svg_with_bars_scaled_to_the_axis():
    svg = ET.fromstring(charts.bar_chart("Leads", ["a", "b"], [("this", [10, 5]), ("before", [20, 0])], compare=True))

    assert svg.get("class") == "chart"
    assert svg.get("aria-label") == "Leads"
    bars = list(svg.iter(f"{SVG}rect"))
    heights = [float(bar.get("height")) for bar in bars]
    plot = 200 - charts.TOP - charts.BOTTOM  # the axis tops at 20
    assert heights == pytest.approx([plot / 2, plot, plot / 4, 0], abs=0.06)
    assert [bar.get("fill") for bar in bars] == [charts.COLOURS[0], charts.MUTED] * 2
    assert [title.text for title in svg.iter(f"{SVG}title")][1:] == [
        "a: 10 (this)", "a: 20 (before)", "b: 5 (this)", "b: 0 (before)",
    ]  # fmt: skip


def test_a_line_chart_has_a_point_per_value_on_its_scale():
    svg = ET.fromstring(charts.line_chart("Per day", ["d1", "d2", "d3"], [("generated", [0, 50, 100])]))

    ys = [float(point.get("cy")) for point in svg.iter(f"{SVG}circle")]
    assert ys == pytest.approx([200 - charts.BOTTOM, (charts.TOP + 200 - charts.BOTTOM) / 2, charts.TOP], abs=0.06)
    assert len(list(svg.iter(f"{SVG}polyline"))) == 1


def test_stacked_bars_add_up_and_grouped_bars_do_not():
    stacked = ET.fromstring(charts.stacked_bars("Coverage", [("Roofing", [3, 1])], ["owned", "free"], top=4))
    grouped = ET.fromstring(charts.stacked_bars("Rates", [("Acme", [50, 25])], ["c", "r"], grouped=True, top=100))

    first, second = stacked.iter(f"{SVG}rect")
    assert float(second.get("x")) == pytest.approx(float(first.get("x")) + float(first.get("width")), abs=0.06)
    assert float(second.get("width")) == pytest.approx(float(first.get("width")) / 3, abs=0.06)
    first, second = grouped.iter(f"{SVG}rect")
    assert first.get("x") == second.get("x")
    assert float(second.get("y")) > float(first.get("y"))


def labels_of(svg: ET.Element) -> list[tuple[list[str], str]]:
    """Each row label: its lines and its title."""
    return [
        ([span.text for span in text.iter(f"{SVG}tspan")], text.find(f"{SVG}title").text)
        for text in svg.iter(f"{SVG}text")
        if text.get("class") == "chart-label"
    ]


def test_a_long_row_label_is_wrapped_in_its_room_and_kept_whole_in_the_title():
    name = "Comfort Air Heating & Cooling of Phoenix (346)"
    svg = ET.fromstring(charts.stacked_bars("Rates", [(name, [10])], ["converted"], label_width=170))

    ((lines, title),) = labels_of(svg)
    assert lines == ["Comfort Air Heating &", "Cooling of Phoenix (346)"]
    assert all(len(line) * charts.CHAR_WIDTH <= 170 - 8 for line in lines)
    assert title == name
    assert f"{name}: 10 converted" in titles_of(svg)


def test_long_labels_alike_but_for_their_middle_stay_distinct():
    names = [f"Comfort Air Heating & Cooling {place} of Arizona (12)" for place in ("North", "South", "East", "West")]
    svg = ET.fromstring(charts.stacked_bars("Rates", [(name, [10]) for name in names], ["c"], label_width=120))

    labels = labels_of(svg)
    assert [title for _, title in labels] == names
    assert len({tuple(lines) for lines, _ in labels}) == 4
    assert all(len(line) * charts.CHAR_WIDTH <= 120 - 8 for lines, _ in labels for line in lines)


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("Acme", 100, ["Acme"]),
        ("Comfort Air Heating & Cooling of Phoenix (346)", 120, ["Comfort Air Heating &", "Cooling of…enix (346)"]),
        ("Supercalifragilisticexpialidocious Roofing", 60, ["Super…fing"]),
    ],
)
def test_label_lines_wrap_at_a_space_and_cut_in_the_middle(text, width, expected):
    assert charts.label_lines(text, width) == expected


def test_a_chart_takes_its_containers_width_and_links_its_bars():
    svg = ET.fromstring(
        charts.stacked_bars("Funnel", [("a", [3]), ("b", [1])], ["leads"], links=[["/x?a=1&b=2"], [None]])
    )

    assert svg.get("width") == "100%"
    assert svg.get("height") is None
    assert svg.get("viewBox").startswith("0 0 560 ")
    (link,) = svg.iter(f"{SVG}a")
    assert link.get("href") == "/x?a=1&b=2"
    assert link.find(f"{SVG}rect").find(f"{SVG}title").text == "a: 3 leads"
    points = ET.fromstring(charts.line_chart("Per day", ["d1", "d2"], [("s", [1, 2])], links=[["/d1", "/d2"]]))
    assert [a.get("href") for a in points.iter(f"{SVG}a")] == ["/d1", "/d2"]


def test_labels_are_escaped_and_empty_data_says_so():
    svg = charts.bar_chart('<b>"x"</b> & co', ["<a>"], [("s", [1])])
    parsed = ET.fromstring(svg)
    assert parsed.get("aria-label") == '<b>"x"</b> & co'
    assert "<b>" not in svg

    for empty in (
        charts.bar_chart("Nothing", [], []),
        charts.line_chart("Nothing", ["d"], [("s", [0])]),
        charts.stacked_bars("Nothing", [], ["p"]),
    ):
        assert ET.fromstring(empty).find(f"{SVG}text").text == "No data yet"


# Lead quality


def test_lead_quality_shows_the_active_versions_auc_trend_and_decile_bars_with_counts(staff_client, roofing):
    from leads.services.quality import models_evaluate
    from tests.leads.factories import tiny_set

    model = active_model(roofing)
    tiny_set(roofing, model, owner(roofing, "80202"))
    first, second = models_evaluate(days=30)[0], models_evaluate(days=7)[0]

    html = staff_client.get("/admin/").content.decode()

    section = html.split('id="dashboard-quality"')[1].split("</section>")[0]
    text = " ".join(re.sub(r"<[^>]+>", "", section).split())
    assert (
        f"Roofing v{model.version}: 10 leads with a known outcome (1 exploration), 4 converted (57.1%); "
        f"AUC 0.292 [{second.auc_low:.3f}, {second.auc_high:.3f}], top-decile lift 1.75x;"
    ) in text
    trend, deciles = svgs_of(section)
    assert trend.get("aria-label") == "AUC of Roofing's active version over its evaluation runs"
    assert len(trend.findall(f".//{SVG}circle")) == 6  # two runs: the AUC and the ends of its interval each
    assert "AUC over 2 evaluation runs" in text
    assert [title.text for title in deciles.iter(f"{SVG}title")][1:3] == ["1: 100% (converted)", "1: 0% (returned)"]
    # The counts behind the bars: leads and conversions per decile (worked out in tests/leads/test_quality.py).
    table = section.split('class="dashboard-deciles"')[1].split("</table>")[0]
    assert [re.findall(r"<td>(\d+)</td>", row) for row in table.split("</tr>")[:3]] == [
        [str(number) for number in range(1, 11)],
        ["1", "2", "1", "2", "1", "1", "1", "0", "1", "0"],  # leads
        ["1", "1", "0", "1", "0", "0", "0", "0", "1", "0"],  # converted
    ]
    assert f"{timezone.localtime(second.created_at):%b} {timezone.localtime(second.created_at).day}: 0.292 AUC" in [
        title.text for title in trend.iter(f"{SVG}title")
    ]
    assert first.pk < second.pk


def test_lead_quality_says_how_figures_appear_before_any_evaluation(staff_client, roofing):
    html = staff_client.get("/admin/").content.decode()

    section = html.split('id="dashboard-quality"')[1].split("</section>")[0]
    assert "Roofing: its active version has not been evaluated yet." in section
    assert "manage.py evaluate_models" in section
    assert svgs_of(section) == []


# Revenue


def test_revenue_per_day_and_trade_credits_top_spenders_and_unpaid_balances(staff_client, roofing, settings):
    start = timezone.now() - dt.timedelta(days=1)
    bands = [Band(0, Decimal("20.00")), Band(90, Decimal("50.00"))]
    price_list_create(trade=roofing, bands=bands, effective_from=start, now=start)
    figures = market(roofing, settings)  # Acme: 95 and 90 (50.00 each), 85 (20.00), one of the 50s returned
    acme, bolt = figures["acme"], figures["bolt"]
    ledger_entry_add(contractor=bolt, kind="payment", amount=Decimal("5.00"), note="check", user=None)
    period = period_of(days=30)

    money = revenue(start=period.start, end=period.end, zone=settings.TIME_ZONE)

    assert money.by_trade == {"roofing": (Decimal("140.00"), Decimal("50.00"))}
    assert money.per_day == {timezone.localdate(): {"roofing": Decimal("90.00")}}
    assert money.spenders == [(acme.pk, Decimal("70.00")), (bolt.pk, Decimal("20.00"))]
    assert money.unpaid == [(acme.pk, Decimal("70.00")), (bolt.pk, Decimal("15.00"))]
    assert (money.unpaid_total, money.unpaid_count) == (Decimal("85.00"), 2)

    html = staff_client.get("/admin/").content.decode()
    section = html.split('id="dashboard-revenue"')[1].split("</section>")[0]
    assert "<b>140.00 USD</b> charged for leads" in section
    assert "<b>35.7%</b> return credit rate" in section
    assert "<b>85.00 USD</b> unpaid by 2 contractors" in section
    spenders = svgs_of(section)[1]
    assert titles_of(spenders) == [
        "Top contractors by spend, last 30 days (USD)", "Acme Roofing: 70 spent", "Bolt Roofing: 20 spent"
    ]  # fmt: skip
