"""Staff roles: the groups seeded with exactly their permissions, and what each desk may and may not do in the
admin (a lead manager works leads but cannot touch scoring models or schedules)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from leadengine.services.roles import ROLES, UnknownPermission, role_permissions, roles_seed
from leadengine.services.schedules import schedules_seed
from leads.models import Lead
from scoring.models import ScoringModel
from tests.admin_pages import messages_of
from tests.leads.factories import owner
from tests.leads.test_admin import act, pool_lead, snapshot

PASSWORD = "pw-for-tests-only"


def group_permissions(name: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=name).permissions.values_list("content_type__app_label", "codename")
    }


def staff_in(role: str, client, username: str = "desk"):
    """A client logged in as a staff user (not a superuser) whose only permissions are the role's."""
    roles_seed()
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


@pytest.fixture
def market(roofing):
    """Roofing with an active scoring model, a contractor owning 80202, a lead there and the default
    schedules."""
    schedules_seed()
    return roofing, owner(roofing, "80202", name="Acme Roofing", slug="acme-roofing"), pool_lead(roofing)


def test_seeding_creates_each_role_with_exactly_its_permissions(db):
    assert roles_seed() == {role: (len(role_permissions(role)), 0) for role in ROLES}

    lead_manager = group_permissions("Lead manager")
    assert {"leads.view_lead", "leads.change_lead", "leads.add_suppression"} <= lead_manager
    assert not {p for p in lead_manager if p.startswith("django_celery_beat.") or p.endswith("scoringmodel")}
    assert {"territories.add_territory", "territories.change_territory"} <= group_permissions("Territory manager")
    assert {"django_celery_beat.change_periodictask", "scoring.change_scoringmodel", "leadengine.add_jobrun"} <= (
        group_permissions("Ops")
    )


def test_seeding_again_restores_a_role_changed_by_hand_and_leaves_other_groups_alone(db):
    roles_seed()
    lead_manager = Group.objects.get(name="Lead manager")
    lead_manager.permissions.remove(Permission.objects.get(codename="change_lead"))
    lead_manager.permissions.add(Permission.objects.get(codename="change_scoringmodel"))
    other = Group.objects.create(name="Auditors")
    other.permissions.add(Permission.objects.get(codename="change_scoringmodel"))

    assert roles_seed() == {"Lead manager": (1, 1), "Territory manager": (0, 0), "Ops": (0, 0)}

    assert "leads.change_lead" in group_permissions("Lead manager")
    assert "scoring.change_scoringmodel" not in group_permissions("Lead manager")
    assert group_permissions("Auditors") == {"scoring.change_scoringmodel"}


def test_a_role_naming_a_permission_that_does_not_exist_is_refused_by_name(db, monkeypatch):
    monkeypatch.setitem(ROLES, "Lead manager", {**ROLES["Lead manager"], "leads.leadnote": ("view",)})

    refused = r"'Lead manager' names permissions that do not exist: leads.view_leadnote"
    with pytest.raises(UnknownPermission, match=refused):
        roles_seed()
    assert not Group.objects.exists()  # all roles or none


def test_the_seed_roles_command_reports_what_it_changed(db):
    out = io.StringIO()
    call_command("seed_roles", stdout=out)
    call_command("seed_roles", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == f"Lead manager: {len(role_permissions('Lead manager'))} permissions added, 0 removed"
    assert lines[3:] == [
        "Lead manager: 0 permissions added, 0 removed",
        "Territory manager: 0 permissions added, 0 removed",
        "Ops: 0 permissions added, 0 removed",
    ]


def test_a_lead_manager_cannot_open_or_edit_scoring_models_or_schedules(client, market):
    roofing, _, _ = market
    model = ScoringModel.objects.get(trade=roofing, status=ScoringModel.Status.ACTIVE)
    schedule = PeriodicTask.objects.get(name="Webhook delivery")
    desk = staff_in("Lead manager", client)

    index = desk.get("/admin/").content.decode()
    assert "/admin/leads/lead/" in index
    assert "/admin/scoring/scoringmodel/" not in index
    assert "/admin/django_celery_beat/" not in index
    for url in (
        "/admin/scoring/scoringmodel/",
        f"/admin/scoring/scoringmodel/{model.pk}/change/",
        "/admin/scoring/scoringmodel/add/",
        "/admin/django_celery_beat/periodictask/",
        f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/",
        "/admin/django_celery_beat/crontabschedule/",
    ):
        assert desk.get(url).status_code == 403, url
    refused = desk.get("/admin/scoring/scoringmodel/").content.decode()
    assert "Your roles do not open this page (you are in Lead manager)" in refused
    assert 'href="/admin/">Back to the dashboard' in refused
    for url, data in (
        (f"/admin/scoring/scoringmodel/{model.pk}/change/", {"notes": "changed"}),
        (f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/", {"enabled": ""}),
        ("/admin/scoring/scoringmodel/", {"action": "activate", "_selected_action": [model.pk]}),
    ):
        assert desk.post(url, data).status_code == 403, url

    schedule.refresh_from_db()
    assert schedule.enabled
    assert ScoringModel.objects.get(pk=model.pk).notes == model.notes


def test_a_lead_manager_works_the_leads(client, market):
    _, acme, lead = market
    desk = staff_in("Lead manager", client)

    assert desk.get("/admin/leads/lead/").status_code == 200
    response = act(desk, "assign", [lead], contractor=acme.pk, reason="Homeowner called the office")

    assert messages_of(response) == [("success", f"1 lead assigned to Acme Roofing: {lead.pk}.")]
    assert Lead.objects.get(pk=lead.pk).contractor == acme
    assert desk.get("/admin/territories/territory/claim/").status_code == 403
    assert "Claim territories" not in desk.get("/admin/territories/territory/").content.decode()


def test_a_territory_manager_claims_territories_but_cannot_move_leads(client, market):
    _, _, lead = market
    desk = staff_in("Territory manager", client)
    before = snapshot(lead)

    assert 'name="zip_codes"' in desk.get("/admin/territories/territory/claim/").content.decode()
    assert desk.get("/admin/contractors/contractor/add/").status_code == 200
    page = desk.get("/admin/leads/lead/").content.decode()
    assert f"/admin/leads/lead/{lead.pk}/change/" in page
    assert 'value="withdraw"' not in page
    assert "success" not in dict(messages_of(act(desk, "withdraw", [lead], reason="Bad parcel data")))
    assert snapshot(lead) == before
    assert desk.get("/admin/scoring/scoringmodel/").status_code == 403


def test_ops_edit_schedules_and_scoring_models_but_cannot_move_leads(client, market):
    roofing, _, _lead = market
    model = ScoringModel.objects.get(trade=roofing, status=ScoringModel.Status.ACTIVE)
    schedule = PeriodicTask.objects.get(name="Webhook delivery")
    desk = staff_in("Ops", client)

    assert desk.get(f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/").status_code == 200
    assert desk.get(f"/admin/scoring/scoringmodel/{model.pk}/change/").status_code == 200
    assert desk.get("/admin/leadengine/jobrun/").status_code == 200
    assert 'value="assign"' not in desk.get("/admin/leads/lead/").content.decode()
    assert desk.get("/admin/territories/territory/claim/").status_code == 403
