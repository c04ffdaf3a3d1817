"""The business at a glance on the admin index page: what needs attention today (each a count linking to
the admin list that shows that set), the lead funnel per trade for a period, leads per
day, conversion and return rates by contractor and by ZIP, revenue (per day and trade, credits, top
spenders, unpaid balances), territory coverage per trade, the score
distribution of the last scoring runs per trade (drift), lead quality per trade (the active version's AUC
over its evaluation runs and its latest conversion rate by score decile), and recent job runs with their
failures.

The figures that cost more than a few milliseconds at a market's size (the funnel, leads per day, the
outcomes, the revenue and the coverage) are cached in Redis (core.cache) with the time they were computed, which
the page shows. They are invalidated by generation: the job runs that change leads bump LEADS and warm
the default period again (dashboard_refresh, called by leadengine.services.jobs), scoring runs and
territory claims bump SCORES and TERRITORIES themselves; lead moves made outside a job (a contractor
accepting through the API) show within cache.CACHE_SECONDS. The rest (scoring runs, evaluation runs, job
runs, overdue schedules, the attention counts) are reads of small tables or of partial indexes, done on
every load. Every job run (webhook delivery runs every two minutes) also computes again whichever of the
default period's figures and the coverage are missing (a new day, a territory claimed, Redis emptied),
so the page after a login reads them from Redis instead of computing them.

Every figure that stands for a set of leads links to the lead list filtered to that set: the leads that
reached a funnel step in the period (the list's "step reached" filter, as the funnel counts), of a trade,
a contractor, a ZIP, or one day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from contractors.models import Contractor
from core import charts
from core.cache import SCORES, TERRITORIES, cached, generation_bump
from leadengine.models import JobRun
from leadengine.selectors import ScheduleState, jobs_overdue
from leads.models import Lead
from leads.selectors import (
    FUNNEL_STEPS,
    Revenue,
    contractors_at_cap,
    lead_outcomes,
    leads_funnel,
    leads_per_day,
    revenue,
)
from scoring import quality_display
from scoring.models import Trade
from scoring.selectors import evaluation_trends_active, scoring_runs_latest
from territories.market_map import zip_status
from territories.selectors import (
    DEFAULT_DEMAND_MIN_SCORE,
    OFFER_EXPIRING_HOURS,
    market_zips,
    territory_coverage_summary,
    waitlist_offers_expiring,
)

PERIODS = (7, 30, 90)  # days the page offers (?days=)
DEFAULT_DAYS = 30
LEADS = "leads"  # the generation of cached figures built on leads and their events
# Jobs whose runs move leads: their figures are bumped after each run (scoring runs bump SCORES themselves).
LEAD_JOBS = frozenset({JobRun.Job.LEAD_GENERATION, JobRun.Job.LEAD_EXPIRY, JobRun.Job.WEBHOOK_DELIVERY,
                       JobRun.Job.EMAIL_DIGEST, JobRun.Job.URGENT_EMAIL, JobRun.Job.OFFER_EXPIRY})  # fmt: skip
# The counts of those runs that say leads moved: a run that moved none (most webhook delivery runs, every
# two minutes) leaves the figures as they are.
LEAD_COUNTS = frozenset({"leads_generated", "leads_routed", "unassigned_expired", "unaccepted_expired", "delivered"})
HIGH_DEMAND = 10  # a free ZIP with at least this many properties scoring DEFAULT_DEMAND_MIN_SCORE+ is in demand
TOP_ROWS = 12  # contractors and ZIPs shown in the rate charts, most leads first
RECENT_RUNS = 15
WIDE = 1000  # the viewBox width of the charts that take the page's width (a pair's charts take half)
FAILED_RUNS_WITHIN = "24h"  # failed runs "needing attention": those queued lately (the job run list's filter)


@dataclass(frozen=True)
class Period:
    """Whole days in TIME_ZONE: `days` days up to and including today, as [start, end)."""

    days: int
    first_day: dt.date
    last_day: dt.date
    start: dt.datetime
    end: dt.datetime


def period_of(*, days: int, today: dt.date | None = None) -> Period:
    zone = ZoneInfo(settings.TIME_ZONE)
    today = today or timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return Period(days=days, first_day=first, last_day=today, start=start, end=end)


def period_parse(value: str | None) -> tuple[int, str | None]:
    """The number of days asked for in `?days=`, or the default with a message saying why it was refused."""
    if value is None or value == "":
        return DEFAULT_DAYS, None
    choices = ", ".join(str(days) for days in PERIODS)
    try:
        days = int(value.strip())
    except ValueError:
        days = None
    if days not in PERIODS:
        shown = value if len(value) <= 20 else value[:20] + "..."
        return DEFAULT_DAYS, f"The period must be {choices} days, not {shown!r}; showing the last {DEFAULT_DAYS} days."
    return days, None


def _figure(name: str, period: Period | None, depends_on: tuple[str, ...], compute) -> tuple[Any, dt.datetime]:
    """compute()'s answer and when it was computed, from Redis while it is current (core.cache)."""
    parts = (period.days, period.last_day.isoformat(), settings.TIME_ZONE) if period else ()
    payload = cached(
        f"dashboard:{name}",
        parts,
        depends_on=depends_on,
        compute=lambda: {"value": compute(), "at": timezone.now()},
    )
    return payload["value"], payload["at"]


def dashboard_funnel(period: Period) -> tuple[dict[str, dict[str, int]], dt.datetime]:
    return _figure("funnel", period, (LEADS,), lambda: leads_funnel(start=period.start, end=period.end))


def dashboard_leads_per_day(period: Period) -> tuple[dict[dt.date, dict[str, int]], dt.datetime]:
    return _figure(
        "per_day",
        period,
        (LEADS,),
        lambda: leads_per_day(start=period.start, end=period.end, zone=settings.TIME_ZONE),
    )


def dashboard_outcomes(period: Period) -> tuple[dict, dt.datetime]:
    return _figure("outcomes", period, (LEADS,), lambda: lead_outcomes(start=period.start, end=period.end))


def dashboard_revenue(period: Period) -> tuple[Revenue, dt.datetime]:
    return _figure(
        "revenue", period, (LEADS,), lambda: revenue(start=period.start, end=period.end, zone=settings.TIME_ZONE)
    )


def dashboard_coverage() -> tuple[list, dt.datetime]:
    return _figure(
        "coverage",
        None,
        (SCORES, TERRITORIES),
        lambda: territory_coverage_summary(min_score=DEFAULT_DEMAND_MIN_SCORE, high_demand=HIGH_DEMAND),
    )


def dashboard_free_demand() -> tuple[dict[str, int], dt.datetime]:
    """Per trade slug, its free ZIPs with demand, as the coverage page lists them (status "demand": no
    owner, nobody in line, properties scoring DEFAULT_DEMAND_MIN_SCORE+). A place taken in a line does not
    bump TERRITORIES: it shows within cache.CACHE_SECONDS."""

    def compute() -> dict[str, int]:
        return {
            trade.slug: sum(zip_status(row) == "demand" for row in market_zips(trade=trade))
            for trade in Trade.objects.order_by("name")
        }

    return _figure("free_demand", None, (SCORES, TERRITORIES), compute)


def dashboard_refresh(*, job: str, counts: dict | None = None) -> None:
    """After a run of `job` that did `counts` (None: unknown, as after a failure): bump the figures it
    changed, then compute the default period's figures and the coverage where they are missing (changed,
    or a new day, or a territory claimed since the last run), so the next page load reads them from Redis.
    Those still current cost a read of Redis each. Called outside any transaction, once the run is recorded."""
    moved = counts is None or any(counts.get(name) for name in LEAD_COUNTS)
    if job in LEAD_JOBS and moved:
        generation_bump(LEADS)  # made at once: the run is recorded, no transaction is open
    period = period_of(days=DEFAULT_DAYS)
    dashboard_funnel(period)
    dashboard_leads_per_day(period)
    dashboard_outcomes(period)
    dashboard_revenue(period)
    dashboard_coverage()  # a scoring run bumped SCORES when it closed
    dashboard_free_demand()


def _url(name: str, **params: object) -> str:
    """The admin page `name` (a URL name), with `params` as its query."""
    return reverse(name) + (f"?{urlencode(params)}" if params else "")


def leads_url(**params: object) -> str:
    """The lead list filtered by `params` (its list filters' parameters)."""
    return _url("admin:leads_lead_changelist", **params)


def reached_url(step: str, first_day: dt.date, last_day: dt.date, **params: object) -> str:
    """The leads that reached `step` from `first_day` to `last_day` (local days, both in), as the funnel
    counts them (the lead list's "step reached" filter), narrowed by `params`."""
    window = {"reached_since": first_day.isoformat(), "reached_before": (last_day + dt.timedelta(days=1)).isoformat()}
    return leads_url(**params, reached=step, **window)


@dataclass(frozen=True)
class Attention:
    """One thing staff should look at today: how many, what they are, and the admin list showing them."""

    count: int
    text: str  # what they are, after the count: "failed job runs in the last 24 hours"
    url: str


def dashboard_attention(*, now: dt.datetime, overdue: list[ScheduleState]) -> list[Attention]:
    """What needs attention today, each with the list that shows exactly that set: failed runs and overdue
    schedules, returns waiting, webhooks given up, waitlist offers about to lapse, contractors at a cap or
    paused, and per trade the free ZIPs with demand (coverage). Counts on indexes or small tables; the ZIPs
    are read from Redis (dashboard_free_demand)."""
    failed = JobRun.objects.filter(status=JobRun.Status.FAILED, queued_at__gte=now - dt.timedelta(hours=24))
    items = [
        Attention(
            failed.count(),
            "failed job runs in the last 24 hours",
            _url("admin:leadengine_jobrun_changelist", status__exact=JobRun.Status.FAILED, within=FAILED_RUNS_WITHIN),
        ),
        Attention(
            len(overdue),
            "overdue job schedules",
            _url("admin:django_celery_beat_periodictask_changelist", on_time="overdue"),
        ),
        Attention(
            Lead.objects.return_waiting().count(), "returns waiting for approval", leads_url(**{"return": "waiting"})
        ),
        Attention(Lead.objects.webhook_failed().count(), "leads whose webhook gave up", leads_url(webhook="failed")),
        Attention(
            waitlist_offers_expiring(now=now).count(),
            f"waitlist offers expiring within {OFFER_EXPIRING_HOURS} hours",
            _url("admin:territories_waitlistentry_changelist", offer="expiring"),
        ),
        Attention(
            len(contractors_at_cap(now=now)),
            "contractors at a lead cap",
            _url("admin:contractors_contractor_changelist", cap="reached"),
        ),
        Attention(
            Contractor.objects.filter(status=Contractor.Status.PAUSED).count(),
            "contractors paused",
            _url("admin:contractors_contractor_changelist", status__exact=Contractor.Status.PAUSED),
        ),
    ]
    free_demand, _ = dashboard_free_demand()
    for trade_id, slug, name in Trade.objects.order_by("name").values_list("pk", "slug", "name"):
        items.append(
            Attention(
                free_demand.get(slug, 0),
                f"{name} ZIPs with demand and no owner",
                _url("admin:territories_territory_coverage", trade=trade_id, status="demand"),
            )
        )
    return items


def _rate(part: float | Decimal, whole: float | Decimal) -> float | None:
    return round(float(100 * part / whole), 1) if whole else None


def _ago(at: dt.datetime, now: dt.datetime) -> str:
    minutes = int((now - at).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    return f"{minutes // 60} h {minutes % 60} min ago"


def _funnel_section(
    funnel: dict[str, dict[str, int]], names: dict[str, str], ids: dict[str, int], period: Period
) -> list[dict]:
    trades = []
    for slug, steps in funnel.items():
        if not any(steps.values()):
            continue
        generated, assigned = steps["generated"], steps["assigned"]
        rates = {
            "assigned": _rate(assigned, generated),
            "accepted": _rate(steps["accepted"], steps["delivered"]),
            "converted": _rate(steps["converted"], assigned),
            "returned": _rate(steps["returned"], assigned),
            "expired": _rate(steps["expired"], generated),
        }
        chart = charts.stacked_bars(
            f"Lead funnel of {names.get(slug, slug)}",
            [(step, [steps[step]]) for step in FUNNEL_STEPS],
            ["leads"],
            row_height=20,
            label_width=80,
            width=420,
            links=[
                [reached_url(step, period.first_day, period.last_day, trade__id__exact=ids[slug])]
                for step in FUNNEL_STEPS
            ],
        )
        trades.append({"slug": slug, "name": names.get(slug, slug), "steps": steps, "rates": rates, "chart": chart})
    return trades


def _per_day_chart(per_day: dict[dt.date, dict[str, int]], period: Period):
    steps = ("generated", "assigned", "converted")
    days = [period.first_day + dt.timedelta(days=n) for n in range(period.days)]
    series = [(step, [per_day.get(day, {}).get(step, 0) for day in days]) for step in steps]
    links = [[reached_url(step, day, day) for day in days] for step in steps]
    return charts.line_chart(
        f"Leads per day, last {period.days} days",
        [f"{day:%b} {day.day}" for day in days],
        series,
        width=WIDE,
        links=links,
    )


def _outcome_chart(label: str, rows: list, names: dict[str, str], period: Period, by: Callable[[str], dict]):
    """Conversion and return rate of the top rows; each bar links to those converted or returned leads, of
    the leads assigned in the period (`by`: the lead list's parameters for a row's key)."""
    shown = rows[:TOP_ROWS]
    links = [
        [
            reached_url("assigned", period.first_day, period.last_day, state__exact=state, **by(row.key))
            for state in (Lead.State.CONVERTED, Lead.State.RETURNED)
        ]
        for row in shown
    ]
    return charts.stacked_bars(
        label,
        [
            (
                f"{names.get(row.key, row.key)} ({row.assigned})",
                [round(row.conversion_rate, 1), round(row.return_rate, 1)],
            )
            for row in shown
        ],
        ["converted", "returned"],
        unit="%",
        grouped=True,
        label_width=170,
        links=links,
    )


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f} {settings.CURRENCY}"


def _revenue_section(money: Revenue, period: Period, names: dict[str, str]) -> dict:
    """The period's lead revenue per day and trade (charged less credited), its totals and return credit
    rate, the top contractors by spend and the unpaid balances, with the contractors' names read fresh."""
    days = [period.first_day + dt.timedelta(days=n) for n in range(period.days)]
    trades = sorted(money.by_trade)
    series = [
        (names.get(slug, slug), [float(money.per_day.get(day, {}).get(slug, 0)) for day in days]) for slug in trades
    ]
    ids = {contractor_id for contractor_id, _ in money.spenders + money.unpaid}
    contractors = dict(Contractor.objects.filter(pk__in=ids).values_list("pk", "name"))
    return {
        "charged": _money(money.charged),
        "credited": _money(money.credited),
        "net": _money(money.charged - money.credited),
        "credit_rate": _rate(money.credited, money.charged),
        "unpaid_total": _money(money.unpaid_total),
        "unpaid_count": money.unpaid_count,
        "by_trade": [
            (names.get(slug, slug), _money(charged), _money(credited), _rate(credited, charged))
            for slug, (charged, credited) in sorted(money.by_trade.items())
        ],
        "chart": charts.line_chart(
            f"Lead revenue per day and trade, charged less credited ({settings.CURRENCY}), last {period.days} days",
            [f"{day:%b} {day.day}" for day in days],
            series,
            width=WIDE,
            decimals=0,
        ),
        "legend": charts.legend([name for name, _ in series]),
        "spenders_chart": charts.stacked_bars(
            f"Top contractors by spend, last {period.days} days ({settings.CURRENCY})",
            [(contractors.get(pk, str(pk)), [float(amount)]) for pk, amount in money.spenders],
            ["spent"],
            label_width=220,
        ),
        "unpaid_chart": charts.stacked_bars(
            f"Unpaid balances now ({settings.CURRENCY})",
            [(contractors.get(pk, str(pk)), [float(amount)]) for pk, amount in money.unpaid],
            ["owed"],
            label_width=220,
        ),
        "ledger_url": reverse("admin:leads_ledgerentry_changelist"),
    }


def _distribution_section(latest: dict[str, list], names: dict[str, str]) -> list[dict]:
    trades = []
    for slug, runs in latest.items():
        runs = [run for run in runs if run.distribution.get("count")]
        if not runs:
            continue
        bins = list(runs[0].distribution.get("histogram", {}))
        series = []
        for run in runs:
            histogram, count = run.distribution.get("histogram", {}), run.distribution["count"]
            shares = [round(100 * histogram.get(name, 0) / count, 1) for name in bins]
            series.append((f"run {run.pk}, as of {run.as_of:%b} {run.as_of.day}", shares))
        chart = charts.bar_chart(
            f"Score distribution of {names.get(slug, slug)}: last run against the one before",
            bins,
            series,
            unit="%",
            width=420,
            height=170,
            compare=True,
        )
        trades.append({
            "slug": slug, "name": names.get(slug, slug), "runs": runs, "chart": chart,
            "legend": charts.legend([name for name, _ in series], muted_after_first=True),
        })  # fmt: skip
    return trades


def _quality_section(trends: dict[str, list], names: dict[str, str]) -> list[dict]:
    """Per trade with an active version: that version's AUC over its evaluation runs and its latest run's
    conversion and return rate by score decile, with the counts behind them."""
    trades = []
    for slug, runs in trends.items():
        name = names.get(slug, slug)
        shown = {"slug": slug, "name": name, "latest": runs[-1] if runs else None, "runs": len(runs)}
        if runs:
            latest = runs[-1]
            label = f"AUC of {name}'s active version over its evaluation runs"
            shown |= {
                "rate": quality_display.percent(latest.conversion_rate),
                "auc": quality_display.auc_text(latest),
                "lift": quality_display.lift_text(latest),
                "deciles": latest.figures.get("deciles") or [],
                "trend_chart": quality_display.auc_trend_chart(runs, label=label),
                "decile_chart": quality_display.decile_chart(
                    latest, label=f"Conversion and return rate by score decile of {name}"
                ),
            }
        trades.append(shown)
    return trades


def dashboard_build(*, days: int, now: dt.datetime | None = None) -> dict:
    """Everything the dashboard shows for the last `days` days, charts drawn."""
    now = now or timezone.now()
    period = period_of(days=days, today=timezone.localdate(now))
    trades = Trade.objects.values_list("slug", "name", "pk")
    names = {slug: name for slug, name, _ in trades}
    ids = {slug: pk for slug, _, pk in trades}
    funnel, funnel_at = dashboard_funnel(period)
    per_day, per_day_at = dashboard_leads_per_day(period)
    outcomes, outcomes_at = dashboard_outcomes(period)
    coverage, coverage_at = dashboard_coverage()
    money, money_at = dashboard_revenue(period)
    contractor_names = {
        str(pk): name
        for pk, name in Contractor.objects.filter(
            pk__in=[int(row.key) for row in outcomes["contractor"][:TOP_ROWS]]
        ).values_list("pk", "name")
    }  # read fresh: a renamed contractor shows at once
    as_of = min(funnel_at, per_day_at, outcomes_at, coverage_at, money_at)
    totals = {step: sum(steps[step] for steps in funnel.values()) for step in FUNNEL_STEPS}
    runs = list(JobRun.objects.select_related("trade")[:RECENT_RUNS])
    overdue = jobs_overdue(now=now)
    attention = dashboard_attention(now=now, overdue=overdue)
    return {
        "days": days,
        "periods": PERIODS,
        "period": period,
        "as_of": as_of,
        "as_of_local": timezone.localtime(as_of),
        "as_of_ago": _ago(as_of, now),
        "totals": totals,
        "totals_shown": [
            (step, f"{count:,}", reached_url(step, period.first_day, period.last_day)) for step, count in totals.items()
        ],
        "total_rates": {
            "converted": _rate(totals["converted"], totals["assigned"]),
            "returned": _rate(totals["returned"], totals["assigned"]),
        },
        "attention": attention,
        "attention_total": sum(item.count for item in attention),
        "funnel": _funnel_section(funnel, names, ids, period),
        "per_day": per_day,
        "today": [
            (
                step,
                f"{per_day.get(period.last_day, {}).get(step, 0):,}",
                reached_url(step, period.last_day, period.last_day),
            )
            for step in ("generated", "assigned", "converted")
        ],
        "per_day_chart": _per_day_chart(per_day, period),
        "per_day_legend": charts.legend(["generated", "assigned", "converted"]),
        "outcomes": outcomes,
        "contractor_names": contractor_names,
        "contractor_chart": _outcome_chart(
            f"Conversion and return rate by contractor, last {days} days",
            outcomes["contractor"],
            contractor_names,
            period,
            lambda key: {"contractor__id__exact": key},
        ),
        "zip_chart": _outcome_chart(
            f"Conversion and return rate by ZIP, last {days} days",
            outcomes["zip"],
            {},
            period,
            lambda key: {"zip": key},
        ),
        "rate_legend": charts.legend(["converted", "returned"]),
        "revenue": _revenue_section(money, period, names),
        "coverage": coverage,
        "coverage_chart": charts.stacked_bars(
            "Territory coverage per trade: ZIPs of the market owned, free with high demand, free",
            [(row.trade_name, [row.owned, row.free_high_demand, row.free - row.free_high_demand]) for row in coverage],
            ["owned", f"free, {HIGH_DEMAND}+ properties scoring {DEFAULT_DEMAND_MIN_SCORE:.0f}+", "free"],
            width=WIDE,
        ),
        "coverage_legend": charts.legend(
            ["owned", f"free, high demand ({HIGH_DEMAND}+ properties scoring {DEFAULT_DEMAND_MIN_SCORE:.0f}+)", "free"]
        ),
        "distributions": _distribution_section(scoring_runs_latest(per_trade=2), names),
        "quality": _quality_section(evaluation_trends_active(), names),
        "quality_trend_legend": charts.legend(quality_display.AUC_TREND_LEGEND),
        "quality_decile_legend": charts.legend(quality_display.DECILE_LEGEND),
        "evaluation_runs_url": reverse("admin:scoring_evaluationrun_changelist"),
        "runs": runs,
        "runs_failed": sum(run.status == JobRun.Status.FAILED for run in runs),
        "overdue": overdue,
        "runs_url": reverse("admin:leadengine_jobrun_changelist"),
    }


def dashboard_context(request) -> dict:
    """What the admin index shows above the list of models: the dashboard for `?days=` (7, 30, 90), to staff
    who may view leads (the figures are the business's; a staff user kept to other models sees none)."""
    if not request.user.has_perm("leads.view_lead"):
        return {}
    days, error = period_parse(request.GET.get("days"))
    return {"dashboard": dashboard_build(days=days), "dashboard_error": error}
