"""The profile endpoint: my record, caps and their usage in my time zone; pause and resume."""

from contractors.models import ContractorStatusChange
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from tests.leads.factories import api_client, owner, scored_home

URL = "/api/v1/profile/"


def test_the_profile_shows_caps_and_their_usage(roofing):
    acme = owner(roofing, "80202", daily_cap=2, weekly_cap=5, monthly_cap=20, time_zone="America/Denver")
    for score in (90, 80, 70):
        scored_home(roofing, score=score)
    leads_generate(trade=roofing)
    leads_route()

    body = api_client(acme).get(URL).json()

    assert (body["slug"], body["status"], body["trades"], body["time_zone"]) == (
        acme.slug,
        "active",
        ["roofing"],
        "America/Denver",
    )
    assert (body["daily_cap"], body["weekly_cap"], body["monthly_cap"]) == (2, 5, 20)
    assert body["usage"] == {"today": 2, "this_week": 2, "this_month": 2, "room": 0}


def test_pause_and_resume_are_audited_and_a_second_pause_is_409(roofing):
    acme = owner(roofing, "80202")
    client = api_client(acme)

    paused = client.post(f"{URL}pause/", {"reason": "crew on vacation"}, format="json")
    again = client.post(f"{URL}pause/", {}, format="json")
    resumed = client.post(f"{URL}resume/", {}, format="json")

    assert (paused.status_code, paused.json()["status"], paused.json()["status_reason"]) == (
        200,
        "paused",
        "crew on vacation",
    )
    assert (again.status_code, again.json()["code"]) == (409, "invalid_status_change")
    assert (resumed.status_code, resumed.json()["status"]) == (200, "active")
    assert list(
        ContractorStatusChange.objects.order_by("changed_at", "pk").values_list("from_status", "to_status")
    ) == [
        ("active", "paused"),
        ("paused", "active"),
    ]


def test_staff_have_no_profile(staff_client, db):
    response = staff_client.get(URL)

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
