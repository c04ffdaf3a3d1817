"""The territory and waitlist admin: filters, the claim form, bulk release and transfer, coverage."""

import pytest

from contractors.models import Contractor
from contractors.services.contractors import contractor_status_change
from territories.models import Territory, WaitlistEntry
from territories.services.claims import territory_claim, territory_claim_many
from territories.services.ownership import territory_release
from territories.services.waitlist import waitlist_join
from tests.admin_pages import page_of
from tests.contractors.factories import ContractorFactory

CHANGELIST = "/admin/territories/territory/"
CLAIM = "/admin/territories/territory/claim/"


@pytest.fixture
def peak(trades):
    return ContractorFactory(name="Peak Roofing", slug="peak-roofing", trades=[trades["roofing"], trades["solar"]])


@pytest.fixture
def owned(zip_codes, acme, peak, trades):
    """Acme owns roofing in 80302 and 80304 (CO); Peak owns solar in 80302 and roofing in 80501."""
    acme_roofs = territory_claim_many(contractor=acme, trade=trades["roofing"], zip_codes=["80302", "80304"])
    territory_claim(contractor=peak, trade=trades["solar"], zip_code="80302")
    territory_claim(contractor=peak, trade=trades["roofing"], zip_code="80501")
    return acme_roofs


def listed(staff_client, query: str) -> list[str]:
    """The (ZIP trade owner) rows a changelist query shows."""
    rows = Territory.objects.order_by("zip_code", "trade__slug").select_related("trade", "contractor")
    page = page_of(staff_client.get(f"{CHANGELIST}?{query}"))
    return [
        f"{t.zip_code_id} {t.trade.slug} {t.contractor.slug}"
        for t in rows
        if f'href="/admin/territories/territory/{t.pk}/change/' in page
    ]


def test_changelist_filters_by_trade_ownership_state_owner_and_owner_status(staff_client, owned, acme, peak, trades):
    contractor_status_change(contractor=peak, status=Contractor.Status.PAUSED)
    territory_release(territory=owned[1])

    assert listed(staff_client, f"trade__id__exact={trades['solar'].pk}") == ["80302 solar peak-roofing"]
    assert listed(staff_client, "ownership=ended") == ["80304 roofing acme-roofing"]
    assert listed(staff_client, f"ownership=active&contractor__id__exact={acme.pk}") == ["80302 roofing acme-roofing"]
    assert listed(staff_client, "contractor__status__exact=paused") == [
        "80302 solar peak-roofing",
        "80501 roofing peak-roofing",
    ]
    assert listed(staff_client, "zip_code__state=CO&q=80501") == ["80501 roofing peak-roofing"]


def test_claim_form_claims_every_zip_and_reports_success(staff_client, zip_codes, acme, trades):
    response = staff_client.post(
        CLAIM,
        {"contractor": acme.pk, "trade": trades["roofing"].pk, "zip_codes": "80303, 80301\n80305", "note": "Order 9"},
        follow=True,
    )
    assert "Acme Roofing now owns Roofing in 80301, 80303, 80305." in page_of(response)
    territories = Territory.objects.order_by("zip_code")
    assert list(territories.values_list("zip_code_id", "start_note", "started_by__username")) == [
        ("80301", "Order 9", "staff"),
        ("80303", "Order 9", "staff"),
        ("80305", "Order 9", "staff"),
    ]


def test_claim_form_shows_territory_taken_as_a_message_and_claims_nothing(staff_client, owned, peak, trades):
    before = list(Territory.objects.order_by("pk").values())

    response = staff_client.post(
        CLAIM, {"contractor": peak.pk, "trade": trades["roofing"].pk, "zip_codes": "80301 80302 80304"}
    )

    assert response.status_code == 200
    assert (
        "Roofing territory already taken: 80302 (owned by Acme Roofing), 80304 (owned by Acme Roofing). "
        "Nothing was claimed."
    ) in page_of(response)
    assert list(Territory.objects.order_by("pk").values()) == before


def test_claim_form_refuses_malformed_zip_codes(staff_client, zip_codes, acme, trades):
    response = staff_client.post(
        CLAIM, {"contractor": acme.pk, "trade": trades["roofing"].pk, "zip_codes": "8030 80302x"}
    )
    assert "Not five-digit ZIP codes: 8030, 80302x" in page_of(response)
    assert not Territory.objects.exists()


def test_adding_a_territory_goes_to_the_claim_form(staff_client):
    response = staff_client.get(f"{CHANGELIST}add/")
    assert (response.status_code, response["Location"]) == (302, CLAIM)


def test_territory_history_is_read_only(staff_client, owned):
    territory = owned[0]
    page = page_of(staff_client.get(f"{CHANGELIST}{territory.pk}/change/"))
    assert "Acme Roofing" in page
    assert 'name="contractor"' not in page
    assert staff_client.post(f"{CHANGELIST}{territory.pk}/change/", {"contractor": 1}).status_code == 403
    assert staff_client.post(f"{CHANGELIST}{territory.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Territory.objects.filter(pk=territory.pk, ended_at__isnull=True).exists()


def test_release_action_releases_and_reports_the_waitlist_offer(staff_client, owned, peak, trades):
    waitlist_join(contractor=peak, trade=trades["roofing"], zip_code="80302")
    selected = [territory.pk for territory in owned]

    confirm = staff_client.post(CHANGELIST, {"action": "release", "_selected_action": selected})
    assert "Release territories" in page_of(confirm)
    assert Territory.objects.active().count() == 4

    response = staff_client.post(
        CHANGELIST,
        {"action": "release", "_selected_action": selected, "apply": "yes", "note": "Cancelled"},
        follow=True,
    )

    page = page_of(response)
    assert "Released 2 territories." in page
    assert "Waitlist: 80302 offered to Peak Roofing until" in page
    assert (
        list(Territory.objects.filter(pk__in=selected).values_list("end_reason", "end_note"))
        == [("release", "Cancelled")] * 2
    )
    assert WaitlistEntry.objects.get().status == WaitlistEntry.Status.OFFERED


def test_release_action_reports_an_ended_territory_and_releases_nothing(staff_client, owned):
    territory_release(territory=owned[1])
    response = staff_client.post(
        CHANGELIST,
        {"action": "release", "_selected_action": [t.pk for t in owned], "apply": "yes", "note": ""},
        follow=True,
    )
    assert "No longer owned (already released or transferred): 80304 Roofing. Nothing was changed." in page_of(response)
    assert Territory.objects.get(pk=owned[0].pk).ended_at is None


def test_transfer_action_moves_the_selection_or_reports_why_not(staff_client, owned, peak, trades):
    selected = [territory.pk for territory in owned]
    solar_only = ContractorFactory(name="Sunny", slug="sunny", trades=[trades["solar"]])

    refused = staff_client.post(
        CHANGELIST,
        {"action": "transfer", "_selected_action": selected, "apply": "yes", "to_contractor": solar_only.pk},
        follow=True,
    )
    assert "Sunny does not serve Roofing" in page_of(refused)
    assert Territory.objects.filter(pk__in=selected, ended_at__isnull=True).count() == 2

    response = staff_client.post(
        CHANGELIST,
        {"action": "transfer", "_selected_action": selected, "apply": "yes", "to_contractor": peak.pk, "note": "Sale"},
        follow=True,
    )
    assert "Transferred 2 territories to Peak Roofing." in page_of(response)
    assert list(
        Territory.objects.active()
        .filter(trade=trades["roofing"])
        .order_by("zip_code")
        .values_list("zip_code_id", "contractor__slug")
    ) == [("80302", "peak-roofing"), ("80304", "peak-roofing"), ("80501", "peak-roofing")]


def test_coverage_page_lists_owned_zips(staff_client, owned, trades):
    page = page_of(staff_client.get(f"{CHANGELIST}coverage/?trade={trades['roofing'].pk}&min_score=70&status=owned"))
    assert "Owned (3)</span>" in page  # the map's legend
    assert "Free with demand (0)</span>" in page
    assert "Roofing: ZIPs (3)" in page
    assert "80501" in page
    assert "Peak Roofing" in page


def test_waitlist_join_form_and_accept_action(staff_client, owned, peak, trades):
    response = staff_client.post(
        "/admin/territories/waitlistentry/join/",
        {"contractor": peak.pk, "trade": trades["roofing"].pk, "zip_code": "80302"},
        follow=True,
    )
    assert "Peak Roofing is in line for 80302 Roofing." in page_of(response)
    refused = staff_client.post(
        "/admin/territories/waitlistentry/join/",
        {"contractor": peak.pk, "trade": trades["roofing"].pk, "zip_code": "80303"},
    )
    assert "80303 Roofing is free: claim it instead of joining its waitlist." in page_of(refused)
    malformed = staff_client.post(
        "/admin/territories/waitlistentry/join/",
        {"contractor": peak.pk, "trade": trades["roofing"].pk, "zip_code": "8030"},
    )
    assert "Enter a five-digit ZIP code." in page_of(malformed)
    assert WaitlistEntry.objects.count() == 1

    territory_release(territory=owned[0])
    entry = WaitlistEntry.objects.get()
    response = staff_client.post(
        "/admin/territories/waitlistentry/", {"action": "accept_offer", "_selected_action": [entry.pk]}, follow=True
    )
    assert "Peak Roofing now owns 80302 Roofing." in page_of(response)
    assert WaitlistEntry.objects.get().status == WaitlistEntry.Status.CLAIMED


def test_waitlist_leave_action_takes_the_contractor_out_of_line(staff_client, owned, peak, trades):
    entry = waitlist_join(contractor=peak, trade=trades["roofing"], zip_code="80302")

    response = staff_client.post(
        "/admin/territories/waitlistentry/", {"action": "leave", "_selected_action": [entry.pk]}, follow=True
    )

    assert "Peak Roofing left the line for 80302 Roofing." in page_of(response)
    assert WaitlistEntry.objects.get().status == WaitlistEntry.Status.WITHDRAWN


def test_territory_change_list_links_to_the_claim_form(staff_client, owned):
    page = page_of(staff_client.get(CHANGELIST))

    assert f'href="{CLAIM}"' in page
    assert "Claim territories" in page
