"""The actions on a territory's, a waitlist entry's and a contractor's page (core.admin.ObjectActionsAdmin):
each page offers what the object's state allows, as its service decides, and each button runs the list's
bulk action on that one object, with its form, then shows the object again."""

import datetime as dt
import re

import pytest
from django.db import transaction
from django.utils import timezone

from contractors.errors import ContractorError
from contractors.models import Contractor
from contractors.services.contractors import contractor_status_change
from territories.errors import TerritoryError
from territories.models import Territory, WaitlistEntry
from territories.services.claims import territory_claim
from territories.services.ownership import territory_release
from territories.services.waitlist import waitlist_join, waitlist_leave, waitlist_offer_accept
from tests.admin_pages import messages_of
from tests.contractors.factories import ContractorFactory

Status = Contractor.Status


def tried(move) -> bool:
    """Whether the service `move()` goes through (then rolled back)."""
    savepoint = transaction.savepoint()
    try:
        move()
    except (TerritoryError, ContractorError):
        return False
    else:
        return True
    finally:
        transaction.savepoint_rollback(savepoint)


def buttons(client, obj, model: str) -> set[str]:
    page = client.get(f"/admin/{model}/{obj.pk}/change/").content.decode()
    return set(re.findall(rf'<form method="post" action="/admin/{model}/{obj.pk}/act/(\w+)/"', page))


@pytest.fixture
def peak(trades):
    return ContractorFactory(name="Peak Roofing", slug="peak-roofing", trades=[trades["roofing"]])


def test_a_held_territory_offers_release_and_transfer_an_ended_one_nothing(staff_client, zip_codes, acme, trades):
    held = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    ended = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80304")
    territory_release(territory=ended)

    assert buttons(staff_client, held, "territories/territory") == {"release", "transfer"}
    assert buttons(staff_client, ended, "territories/territory") == set()
    assert tried(lambda: territory_release(territory=Territory.objects.get(pk=ended.pk))) is False


def test_the_release_button_asks_for_the_note_then_releases_the_territory(staff_client, zip_codes, acme, trades):
    territory = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    url = f"/admin/territories/territory/{territory.pk}/act/release/"

    assert "<h1>Release territories</h1>" in staff_client.post(url).content.decode()
    response = staff_client.post(url, {"note": "Contract ended", "action": "release", "apply": "yes"}, follow=True)

    assert response.redirect_chain == [(f"/admin/territories/territory/{territory.pk}/change/", 302)]
    assert messages_of(response) == [("info", "Released 1 territories.")]
    territory.refresh_from_db()
    assert (territory.end_reason, territory.end_note) == ("release", "Contract ended")


def test_a_waitlist_entry_offers_what_its_status_and_offer_allow(staff_client, zip_codes, acme, peak, trades):
    roofing = trades["roofing"]
    held = territory_claim(contractor=acme, trade=roofing, zip_code="80302")
    offered = waitlist_join(contractor=peak, trade=roofing, zip_code="80302")
    territory_release(territory=held)  # the offer goes to Peak
    lapsing_owner = territory_claim(contractor=acme, trade=roofing, zip_code="80304")
    lapsed = waitlist_join(contractor=peak, trade=roofing, zip_code="80304")
    territory_release(territory=lapsing_owner)
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    WaitlistEntry.objects.filter(pk=lapsed.pk).update(  # its offer's time ran out before the nightly expiry
        offered_at=an_hour_ago - dt.timedelta(days=2), offer_expires_at=an_hour_ago
    )
    territory_claim(contractor=peak, trade=roofing, zip_code="80305")
    waiting = waitlist_join(contractor=acme, trade=roofing, zip_code="80305")
    entries = {name: WaitlistEntry.objects.get(pk=entry.pk) for name, entry in
               {"offered": offered, "lapsed": lapsed, "waiting": waiting}.items()}  # fmt: skip
    closed = waitlist_join(contractor=acme, trade=roofing, zip_code="80302")  # behind Peak's offer
    waitlist_leave(entry=closed)
    entries["closed"] = WaitlistEntry.objects.get(pk=closed.pk)
    assert {name: entry.status for name, entry in entries.items()} == {
        "offered": "offered",
        "lapsed": "offered",
        "waiting": "waiting",
        "closed": "withdrawn",
    }

    offered_buttons = {
        name: buttons(staff_client, entry, "territories/waitlistentry") for name, entry in entries.items()
    }

    assert offered_buttons == {
        "offered": {"accept_offer", "leave"},
        "lapsed": {"leave"},
        "waiting": {"leave"},
        "closed": set(),
    }
    accepted_by_service = {
        name: tried(lambda entry=entry: waitlist_offer_accept(entry=entry)) for name, entry in entries.items()
    }
    assert {name for name, ok in accepted_by_service.items() if ok} == {"offered"}


def test_the_accept_button_gives_the_territory_to_the_waiting_contractor(staff_client, zip_codes, acme, peak, trades):
    held = territory_claim(contractor=acme, trade=trades["roofing"], zip_code="80302")
    entry = waitlist_join(contractor=peak, trade=trades["roofing"], zip_code="80302")
    territory_release(territory=held)

    response = staff_client.post(f"/admin/territories/waitlistentry/{entry.pk}/act/accept_offer/", follow=True)

    assert messages_of(response)[0] == ("info", "Peak Roofing now owns 80302 Roofing.")
    assert Territory.objects.active().get(zip_code="80302").contractor == peak
    assert buttons(staff_client, entry, "territories/waitlistentry") == set()


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        (Status.ACTIVE, {"pause", "suspend", "rotate_webhook_secret"}),
        (Status.PAUSED, {"resume", "suspend", "rotate_webhook_secret"}),
        (Status.SUSPENDED, {"resume", "pause", "rotate_webhook_secret"}),
    ],
)
def test_a_contractor_page_offers_the_status_changes_its_status_allows(staff_client, acme, status, offered):
    Contractor.objects.filter(pk=acme.pk).update(webhook_url="https://crm.example.com/leads")
    if status != Status.ACTIVE:
        contractor_status_change(contractor=acme, status=status, reason="Billing")

    assert buttons(staff_client, acme, "contractors/contractor") == offered
    targets = {"pause": Status.PAUSED, "resume": Status.ACTIVE, "suspend": Status.SUSPENDED}
    allowed = {
        name
        for name, target in targets.items()
        if tried(lambda target=target: contractor_status_change(contractor=acme, status=target, reason="x"))
    }
    assert allowed == offered - {"rotate_webhook_secret"}


def test_a_contractor_without_a_webhook_is_not_offered_a_secret_rotation(staff_client, acme):
    Contractor.objects.filter(pk=acme.pk).update(webhook_url="")

    assert "rotate_webhook_secret" not in buttons(staff_client, acme, "contractors/contractor")


def test_the_pause_button_asks_for_the_reason_then_pauses(staff_client, acme):
    url = f"/admin/contractors/contractor/{acme.pk}/act/pause/"

    assert "<h1>Pause contractors</h1>" in staff_client.post(url).content.decode()
    response = staff_client.post(url, {"reason": "Unpaid invoice", "action": "pause", "apply": "yes"}, follow=True)

    assert response.redirect_chain == [(f"/admin/contractors/contractor/{acme.pk}/change/", 302)]
    assert messages_of(response) == [("info", "Acme Roofing is now paused (no new assignments).")]
    acme.refresh_from_db()
    assert (acme.status, acme.status_reason) == (Status.PAUSED, "Unpaid invoice")
