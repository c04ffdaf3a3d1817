"""The pages under their Content-Security-Policy (leadengine/csp.py) in a real browser: the login form, the
dashboard, a change list with its filters and actions, change forms with their scripts, the API docs (Swagger UI
drawing every operation), each with the policy's header and with no console error, no script error and no
violation of the policy (Chromium logs every refused script, style or image as a console error)."""

import re

from django_celery_beat.models import CrontabSchedule
from playwright.sync_api import expect

from leads.models import Lead
from tests.browser.conftest import user

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
CSP = re.compile("Content.Security.Policy", re.IGNORECASE)


def enforced(response) -> str:
    assert response is not None
    return response.headers.get("content-security-policy", "")


def test_the_back_office_pages_run_under_the_policy_without_a_violation(screen, market):
    user("boss", is_superuser=True)
    lead = market["leads"][Lead.State.ASSIGNED][0]
    page = screen.page

    assert enforced(screen.goto("/admin/login/?next=/admin/")) == PAGE_POLICY
    screen.log_in("boss")
    expect(page.locator("#dashboard svg.chart")).to_have_count(6)
    expect(page.locator("#dashboard .chart-swatch.chart-colour-0").first).to_be_visible()
    swatch = page.locator("#dashboard .chart-swatch.chart-colour-0").first
    assert swatch.evaluate("node => getComputedStyle(node).backgroundColor") == "rgb(65, 118, 144)"
    screen.shot("dashboard")

    assert enforced(screen.goto("/admin/leads/lead/")) == PAGE_POLICY
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(7)
    page.locator("#action-toggle").check()  # the actions script counts the selection
    expect(page.locator(".action-counter")).to_contain_text("7 of 7 selected")
    screen.shot("changelist")

    assert enforced(screen.goto(f"/admin/leads/lead/{lead.pk}/change/")) == PAGE_POLICY
    expect(page.locator("#lead_form")).to_be_visible()
    expect(page.locator("#content > h2")).to_have_text(str(lead))
    screen.shot("change-form")

    assert enforced(screen.goto("/admin/leadengine/jobrun/")) == PAGE_POLICY
    expect(page.locator("#changelist")).to_be_visible()
    screen.shot("job-runs")

    # The browsable API: inline styles allowed (DRF's templates), scripts only from the site.
    assert enforced(screen.goto("/api/v1/leads/")) == PAGE_POLICY.replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    )
    expect(page.locator(".response-info")).to_contain_text('"zip_code": "80204"')
    page.get_by_role("button", name="Filters").click()
    expect(page.locator("#filtersModal")).to_be_visible()  # Bootstrap's script opens the filters
    screen.shot("browsable-api")

    assert [error for error in screen.errors if CSP.search(error)] == []
    assert screen.errors == []


def test_a_schedules_form_translates_its_crontab_under_the_policy(screen, transactional_db):
    user("boss", is_superuser=True)
    crontab = CrontabSchedule.objects.create(minute="30", hour="2", day_of_week="*", day_of_month="*")
    screen.log_in("boss")
    page = screen.page

    assert enforced(screen.goto("/admin/django_celery_beat/periodictask/add/")) == PAGE_POLICY
    expect(page.locator(".field-crontab_translation")).to_be_hidden()
    page.locator("#id_crontab").select_option(str(crontab.pk))

    help_text = page.locator(".field-crontab .help")
    expect(help_text).to_contain_text("Translation: every day at 02:30 UTC")
    screen.shot("crontab")
    assert screen.errors == []


def test_the_api_docs_list_every_operation_under_the_policy(screen, transactional_db):
    page = screen.page
    schema = page.request.get(f"{screen.base_url}/api/schema/?format=json").json()
    operations = sum(
        1
        for methods in schema["paths"].values()
        for method in methods
        if method in {"get", "post", "put", "patch", "delete"}
    )

    assert enforced(screen.goto("/api/docs/")) == PAGE_POLICY
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("LeadEngine API")
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/leads/{id}/accept/")).to_have_count(1)
    page.locator(".opblock-summary-control").first.click()  # an operation opens, with its parameters
    expect(page.locator(".try-out__btn").first).to_be_visible()
    screen.shot("api-docs")

    assert [error for error in screen.errors if CSP.search(error)] == []
    assert screen.errors == []
