"""The contractor and API key admin: inlines, status actions, trades through the service, keys shown once."""

import hashlib
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contractors.models import ApiKey, Contractor, ContractorStatusChange, ContractorTrade, Membership
from contractors.selectors import contractor_for_user
from contractors.services.api_keys import api_key_create
from contractors.services.contractors import contractor_member_add
from territories.services.claims import territory_claim_many
from tests.contractors.factories import ContractorFactory

CHANGELIST = "/admin/contractors/contractor/"


def contractor_form(contractor, **changes):
    data = {
        "name": contractor.name,
        "slug": contractor.slug,
        "served_trades": list(contractor.trades.values_list("pk", flat=True)) if contractor.pk else [],
        "contact_email": contractor.contact_email,
        "contact_phone": "",
        "time_zone": contractor.time_zone,
        "webhook_url": "",
        "notes": "",
        "daily_cap": "",
        "weekly_cap": "",
        "monthly_cap": "",
        "billing": contractor.billing,
        "credit_limit": str(contractor.credit_limit),
    }
    for prefix in ("memberships", "territories", "waitlist_entries", "api_keys", "status_changes"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(changes)
    return data


def test_contractor_page_shows_its_territories_and_keys_inline(staff_client, zip_codes, acme, trades):
    territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80302", "80304"])
    key, raw_key = api_key_create(contractor=acme, name="CRM sync")

    page = staff_client.get(f"{CHANGELIST}{acme.pk}/change/").content.decode()

    assert "80302" in page
    assert "80304" in page
    assert key.prefix in page
    assert "CRM sync" in page
    assert raw_key not in page
    assert key.key_hash not in page


def test_changelist_counts_active_territories_and_filters_by_status(staff_client, zip_codes, acme, trades):
    territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80302", "80304", "80305"])
    page = staff_client.get(f"{CHANGELIST}?status__exact=active").content.decode()
    assert re.search(r'<td class="field-territory_count">3</td>', page)
    assert "Acme Roofing" not in staff_client.get(f"{CHANGELIST}?status__exact=paused").content.decode()


def test_pause_action_asks_for_a_reason_then_pauses_with_an_audit_row(staff_client, acme):
    form = staff_client.post(CHANGELIST, {"action": "pause", "_selected_action": [acme.pk]})
    assert form.status_code == 200
    assert "Pause contractors" in form.content.decode()
    assert Contractor.objects.get(pk=acme.pk).status == "active"

    response = staff_client.post(
        CHANGELIST,
        {"action": "pause", "_selected_action": [acme.pk], "apply": "yes", "reason": "Storm season backlog"},
        follow=True,
    )

    assert "Acme Roofing is now paused (no new assignments)." in response.content.decode()
    acme.refresh_from_db()
    assert (acme.status, acme.status_reason) == ("paused", "Storm season backlog")
    change = ContractorStatusChange.objects.get()
    assert (change.from_status, change.to_status, change.reason, change.changed_by.username) == (
        "active",
        "paused",
        "Storm season backlog",
        "staff",
    )


def test_resume_action_reports_a_contractor_already_active(staff_client, acme):
    response = staff_client.post(CHANGELIST, {"action": "resume", "_selected_action": [acme.pk]}, follow=True)
    assert "Acme Roofing is already active." in response.content.decode()
    assert not ContractorStatusChange.objects.exists()


def test_adding_a_contractor_sets_its_trades(staff_client, trades):
    data = contractor_form(
        Contractor(name="Peak Solar", slug="peak-solar", time_zone="America/Denver"),
        served_trades=[trades["solar"].pk, trades["windows"].pk],
    )
    response = staff_client.post(f"{CHANGELIST}add/", data)
    assert response.status_code == 302, response.content.decode()
    contractor = Contractor.objects.get(slug="peak-solar")
    assert sorted(contractor.trades.values_list("slug", flat=True)) == ["solar", "windows"]


def test_dropping_a_trade_with_territories_is_refused_in_the_form(staff_client, zip_codes, acme, trades):
    territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80302", "80304"])

    response = staff_client.post(
        f"{CHANGELIST}{acme.pk}/change/", contractor_form(acme, served_trades=[trades["solar"].pk], name="Renamed")
    )

    assert response.status_code == 200
    assert (
        "It still owns territories of the trades removed: 80302 Roofing, 80304 Roofing. Release or transfer them first."
        in response.content.decode()
    )
    acme.refresh_from_db()
    assert acme.name == "Acme Roofing"
    assert list(ContractorTrade.objects.values_list("contractor__slug", "trade__slug")) == [("acme-roofing", "roofing")]


def test_a_staff_user_cannot_be_added_as_a_contractor_user(staff_client, acme, django_user_model):
    staff = django_user_model.objects.get(username="staff")
    data = contractor_form(
        acme,
        **{
            "memberships-TOTAL_FORMS": 1,
            "memberships-0-user": staff.pk,
            "memberships-0-contractor": acme.pk,
        },
    )
    response = staff_client.post(f"{CHANGELIST}{acme.pk}/change/", data)
    assert response.status_code == 200
    assert "Staff users belong to no contractor." in response.content.decode()
    assert not Membership.objects.exists()


def test_adding_a_key_shows_it_once_and_stores_its_hash(staff_client, acme):
    response = staff_client.post("/admin/contractors/apikey/add/", {"contractor": acme.pk, "name": "CRM"}, follow=True)

    page = response.content.decode()
    raw_key = re.search(r"API key for Acme Roofing: (le_[0-9a-f]{8}_[A-Za-z0-9_-]{43})", page).group(1)
    key = ApiKey.objects.get()
    assert (key.name, key.created_by.username) == ("CRM", "staff")
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key not in staff_client.get(f"/admin/contractors/apikey/{key.pk}/change/").content.decode()


def test_staff_add_a_key_of_their_own_shown_once(staff_client, acme):
    response = staff_client.post("/admin/contractors/apikey/add/", {"for_me": "on", "name": "Reports"}, follow=True)

    page = response.content.decode()
    raw_key = re.search(r"API key for staff \(staff\): (le_[0-9a-f]{8}_[A-Za-z0-9_-]{43})", page).group(1)
    key = ApiKey.objects.get()
    assert (key.user.username, key.contractor, key.name, key.created_by.username) == ("staff", None, "Reports", "staff")
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    change_page = staff_client.get(f"/admin/contractors/apikey/{key.pk}/change/").content.decode()
    assert raw_key not in change_page
    assert "staff (staff)" in change_page


@pytest.mark.parametrize("data", [{"contractor": "ACME", "for_me": "on"}, {}])
def test_a_key_needs_a_contractor_or_my_own_not_both_nor_neither(staff_client, acme, data):
    data = {key: acme.pk if value == "ACME" else value for key, value in data.items()}
    response = staff_client.post("/admin/contractors/apikey/add/", {**data, "name": "x"})

    assert response.status_code == 200
    assert "a key has exactly one owner" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_key_list_shows_each_keys_owner_and_filters_by_kind(staff_client, acme, django_user_model):
    contractor_key, _ = api_key_create(contractor=acme, name="CRM")
    staff_key, _ = api_key_create(user=django_user_model.objects.get(username="staff"), name="Reports")

    page = staff_client.get("/admin/contractors/apikey/").content.decode()
    assert '<td class="field-owner">Acme Roofing</td>' in page
    assert '<td class="field-owner">staff (staff)</td>' in page
    staff_only = staff_client.get("/admin/contractors/apikey/?owner=staff").content.decode()
    assert staff_key.prefix in staff_only
    assert contractor_key.prefix not in staff_only


def test_revoke_action_revokes_the_selected_keys(staff_client, acme):
    kept, _ = api_key_create(contractor=acme)
    revoked, _ = api_key_create(contractor=acme)
    staff_client.post("/admin/contractors/apikey/", {"action": "revoke", "_selected_action": [revoked.pk]})
    assert {pk: at is not None for pk, at in ApiKey.objects.values_list("pk", "revoked_at")} == {
        kept.pk: False,
        revoked.pk: True,
    }


@pytest.mark.parametrize("url", ["/admin/contractors/apikey/?revoked=no", "/admin/contractors/contractorstatuschange/"])
def test_key_and_status_history_lists_open(staff_client, acme, url):
    assert staff_client.get(url).status_code == 200


def test_contractor_page_queries_do_not_grow_with_its_territories(staff_client, zip_codes, acme, trades):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(f"{CHANGELIST}{acme.pk}/change/").status_code == 200
        return len(captured)

    territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80301", "80302"])
    few = queries()
    territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80303", "80304", "80305", "80501"])
    assert queries() == few


def test_suspend_action_asks_for_a_reason_then_suspends(staff_client, acme):
    response = staff_client.post(
        CHANGELIST,
        {"action": "suspend", "_selected_action": [acme.pk], "apply": "yes", "reason": "Unpaid invoices"},
        follow=True,
    )

    acme.refresh_from_db()
    assert (acme.status, acme.status_reason) == ("suspended", "Unpaid invoices")
    assert f"{acme} is now {acme.get_status_display().lower()}." in response.content.decode()
    assert ContractorStatusChange.objects.get().to_status == "suspended"


def test_rotate_action_gives_new_webhook_secrets_and_says_so(staff_client, acme):
    before = acme.webhook_secret

    response = staff_client.post(
        CHANGELIST, {"action": "rotate_webhook_secret", "_selected_action": [acme.pk]}, follow=True
    )

    acme.refresh_from_db()
    assert acme.webhook_secret != before
    assert "New webhook secrets for 1 contractors; tell them before the next delivery." in response.content.decode()


def membership_rows(*rows, initial: int = 0) -> dict:
    """The users inline's fields: one dict per row (id, user, DELETE)."""
    data = {"memberships-TOTAL_FORMS": len(rows), "memberships-INITIAL_FORMS": initial}
    for number, row in enumerate(rows):
        data.update({f"memberships-{number}-{name}": value for name, value in row.items()})
    return data


def test_adding_a_user_on_the_contractor_page_makes_them_act_for_it(staff_client, acme, django_user_model):
    pat = django_user_model.objects.create_user("pat", password="pw-for-tests-only")

    data = contractor_form(acme, **membership_rows({"user": pat.pk, "contractor": acme.pk}))
    response = staff_client.post(f"{CHANGELIST}{acme.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()
    membership = Membership.objects.get()
    assert (membership.user, membership.contractor) == (pat, acme)
    assert contractor_for_user(user=pat) == acme
    entry = LogEntry.objects.get(object_id=str(acme.pk))
    assert "Added membership “pat at Acme Roofing”." in entry.get_change_message()


def test_removing_a_user_on_the_contractor_page_ends_their_access(staff_client, acme, django_user_model):
    pat = django_user_model.objects.create_user("pat", password="pw-for-tests-only")
    membership = contractor_member_add(contractor=acme, user=pat)

    row = {"id": membership.pk, "user": pat.pk, "contractor": acme.pk, "DELETE": "on"}
    data = contractor_form(acme, **membership_rows(row, initial=1))
    response = staff_client.post(f"{CHANGELIST}{acme.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()
    assert not Membership.objects.exists()
    assert contractor_for_user(user=pat) is None
    entry = LogEntry.objects.get(object_id=str(acme.pk))
    assert "Deleted membership “pat at Acme Roofing”." in entry.get_change_message()


def test_replacing_a_user_on_the_contractor_page_moves_access_to_the_new_one(staff_client, acme, django_user_model):
    pat = django_user_model.objects.create_user("pat", password="pw-for-tests-only")
    kim = django_user_model.objects.create_user("kim", password="pw-for-tests-only")
    membership = contractor_member_add(contractor=acme, user=pat)

    row = {"id": membership.pk, "user": kim.pk, "contractor": acme.pk}
    data = contractor_form(acme, **membership_rows(row, initial=1))
    response = staff_client.post(f"{CHANGELIST}{acme.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()
    assert list(Membership.objects.values_list("user__username", "contractor__slug")) == [("kim", "acme-roofing")]
    assert (contractor_for_user(user=pat), contractor_for_user(user=kim)) == (None, acme)


def test_a_member_of_another_contractor_cannot_be_added(staff_client, acme, django_user_model):
    pat = django_user_model.objects.create_user("pat", password="pw-for-tests-only")
    other = ContractorFactory(name="Peak Roofing", slug="peak-roofing")
    contractor_member_add(contractor=other, user=pat)

    data = contractor_form(acme, **membership_rows({"user": pat.pk, "contractor": acme.pk}))
    response = staff_client.post(f"{CHANGELIST}{acme.pk}/change/", data)

    assert response.status_code == 200
    assert "Membership with this User already exists." in response.content.decode()
    assert list(Membership.objects.values_list("user__username", "contractor__slug")) == [("pat", "peak-roofing")]
    assert not LogEntry.objects.exists()
