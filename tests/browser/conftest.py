"""Browser tests: Debian's Chromium, driven by Playwright, against the site served by pytest-django's
live server (its own thread and database connection, so test data is committed: these tests are
transactional). One Chromium for the browser tests, a new context (cookies, storage) for each test; a
screenshot of each step, and one of the page when a test fails, under test-artifacts/browser/."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from leads.models import Lead, LeadEvent
from leads.services.generation import leads_generate
from leads.services.lifecycle import lead_accept, lead_convert, lead_return, leads_deliver
from leads.services.routing import leads_route
from scoring.models import ScoringModel, ScoringRun
from tests.contractors.factories import seeded_trades
from tests.leads.factories import active_model, filters, owner, scored_home

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-for-tests-only"
# expect()'s default wait is 5 s; two shared cores running the live server and Chromium may need more.
expect.set_options(timeout=10_000)
STAFF = LeadEvent.Actor.STAFF


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item, so that the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests. Package-scoped rather than session-scoped: Playwright's sync API
    keeps an asyncio loop running in the test thread while it is started, and Django refuses ORM calls
    from a thread with a running loop (SynchronousOnlyOperation). The loop is idle whenever test code
    runs, so the check is lifted while Playwright runs, and only then: the rest of the suite keeps it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Debian's Chromium at {CHROMIUM}; install it with "
            "`apt-get install chromium` (Playwright's own browser downloads are not used).",
            pytrace=False,
        )
    allowed = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if allowed is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = allowed


@dataclass
class Screen:
    """The test's page, the errors it logged, and its screenshots."""

    page: Page
    base_url: str
    artifacts: Path
    name: str
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str):
        return self.page.goto(self.base_url + path)

    def shot(self, step: str) -> Path:
        path = self.artifacts / f"{self.name}-{step}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        """Through the admin's login form, as staff do."""
        self.goto("/admin/login/?next=/admin/")
        self.page.locator("#id_username").fill(username)
        self.page.locator("#id_password").fill(password)
        self.shot("login")
        self.page.locator("#login-form [type=submit]").click()
        self.page.wait_for_url(f"{self.base_url}/admin/")


@pytest.fixture
def screen(request, browser: Browser, live_server) -> Iterator[Screen]:
    with open_screen(request, browser, live_server.url) as opened:
        yield opened


@contextmanager
def open_screen(request, browser: Browser, base_url: str) -> Iterator[Screen]:
    """A new browser context (cookies, storage) on `base_url`, its page's console errors and script errors
    collected, and a screenshot of the page when the test failed."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    artifacts = request.config.rootpath / "test-artifacts" / "browser"
    artifacts.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    for stale in artifacts.glob(f"{name}-*.png"):  # a failure shot of an earlier run would mislead
        stale.unlink()
    screen = Screen(page=page, base_url=base_url, artifacts=artifacts, name=name)
    page.on("console", lambda message: _console_error(screen, message))
    page.on("pageerror", lambda error: screen.errors.append(f"page error: {error}"))
    try:
        yield screen
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            screen.shot("failure")
    finally:
        context.close()


def _console_error(screen: Screen, message: ConsoleMessage) -> None:
    if message.type == "error":
        screen.errors.append(f"console: {message.text} ({message.location.get('url', '')})")


def user(username: str, **fields):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True, **fields)


@pytest.fixture
def market(transactional_db, zip_codes, settings) -> dict:
    """Roofing, scored by its active model. Acme owns 80202 (homes scoring 95, 90, 85, 82), Bolt owns 80203
    (80, 78); 80204 (75) is nobody's. Acme's four leads are delivered: one is converted, one returned,
    one accepted, one left delivered; Bolt's two stay assigned and 80204's stays generated (unassigned).
    One scoring run drawn in the score distribution."""
    settings.LEAD_RETURN_RATE_PERCENT = 100  # a return is made at once, not left waiting for approval
    roofing = seeded_trades()["roofing"]
    ScoringModel.objects.exclude(trade=roofing).update(status=ScoringModel.Status.RETIRED)
    filters(roofing)
    model = active_model(roofing)
    acme = owner(roofing, "80202", name="Acme Roofing", slug="acme-roofing")
    bolt = owner(roofing, "80203", name="Bolt Roofing", slug="bolt-roofing")
    for score in (95, 90, 85, 82):
        scored_home(roofing, score=score, zip_code="80202")
    for score in (80, 78):
        scored_home(roofing, score=score, zip_code="80203")
    scored_home(roofing, score=75, zip_code="80204")
    leads_generate(trade=roofing)
    leads_route(trade_ids=[roofing.pk])
    held = list(Lead.objects.filter(contractor=acme).order_by("-score"))
    leads_deliver(lead_ids=[lead.pk for lead in held], via="api")
    lead_accept(lead=held[0], actor="contractor")
    lead_convert(lead=held[0], actor="contractor", job_value="9000")
    lead_return(lead=held[1], reason="not_owner", actor=STAFF)
    lead_accept(lead=held[2], actor="contractor")
    histogram = {f"{ten}-{ten + 10}": {70: 2, 80: 3, 90: 2}.get(ten, 0) for ten in range(0, 100, 10)}
    ScoringRun.objects.create(
        trade=roofing,
        model=model,
        status=ScoringRun.Status.SUCCEEDED,
        as_of=timezone.localdate() - dt.timedelta(days=1),
        properties_scored=7,
        finished_at=timezone.now(),
        distribution={"count": 7, "mean_score": 83.6, "p50": 82, "histogram": histogram},
    )
    return {"roofing": roofing, "acme": acme, "bolt": bolt, "leads": {state: _in(state) for state in Lead.State}}


def _in(state: str) -> list[Lead]:
    return list(Lead.objects.filter(state=state).order_by("pk"))
