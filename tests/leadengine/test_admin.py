"""The admin at scale and its actions' permissions: the change lists of the big tables run a fixed number
of queries however many rows they show, and say "about N" when the count is PostgreSQL's estimate; job
runs are started from their change list; an action is offered only to staff allowed to do what it does."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone

from contractors.services.api_keys import api_key_create
from core import admin as admin_tools
from leadengine.models import JobRun
from leads.services.generation import leads_generate
from scoring.admin import PropertyAdmin
from scoring.models import Property, ZipCode
from territories.models import Territory
from territories.services.claims import territory_claim_many
from tests.admin_pages import messages_of
from tests.admin_pages import page_of as admin_page_of
from tests.contractors.factories import ContractorFactory
from tests.leads.factories import filters, home, scored_home

JOBRUNS = "/admin/leadengine/jobrun/"
PROPERTIES = "/admin/scoring/property/"


def page_of(response) -> str:
    assert response.status_code == 200
    return admin_page_of(response)


def staff_with(client, *codenames: str):
    """A staff user with exactly the permissions `codenames`, logged in."""
    user = get_user_model().objects.create_user("limited", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def analyze(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def finished_run() -> JobRun:
    now = timezone.now()
    return JobRun.objects.create(
        job=JobRun.Job.DAILY_REPORT, status=JobRun.Status.SUCCEEDED, queued_at=now, started_at=now, finished_at=now
    )


# --- A fixed number of queries per change list --------------------------------------------------------


def add_properties(trade, count: int) -> None:
    for _ in range(count):
        home()


def add_scores(trade, count: int) -> None:
    for _ in range(count):
        scored_home(trade, score=50)


def add_leads(trade, count: int) -> None:
    for index in range(count):
        scored_home(trade, score=50, zip_code="80202" if index % 2 else "80203")
    leads_generate(trade=trade)


def add_territories(trade, count: int) -> None:
    contractors = [ContractorFactory(trades=[trade]) for _ in range(5)]
    taken = Territory.objects.values_list("zip_code_id", flat=True)
    codes = ZipCode.objects.filter(state="CO", active=True).exclude(code__in=taken).order_by("code")[:count]
    for index, code in enumerate(codes):
        territory_claim_many(contractor=contractors[index % len(contractors)], trade=trade, zip_codes=[code.code])


def add_job_runs(trade, count: int) -> None:
    now = timezone.now()
    user = get_user_model().objects.get(username="staff")
    JobRun.objects.bulk_create(
        JobRun(
            job=JobRun.Job.SCORING if index % 2 else JobRun.Job.DAILY_REPORT,
            trade=trade if index % 2 else None,
            status=JobRun.Status.SUCCEEDED,
            requested_by=user if index % 3 else None,
            queued_at=now,
            started_at=now,
            finished_at=now,
        )
        for index in range(count)
    )


def rows_of(page: str, row_class: str) -> list[str]:
    """The rows of a change list page, by their first column's cell."""
    return re.findall(rf'<th class="{row_class}\b', page)


# (change list, rows shown, how rows are added, the most queries it may run)
CHANGE_LISTS = [
    pytest.param(PROPERTIES, "field-parcel_id", add_properties, 6, id="properties"),
    pytest.param("/admin/scoring/score/", "field-property", add_scores, 7, id="scores"),
    pytest.param("/admin/leads/lead/", "field-id", add_leads, 7, id="leads"),
    pytest.param("/admin/territories/territory/", "field-zip_code_id", add_territories, 11, id="territories"),
    pytest.param(JOBRUNS, "field-id", add_job_runs, 10, id="job runs"),
]


@pytest.mark.parametrize(("url", "row_class", "add", "most"), CHANGE_LISTS)
def test_change_list_queries_do_not_grow_with_its_rows(
    staff_client, trades, zip_codes, url, row_class, add, most, django_assert_max_num_queries
):
    trade = trades["roofing"]
    filters(trade)
    queries = []
    for total in (5, 50):
        add(trade, total - len(rows_of(page_of(staff_client.get(url)), row_class)))
        with django_assert_max_num_queries(most) as captured:
            page = page_of(staff_client.get(url))
        queries.append(len(captured))
        assert len(rows_of(page, row_class)) == total
        paginator = re.search(r'<p class="paginator">(.*?)</p>', page, re.S).group(1)
        assert f"{total} " in paginator
        assert "about" not in paginator
    assert queries[0] == queries[1]


# --- Estimated counts -------------------------------------------------------------------------------


@pytest.fixture
def big_threshold(monkeypatch):
    """Tables of 30 rows count as big: the threshold lowered rather than a million rows made."""
    monkeypatch.setattr(admin_tools, "ESTIMATE_THRESHOLD", 20)


@pytest.fixture
def thirty_properties(zip_codes):
    homes = [home(property_type=Property.Type.TOWNHOUSE if index < 3 else Property.Type.SINGLE_FAMILY)
             for index in range(30)]  # fmt: skip
    analyze("scoring_property")  # as autovacuum would: the table's statistics say 30 rows
    return homes


def test_an_unfiltered_big_table_shows_its_estimated_count(staff_client, thirty_properties, big_threshold, monkeypatch):
    monkeypatch.setattr(PropertyAdmin, "list_per_page", 10)
    page = page_of(staff_client.get(PROPERTIES))

    assert re.search(r'<span class="estimated-count"[^>]*>about 30</span> properties', page)
    assert "Select all about 30 properties" in page


def test_a_filter_matching_many_rows_shows_the_planners_estimate(
    staff_client, thirty_properties, big_threshold, monkeypatch
):
    monkeypatch.setattr(PropertyAdmin, "list_per_page", 10)
    page = page_of(staff_client.get(f"{PROPERTIES}?property_type__exact=single_family"))

    estimate = int(re.search(r"about (\d+) results", page).group(1))
    assert 20 <= estimate <= 30  # the planner's, from the statistics: 27 rows match
    assert len(rows_of(page, "field-parcel_id")) == 10


def test_the_search_bar_counts_results_only_of_a_filtered_or_searched_list(staff_client, thirty_properties):
    assert " results (" not in page_of(staff_client.get(PROPERTIES))  # the pages' count says it

    page = page_of(staff_client.get(f"{PROPERTIES}?property_type__exact=townhouse"))
    assert re.search(r"3 results \(<a href=\"\?\">Show all</a>\)", page)


def test_a_filter_matching_few_rows_is_counted_exactly(staff_client, thirty_properties, big_threshold):
    page = page_of(staff_client.get(f"{PROPERTIES}?property_type__exact=townhouse"))

    assert "3 results" in page
    assert "about" not in page
    assert len(rows_of(page, "field-parcel_id")) == 3


def test_an_estimate_that_the_first_page_outlasts_gives_way_to_the_rows_shown(
    staff_client, thirty_properties, big_threshold, monkeypatch
):
    monkeypatch.setattr(PropertyAdmin, "list_per_page", 10)
    Property.objects.filter(pk__in=[prop.pk for prop in thirty_properties[5:]]).delete()  # statistics: still 30

    page = page_of(staff_client.get(PROPERTIES))

    paginator = re.search(r'<p class="paginator">(.*?)</p>', page, re.S).group(1)
    assert "5 properties" in paginator
    assert "about" not in page
    assert len(rows_of(page, "field-parcel_id")) == 5


def test_a_page_past_an_estimate_that_fell_short_still_shows_its_rows(
    staff_client, thirty_properties, big_threshold, monkeypatch
):
    monkeypatch.setattr(PropertyAdmin, "list_per_page", 10)
    home(), home(), home()  # 33 rows, 30 in the statistics: three pages of ten and a fourth of three

    page = page_of(staff_client.get(PROPERTIES, {"p": 4}))

    assert len(rows_of(page, "field-parcel_id")) == 3
    assert "33 properties" in page


def test_a_table_never_analyzed_is_counted_exactly(staff_client, zip_codes, big_threshold):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE pg_class SET reltuples = -1 WHERE oid = 'leadengine_jobrun'::regclass")
    finished_run()

    page = page_of(staff_client.get(JOBRUNS))

    assert "1 job run" in page
    assert "about" not in page


def test_a_filter_that_can_match_nothing_is_estimated_without_a_query(db):
    assert admin_tools.plan_rows_estimate(Property.objects.filter(pk__in=[])) == 0


# --- Running a job now ------------------------------------------------------------------------------


def test_job_runs_list_offers_to_run_a_job_now(staff_client):
    page = page_of(staff_client.get(JOBRUNS))

    assert 'href="/admin/leadengine/jobrun/run/"' in page
    assert "Run a job now" in page
    form = page_of(staff_client.get(f"{JOBRUNS}run/"))
    assert '<select name="job"' in form
    assert '<select name="trade"' in form
    assert 'value="Run now"' in form


def test_run_form_queues_the_job_and_says_so(staff_client, trades):
    response = staff_client.post(f"{JOBRUNS}run/", {"job": "scoring", "trade": trades["roofing"].pk}, follow=True)

    run = JobRun.objects.get()
    assert (run.job, run.trade, run.status, run.requested_by.username) == (
        "scoring",
        trades["roofing"],
        "queued",
        "staff",
    )
    assert messages_of(response) == [("success", f"Score every property for Roofing queued as run {run.pk}.")]


def test_run_form_refuses_a_job_already_waiting_and_a_per_trade_job_without_trade(staff_client, trades):
    staff_client.post(f"{JOBRUNS}run/", {"job": "daily_report"}, follow=True)
    waiting = JobRun.objects.get()

    busy = staff_client.post(f"{JOBRUNS}run/", {"job": "daily_report"})
    no_trade = staff_client.post(f"{JOBRUNS}run/", {"job": "scoring"})

    assert messages_of(busy) == [
        (
            "error",
            (
                f"Email the daily report not started: Email the daily report is already queued (run {waiting.pk}); "
                "wait for it to end."
            ),
        )
    ]
    assert messages_of(no_trade) == [
        ("error", "Score every property not started: Score every property runs per trade: name the trade.")
    ]
    assert list(JobRun.objects.all()) == [waiting]


def test_run_again_action_queues_each_selected_job_once(staff_client, trades):
    add_job_runs(trades["roofing"], 4)  # two scoring runs for roofing, two daily reports
    selected = list(JobRun.objects.values_list("pk", flat=True))

    response = staff_client.post(JOBRUNS, {"action": "run_again", "_selected_action": selected}, follow=True)

    queued = JobRun.objects.filter(status=JobRun.Status.QUEUED)
    report = queued.get(job="daily_report")
    scoring = queued.get(job="scoring", trade=trades["roofing"])
    assert messages_of(response) == [
        ("success", f"Email the daily report queued as run {report.pk}."),
        ("success", f"Score every property for Roofing queued as run {scoring.pk}."),
    ]


def test_staff_who_may_only_view_job_runs_cannot_run_one(client, trades):
    staff_with(client, "view_jobrun")
    finished_run()
    before = list(JobRun.objects.values_list("pk", "status"))

    page = page_of(client.get(JOBRUNS))
    form = client.post(f"{JOBRUNS}run/", {"job": "daily_report"})
    action = client.post(JOBRUNS, {"action": "run_again", "_selected_action": [before[0][0]]}, follow=True)

    assert "Run a job now" not in page
    assert 'value="run_again"' not in page
    assert form.status_code == 403
    assert messages_of(action) == []  # no action is offered: the post is a plain page load
    assert list(JobRun.objects.values_list("pk", "status")) == before


# --- Actions only for those allowed -------------------------------------------------------------------

# (change list, the permission to view it, the permission its actions need, the actions)
ACTIONS = [
    pytest.param("/admin/leads/lead/", "view_lead", "change_lead",
                 ["assign", "withdraw", "approve_return", "deny_return"], id="leads"),
    pytest.param("/admin/territories/territory/", "view_territory", "change_territory", ["release", "transfer"],
                 id="territories"),
    pytest.param("/admin/territories/waitlistentry/", "view_waitlistentry", "change_waitlistentry",
                 ["accept_offer", "leave"], id="waitlist"),
    pytest.param("/admin/contractors/contractor/", "view_contractor", "change_contractor",
                 ["pause", "resume", "suspend", "rotate_webhook_secret"], id="contractors"),
    pytest.param("/admin/contractors/apikey/", "view_apikey", "change_apikey", ["revoke"], id="api keys"),
    pytest.param("/admin/scoring/scoringmodel/", "view_scoringmodel", "change_scoringmodel", ["activate"],
                 id="scoring models"),
    pytest.param(JOBRUNS, "view_jobrun", "add_jobrun", ["run_again"], id="job runs"),
]  # fmt: skip


def offered(page: str) -> set[str]:
    return set(re.findall(r'<option value="(\w+)"', page.split('name="action"', 1)[-1].split("</select>", 1)[0]))


@pytest.mark.parametrize(("url", "view", "needed", "actions"), ACTIONS)
def test_actions_are_offered_only_to_staff_allowed_to_do_them(client, db, url, view, needed, actions):
    api_key_create(contractor=ContractorFactory(), name="CRM")  # change lists with rows show their actions
    staff_with(client, view)
    viewing = offered(page_of(client.get(url)))
    client.logout()
    get_user_model().objects.filter(username="limited").delete()
    staff_with(client, view, needed)
    allowed = offered(page_of(client.get(url)))

    assert not viewing & set(actions)
    assert set(actions) <= allowed
