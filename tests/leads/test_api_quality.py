"""Lead quality through the API, for staff: /api/v1/quality/evaluations/, newest first, filtered by trade and
version, paginated, with the figures; contractors and anonymous callers are refused."""

import datetime as dt
import json

import pytest
from rest_framework.test import APIClient

from leads.api.quality import FIGURE_DECIMALS
from leads.services.quality import models_evaluate
from scoring.models import EvaluationRun, ScoringModel
from tests.leads.factories import active_model, api_client, owner, tiny_set

URL = "/api/v1/quality/evaluations/"
TODAY = dt.date(2026, 6, 30)


@pytest.fixture
def runs(roofing, trades):
    """Roofing's active version evaluated twice (90 days, then 30), and a solar run."""
    model = active_model(roofing)
    tiny_set(roofing, model, owner(roofing, "80202"), generated_on=TODAY)
    first = models_evaluate(today=TODAY)[0]
    second = models_evaluate(days=30, today=TODAY)[0]
    solar = trades["solar"]
    other = ScoringModel.objects.create(trade=solar, version=41)
    third = EvaluationRun.objects.create(trade=solar, model=other, first_day=TODAY, last_day=TODAY)
    return model, first, second, third


def test_staff_list_evaluations_newest_first_with_their_figures(staff_api, runs, django_assert_max_num_queries):
    _, client = staff_api
    model, first, second, third = runs

    with django_assert_max_num_queries(3):  # the user's session aside: one query for the page
        response = client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert [run["id"] for run in body["results"]] == [third.pk, second.pk, first.pk]
    newest_roofing = body["results"][1]
    assert {key: newest_roofing[key] for key in ("trade", "model", "model_version", "model_status")} == {
        "trade": "roofing", "model": model.pk, "model_version": model.version, "model_status": "active",
    }  # fmt: skip
    assert (newest_roofing["first_day"], newest_roofing["last_day"]) == ("2026-06-01", "2026-06-30")
    assert (newest_roofing["outcomes"], newest_roofing["conversions"], newest_roofing["exploration_outcomes"]) == (
        10, 4, 1,
    )  # fmt: skip
    assert newest_roofing["auc"] == round(14 / 48, 4) == 0.2917  # figures to 4 decimals, no floating-point tail
    assert newest_roofing["top_decile_lift"] == 1.75
    assert [decile["leads"] for decile in newest_roofing["figures"]["deciles"]] == [1, 2, 1, 2, 1, 1, 1, 0, 1, 0]
    assert newest_roofing["figures"]["reasons"][0]["feature"] == "roof_age"
    assert newest_roofing["figures"]["missing"] == {}
    written: list[str] = []  # every float of the answer, as written in its JSON
    json.loads(response.content, parse_float=lambda text: written.append(text) or float(text))
    assert written
    assert max(len(text.partition(".")[2]) for text in written) <= FIGURE_DECIMALS
    assert body["results"][0]["auc"] is None


def test_staff_filter_evaluations_by_trade_and_version_and_page_through_them(staff_api, runs):
    _, client = staff_api
    _, first, second, third = runs

    assert [run["id"] for run in client.get(URL, {"trade": "roofing"}).json()["results"]] == [second.pk, first.pk]
    assert [run["id"] for run in client.get(URL, {"model": third.model_id}).json()["results"]] == [third.pk]
    assert client.get(URL, {"trade": "roofing", "model": third.model_id}).json()["results"] == []
    page = client.get(URL, {"trade": "roofing", "page_size": 1}).json()
    assert [run["id"] for run in page["results"]] == [second.pk]
    assert [run["id"] for run in client.get(page["next"]).json()["results"]] == [first.pk]
    assert client.get(f"{URL}{first.pk}/").json()["id"] == first.pk
    refused = client.get(URL, {"model": "v1"})
    assert (refused.status_code, refused.json()["fields"]) == (400, {"model": ["Enter a number."]})


def test_contractors_and_anonymous_callers_are_refused(roofing, runs):
    _, first, _, _ = runs
    client = api_client(owner(roofing, "80203"))

    for response in (client.get(URL), client.get(f"{URL}{first.pk}/")):
        assert response.status_code == 403
        assert response.json() == {"code": "permission_denied", "detail": "Only staff may do this.", "fields": {}}
    assert APIClient().get(URL).status_code in (401, 403)
