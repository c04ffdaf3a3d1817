"""The back office's screenshots for README (docs/screenshots/): the dashboard, a lead with its buttons, coverage
with the market map, and a scoring model draft with its differences from the active version, each taken in
Debian's Chromium (Playwright, a development dependency) at 1440 x 900 as a staff member sees it.

`screenshots_take` walks a site already serving at `base_url`; `manage.py screenshots` serves the demo database
for it (`make screenshots`), and a test walks the browser tests' market with it, so the walk cannot rot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leads.models import Lead
from scoring.models import ScoringModel

if TYPE_CHECKING:  # Playwright is a development dependency: the command imports it when shots are taken
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1440, "height": 900}


@dataclass(frozen=True)
class Shot:
    name: str  # the file's name, without .png
    path: str  # the admin page, from the site's root


def shots_chosen() -> list[Shot]:
    """The pages to take, chosen on the data: a lead whose return waits for staff (its page offers the most
    buttons), else one delivered, else the newest; the newest scoring model draft, else the active version of
    the trade with most leads (the walk then makes a draft from it with its button)."""
    leads = Lead.objects.order_by("-pk")
    lead = (
        leads.filter(return_requested_at__isnull=False, state__in=[Lead.State.DELIVERED, Lead.State.ACCEPTED]).first()
        or leads.filter(state=Lead.State.DELIVERED).first()
        or leads.first()
    )
    models = ScoringModel.objects.order_by("-pk")
    model = (
        models.filter(status=ScoringModel.Status.DRAFT).first()
        or models.filter(status=ScoringModel.Status.ACTIVE).first()
    )
    shots = [Shot("dashboard", "/admin/"), Shot("coverage", "/admin/territories/territory/coverage/")]
    if lead is not None:
        shots.insert(1, Shot("lead", f"/admin/leads/lead/{lead.pk}/change/"))
    if model is not None:
        shots.append(Shot("scoring-model-draft", f"/admin/scoring/scoringmodel/{model.pk}/change/"))
    return shots


def screenshots_take(
    browser: Browser, *, base_url: str, username: str, password: str, shots: list[Shot], out_dir: Path
) -> list[Path]:
    """Log in through the admin's form, then a full-page screenshot of each page into `out_dir`. A scoring
    model that is not a draft is first copied into one with its page's "New draft from this version", and
    one weight of the copy changed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    taken = []
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")  # type: ignore[arg-type]
    try:
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto(f"{base_url}/admin/login/?next=/admin/")
        page.locator("#id_username").fill(username)
        page.locator("#id_password").fill(password)
        page.locator("#login-form [type=submit]").click()
        page.wait_for_url(f"{base_url}/admin/")
        for shot in shots:
            response = page.goto(base_url + shot.path)
            if response is None or response.status != 200:
                raise RuntimeError(f"{shot.path} answered {response.status if response else 'nothing'}.")
            if shot.name == "scoring-model-draft":
                _draft_opened(page)
            path = out_dir / f"{shot.name}.png"
            page.screenshot(path=path, full_page=True)
            taken.append(path)
    finally:
        context.close()
    return taken


def _draft_opened(page: Page) -> None:
    """On a scoring model's page: a frozen version is copied into a new draft with its button, and the draft's
    first factor weighs half again as much, saved, so that its page shows a difference from the active one."""
    button = page.get_by_role("button", name="New draft from this version")
    if page.locator("input[name=_save]").count() == 0 and button.count() == 1:
        button.click()
        page.wait_for_load_state()
        weight = page.locator("td.field-weight input").first
        weight.fill(f"{float(weight.input_value()) * 1.5:g}")
        page.locator("input[name=_continue]").click()
        page.wait_for_load_state()
