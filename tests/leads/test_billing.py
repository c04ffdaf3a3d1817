"""Prices, the ledger and prepaid limits: what a lead costs, that it is charged once per assignment and
given back once, and that a prepaid contractor is never taken past its credit limit, racing or not."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contractors.models import ContractorNotice
from leads.errors import CreditLimitReached, LeadError
from leads.models import Lead, LedgerEntry, Price, PriceList
from leads.selectors import contractor_balances
from leads.services.billing import Band, lead_credit, ledger_entry_add, price_list_create
from leads.services.lifecycle import lead_assign, lead_deliver, lead_return, lead_return_approve, lead_withdraw
from leads.services.routing import leads_route
from tests.admin_pages import messages_of, page_of
from tests.leads.factories import filters, owner
from tests.leads.test_routing import NOW, pool
from tests.racing import race

D = Decimal
BANDS = [Band(0, D("20.00")), Band(80, D("35.00")), Band(0, D("50.00"), urgent=True)]


def prices(trade, bands=BANDS, *, start=NOW - dt.timedelta(days=1), **fields):
    return price_list_create(trade=trade, bands=bands, effective_from=start, now=start, **fields)


def charges(contractor):
    return list(
        LedgerEntry.objects.filter(contractor=contractor).order_by("id").values_list("kind", "amount", "lead_id")
    )


def balance(contractor):
    return contractor_balances(contractor_ids=[contractor.pk]).get(contractor.pk, D(0))


def test_routing_stamps_the_price_in_force_and_charges_it_once(roofing):
    acme = owner(roofing, "80202")
    prices(roofing)
    best, low = pool(roofing, "80202", 2, top=81)

    leads_route(now=NOW)

    best.refresh_from_db()
    low.refresh_from_db()
    assert (best.score, best.price, low.score, low.price) == (81, D("35.00"), 80, D("35.00"))
    assert sorted(charges(acme)) == sorted([("lead_charge", D("35.00"), best.pk), ("lead_charge", D("35.00"), low.pk)])
    assert balance(acme) == D("70.00")
    leads_route(now=NOW)  # nothing new: nothing charged again
    assert len(charges(acme)) == 2


def test_bands_urgent_leads_exploration_and_no_list(roofing, trades):
    acme = owner(roofing, "80202")
    prices(roofing)
    normal, urgent, explored, cheap = pool(roofing, "80202", 4, top=79)
    Lead.objects.filter(pk=urgent.pk).update(urgent=True)
    Lead.objects.filter(pk=explored.pk).update(exploration=True)

    leads_route(now=NOW)

    got = {lead.pk: lead.price for lead in Lead.objects.filter(contractor=acme)}
    assert got == {normal.pk: D("20.00"), urgent.pk: D("50.00"), explored.pk: D("0.00"), cheap.pk: D("20.00")}
    # A trade without a price list: its leads are unpriced and charge nothing.
    solar = trades["solar"]
    filters(solar)
    bolt = owner(solar, "80202")
    (sun,) = pool(solar, "80202", 1)
    leads_route(now=NOW)
    sun.refresh_from_db()
    assert (sun.contractor_id, sun.price, charges(bolt)) == (bolt.pk, None, [])


def test_a_price_change_leaves_the_prices_already_stamped(roofing):
    acme = owner(roofing, "80202")
    old = prices(roofing)
    (first,) = pool(roofing, "80202", 1, top=50)
    leads_route(now=NOW)
    # New prices from an hour later, and even the old list's rows edited behind the service's back.
    prices(roofing, [Band(0, D("99.00"))], start=NOW + dt.timedelta(hours=1))
    Price.objects.filter(price_list=old).update(amount=D("1.00"))
    (second,) = pool(roofing, "80202", 1, top=40, now=NOW + dt.timedelta(hours=2))
    leads_route(now=NOW + dt.timedelta(hours=2))

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.price, second.price) == (D("20.00"), D("99.00"))
    assert [amount for _kind, amount, _lead in charges(acme)] == [D("20.00"), D("99.00")]


def test_a_price_list_is_checked_before_it_is_written(roofing):
    with pytest.raises(LeadError, match="band from score 0"):
        prices(roofing, [Band(50, D("10.00"))])
    with pytest.raises(LeadError, match="at most 2 decimals"):
        prices(roofing, [Band(0, D("10.005"))])
    with pytest.raises(LeadError, match="never negative"):
        prices(roofing, [Band(0, D("-1.00"))])
    with pytest.raises(LeadError, match="Two bands"):
        prices(roofing, [Band(0, D("1.00")), Band(0, D("2.00"))])
    with pytest.raises(LeadError, match="starts now or later"):
        price_list_create(trade=roofing, bands=BANDS, effective_from=NOW - dt.timedelta(days=1), now=NOW)
    prices(roofing)
    with pytest.raises(LeadError, match="already has a price list starting"):
        prices(roofing)


def test_the_ledger_refuses_edits_deletions_and_inconsistent_entries(roofing):
    acme = owner(roofing, "80202")
    payment = ledger_entry_add(contractor=acme, kind="payment", amount=D("100.00"), note="check 1001", user=None)
    assert payment.amount == D("-100.00")
    for statement in ("UPDATE leads_ledgerentry SET amount = 0", "DELETE FROM leads_ledgerentry"):
        with (
            pytest.raises(IntegrityError, match="never changed or deleted"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    # The sign of each kind is the database's: a payment that adds to the balance is refused.
    with pytest.raises(IntegrityError, match="kind_consistent"), transaction.atomic():
        LedgerEntry.objects.create(contractor=acme, kind="payment", amount=D("5.00"), at=NOW)
    with pytest.raises(LeadError, match="written by LeadEngine"):
        ledger_entry_add(contractor=acme, kind="lead_charge", amount=D("5.00"), note="x", user=None)
    with pytest.raises(LeadError, match="Say what the entry is for"):
        ledger_entry_add(contractor=acme, kind="adjustment", amount=D("5.00"), note=" ", user=None)
    with pytest.raises(LeadError, match="positive amount received"):
        ledger_entry_add(contractor=acme, kind="payment", amount=D("-5.00"), note="x", user=None)
    assert balance(acme) == D("-100.00")


def test_returns_withdrawals_and_reassignments_give_the_charge_back_once(roofing, settings):
    settings.LEAD_RETURN_RATE_PERCENT = 100  # returned at once, not waiting for approval
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    acme, bolt = owner(roofing, "80202"), owner(roofing, "80203")
    prices(roofing)
    returned, withdrawn, moved = pool(roofing, "80202", 3, top=50)
    leads_route(now=NOW)
    lead_deliver(lead=returned, via="api", now=NOW)
    lead_return(lead=returned, reason="not_owner", actor="contractor", now=NOW + dt.timedelta(hours=1))
    lead_withdraw(lead=withdrawn, actor="staff", user=staff, reason="bad address", now=NOW + dt.timedelta(hours=1))
    lead_assign(lead=moved, contractor=bolt, user=staff, reason="Acme asked", override=True)

    assert balance(acme) == D("0.00")
    assert [kind for kind, _amount, _lead in charges(acme)] == ["lead_charge"] * 3 + ["lead_credit"] * 3
    assert charges(bolt) == [("lead_charge", D("20.00"), moved.pk)]
    # The credit names the charge it gives back, and a second credit of it writes nothing.
    credit = LedgerEntry.objects.get(kind="lead_credit", lead=returned)
    assert (credit.reverses.lead_id, credit.amount) == (returned.pk, D("-20.00"))
    assert lead_credit(lead=Lead.objects.get(pk=returned.pk), now=NOW, note="again") is None


def test_staff_may_give_a_lead_free_of_charge(roofing):
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    acme = owner(roofing, "80202")
    prices(roofing)
    (lead,) = pool(roofing, "80202", 1)
    lead = lead_assign(lead=lead, contractor=acme, user=staff, reason="make-good", comp=True)
    assert (lead.price, charges(acme)) == (D("0"), [("lead_charge", D("0.00"), lead.pk)])
    assert lead.events.last().reason == "make-good (free of charge)"


def test_a_prepaid_contractor_gets_what_its_balance_allows_and_is_told_once_a_day(roofing):
    acme = owner(roofing, "80202", billing="prepaid", credit_limit=D("10.00"), contact_email="ops@acme.test")
    prices(roofing)
    ledger_entry_add(contractor=acme, kind="payment", amount=D("50.00"), note="card", user=None, at=NOW)
    pool(roofing, "80202", 5, top=70)  # 20.00 each

    first = leads_route(now=NOW)
    again = leads_route(now=NOW + dt.timedelta(hours=1))

    # 60.00 of room (50 paid + 10 credit): three leads, the best first; two wait.
    assert (first.by_contractor, first.held, again.held) == ({acme.pk: 3}, {acme.pk: 2}, {acme.pk: 2})
    assert "2 leads held back for prepaid balance" in str(first)
    assert sorted(Lead.objects.filter(contractor=acme).values_list("score", flat=True)) == [68, 69, 70]
    assert balance(acme) == D("10.00")
    notices = ContractorNotice.objects.filter(contractor=acme, event="balance.held")
    assert notices.count() == 1  # one a day: the second run said nothing more
    assert notices.get().payload | {"held_at": None} == {
        "leads_held": 2, "balance": "10.00", "credit_limit": "10.00", "room": "0.00", "currency": "USD",
        "held_at": None,
    }  # fmt: skip
    # Best first: when the best waiting lead does not fit, no cheaper one after it jumps the line.
    (best,) = pool(roofing, "80202", 1, top=85, now=NOW + dt.timedelta(hours=2))  # 35.00
    ledger_entry_add(contractor=acme, kind="payment", amount=D("30.00"), note="card", user=None)
    assert Lead.objects.filter(contractor=acme).count() == 3
    # A payment routes the leads it makes room for at once.
    ledger_entry_add(contractor=acme, kind="payment", amount=D("45.00"), note="card", user=None)
    assert Lead.objects.filter(contractor=acme).count() == 6
    assert Lead.objects.get(pk=best.pk).price == D("35.00")
    assert balance(acme) == D("10.00")


def test_staff_assigning_past_a_credit_limit_need_an_override(roofing):
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    acme = owner(roofing, "80202", billing="prepaid", credit_limit=D("0.00"))
    prices(roofing)
    (lead,) = pool(roofing, "80202", 1, top=50)
    with pytest.raises(CreditLimitReached, match=r"0\.00 USD of credit left; this lead costs 20\.00"):
        lead_assign(lead=lead, contractor=acme, user=staff, reason="phone order")
    lead = lead_assign(lead=lead, contractor=acme, user=staff, reason="phone order", override=True)
    assert lead.events.last().reason == "phone order (overrode credit limit)"
    assert balance(acme) == D("20.00")


@pytest.mark.django_db(transaction=True)
def test_racing_routers_never_take_a_prepaid_contractor_past_its_limit(trades, zip_codes):
    roofing = trades["roofing"]
    filters(roofing)
    acme = owner(roofing, "80202", "80203", billing="prepaid", credit_limit=D("15.00"))
    prices(roofing)
    ledger_entry_add(contractor=acme, kind="payment", amount=D("50.00"), note="wire", user=None, at=NOW)
    pool(roofing, "80202", 6, top=70)
    pool(roofing, "80203", 6, top=60)

    results, errors = race(lambda _: leads_route(now=NOW).assigned, range(8))

    assert errors == []
    assert sorted(results) == [0] * 7 + [3]  # 65.00 of room, 20.00 a lead
    assert Lead.objects.filter(contractor=acme).count() == 3
    assert LedgerEntry.objects.filter(kind="lead_charge").count() == 3
    assert balance(acme) == D("10.00")


@pytest.mark.django_db(transaction=True)
def test_racing_return_approvals_credit_once(trades, zip_codes):
    roofing = trades["roofing"]
    filters(roofing)
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    acme = owner(roofing, "80202")
    prices(roofing)
    lead, bare = pool(roofing, "80202", 2)
    leads_route(now=NOW)
    lead_deliver(lead=lead, via="api", now=NOW)
    Lead.objects.filter(pk=lead.pk).update(return_requested_at=NOW, return_reason="not_owner")  # waiting

    results, errors = race(lambda _: lead_return_approve(lead=lead, user=staff).state, range(8))

    assert [result for result in results if result] == ["returned"]
    assert len(errors) == 7
    assert all(isinstance(error, LeadError) for error in errors)
    assert LedgerEntry.objects.filter(kind="lead_credit", lead=lead).count() == 1
    # Without the lead's lock in front of it, the database alone still credits a charge once.
    bare = Lead.objects.get(pk=bare.pk)
    credits, errors = race(lambda _: lead_credit(lead=bare, now=NOW, note="raced"), range(8))
    assert errors == []
    assert len([credit for credit in credits if credit is not None]) == 1
    assert LedgerEntry.objects.filter(kind="lead_credit", lead=bare).count() == 1
    assert balance(acme) == D("0.00")


def test_staff_add_a_price_list_in_the_admin_and_cannot_edit_it_once_it_starts(roofing, staff_client):
    url = "/admin/leads/pricelist/add/"
    start = timezone.now() + dt.timedelta(minutes=5)
    form = {"trade": roofing.pk, "effective_from_0": start.strftime("%Y-%m-%d"), "effective_from_1": start.strftime(
        "%H:%M:%S"), "exploration_free": "on", "note": "winter"}  # fmt: skip

    refused = staff_client.post(url, form | {"bands": "0 20.00\n80 thirty\n90 35.00 urgent"})
    assert 'line 2: "80 thirty" is not "<lowest score> <price>" [urgent]' in page_of(refused)
    refused = staff_client.post(url, form | {"bands": "50 20.00"})
    assert "A price list needs a band from score 0" in page_of(refused)
    assert not PriceList.objects.exists()

    refused = staff_client.post(url, form | {"bands": "0 20.00", "fees": "0 49.00\nten 99.00"})
    assert 'line 2: "ten 99.00" is not "<lowest demand> <monthly fee>"' in page_of(refused)
    added = staff_client.post(
        url, form | {"bands": "0 20.00\n80, 35.00\n0 50 urgent", "fees": "0 49.00\n25 99"}, follow=True
    )

    assert messages_of(added) == [("success", f"{PriceList.objects.get()} added.")]
    price_list = PriceList.objects.get()
    bands = sorted(price_list.prices.values_list("min_score", "urgent", "amount"))
    assert bands == [(0, False, D("20.00")), (0, True, D("50.00")), (80, False, D("35.00"))]
    assert list(price_list.fees.values_list("min_demand", "monthly")) == [(0, D("49.00")), (25, D("99.00"))]
    page = page_of(staff_client.get(f"/admin/leads/pricelist/{price_list.pk}/change/"))
    assert 'name="_save"' not in page
    assert "/delete/" in page  # not started yet: it may still be deleted
    PriceList.objects.filter(pk=price_list.pk).update(effective_from=timezone.now())
    page = page_of(staff_client.get(f"/admin/leads/pricelist/{price_list.pk}/change/"))
    assert 'name="_save"' not in page
    assert "/delete/" not in page
    assert staff_client.post(f"/admin/leads/pricelist/{price_list.pk}/delete/", {"post": "yes"}).status_code == 403


def test_staff_record_payments_and_adjustments_in_the_admin_and_nothing_else(roofing, staff_client):
    acme = owner(roofing, "80202")
    url = "/admin/leads/ledgerentry/add/"
    refused = staff_client.post(url, {"contractor": acme.pk, "kind": "adjustment", "amount": "0", "note": "oops"})
    assert "An adjustment of 0 changes nothing." in page_of(refused)
    refused = staff_client.post(url, {"contractor": acme.pk, "kind": "lead_charge", "amount": "5", "note": "x"})
    assert "Select a valid choice" in page_of(refused)

    done = staff_client.post(url, {"contractor": acme.pk, "kind": "payment", "amount": "125.50", "note": "ACH 77"},
                             follow=True)  # fmt: skip

    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.note, entry.created_by.username) == (
        "payment", D("-125.50"), "ACH 77", "staff"
    )  # fmt: skip
    assert messages_of(done) == [("success", f"{entry} recorded.")]
    page = page_of(staff_client.get(f"/admin/leads/ledgerentry/{entry.pk}/change/"))
    assert 'name="_save"' not in page
    assert "/delete/" not in page
    assert balance(acme) == D("-125.50")
