"""A scoring model version's page in a real browser: a frozen version offers neither Save nor Delete, "New
draft from this version" opens a draft holding every factor, and the draft shows what an edit changes from
the active version."""

import re

import pytest
from playwright.sync_api import expect

from scoring.models import ScoringModel
from tests.browser.conftest import user
from tests.contractors.factories import seeded_trades
from tests.scoring.test_model_drafts import factor_rows
from tests.scoring.test_scoring_runs import FACTORS, model_version


@pytest.fixture
def versions(transactional_db) -> dict[str, ScoringModel]:
    """Roofing's v1 (retired) and v2 (active), each with the three FACTORS."""
    roofing = seeded_trades()["roofing"]
    ScoringModel.objects.filter(trade=roofing).delete()
    retired = model_version(roofing, 1)
    active = model_version(roofing, 2)
    retired.refresh_from_db()
    return {"retired": retired, "active": active}


def change_page(model: ScoringModel) -> str:
    return f"/admin/scoring/scoringmodel/{model.pk}/change/"


def test_a_frozen_version_has_no_save_and_no_delete(screen, versions):
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page

    # The changes each status allows: a retired version can be brought back; any version can be copied.
    buttons = {"retired": ["Activate", "New draft from this version"], "active": ["New draft from this version"]}
    for status, model in versions.items():
        screen.goto(change_page(model))
        expect(page.locator("#content h2").first).to_be_visible()
        expect(page.locator("[name=_save], [name=_continue], [name=_addanother]")).to_have_count(0)
        expect(page.locator("a.deletelink")).to_have_count(0)
        expect(page.locator("input[name$=-weight]")).to_have_count(0)  # factors shown, not editable
        expect(page.locator("#factors-group")).to_contain_text("Roof is {value:.0f} years old")
        expect(page.locator(".object-tools button")).to_have_text(buttons[status])
        screen.shot(status)
    assert screen.errors == []


def test_new_draft_from_a_version_copies_every_factor_and_shows_an_edit_against_the_active_version(screen, versions):
    active = versions["active"]
    user("boss", is_superuser=True)
    screen.log_in("boss")
    page = screen.page
    screen.goto(change_page(active))

    page.get_by_role("button", name="New draft from this version").click()

    draft = ScoringModel.objects.get(trade=active.trade, version=3)
    expect(page).to_have_url(re.compile(rf"/admin/scoring/scoringmodel/{draft.pk}/change/$"))
    expect(page.locator(".messagelist")).to_contain_text("Roofing v3 is a new draft copied from v2.")
    weights = page.locator("input[name$=-weight]:not([name*=__prefix__])")
    expect(weights).to_have_count(len(FACTORS))
    expect(weights.nth(0)).to_have_value("50.0")
    expect(weights.nth(1)).to_have_value("30.0")
    expect(weights.nth(2)).to_have_value("20.0")
    assert (draft.status, factor_rows(draft)) == (ScoringModel.Status.DRAFT, factor_rows(active))
    expect(page.locator("#differences")).to_contain_text("Same definition as the active version")
    expect(page.locator("[name=_save]")).to_be_visible()
    screen.shot("draft")

    weights.nth(1).fill("45")
    page.locator("[name=_continue]").click()

    expect(page).to_have_url(re.compile(rf"/admin/scoring/scoringmodel/{draft.pk}/change/$"))
    changed = page.locator("#differences-table tr.difference-changed")
    expect(changed).to_have_count(1)
    expect(changed.locator("td")).to_have_text(
        ["Largest recent hail over the property (inches)", "changed", "Weight", "30", "45"]
    )
    assert draft.factors.get(position=1).weight == 45
    assert active.factors.get(position=1).weight == 30
    screen.shot("diff")
    assert screen.errors == []
