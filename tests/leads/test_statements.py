"""Closing a month: territory fees prorated by the share of the month a territory was held, a statement
whose figures are the ledger's sums and whose closing balance adds up (the database checks), a close done
twice or raced writing once, and statements scoped as everything else (another contractor's is 404)."""

import csv
import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Sum

from leads.errors import LeadError
from leads.models import LedgerEntry, Statement
from leads.selectors import month_bounds
from leads.services.billing import Band, FeeTier, ledger_entry_add, price_list_create
from leads.services.lifecycle import lead_deliver, lead_return
from leads.services.routing import leads_route
from leads.services.statements import month_close, months_close
from territories.models import Territory
from territories.services.claims import territory_claim
from tests.leads.factories import api_client, filters, owner, scored_home
from tests.leads.test_routing import pool
from tests.racing import race

D = Decimal
DENVER = ZoneInfo("America/Denver")
NOVEMBER = dt.date(2026, 11, 1)
START = dt.datetime(2026, 11, 1, tzinfo=DENVER)  # the contractors' November
END = dt.datetime(2026, 12, 1, tzinfo=DENVER)
AFTER = END + dt.timedelta(hours=1)


def held(territory, since, until=None):
    """Backdate a territory's ownership (its started_at and ended_at), as if held since then."""
    Territory.objects.filter(pk=territory.pk).update(
        started_at=since, ended_at=until, end_reason="release" if until else ""
    )


@pytest.fixture
def november(roofing):
    """Acme (Denver) holds 80202 all November and 80203 from the 16th; roofing leads cost 20.00 and a
    territory 90.00 a month, 150.00 where 2+ homes score 70 or more (80202). In November Acme got five
    leads (the two homes of 80202 and three more), returned one, paid 100.00 and was adjusted 5.00."""
    since = START - dt.timedelta(days=40)
    price_list_create(
        trade=roofing, bands=[Band(0, D("20.00"))], fees=[FeeTier(0, D("90.00")), FeeTier(2, D("150.00"))],
        effective_from=since, now=since,
    )  # fmt: skip
    for _ in range(2):
        scored_home(roofing, score=90, zip_code="80202")
    acme = owner(roofing, time_zone="America/Denver")
    whole, half = (territory_claim(contractor=acme, trade=roofing, zip_code=code) for code in ("80202", "80203"))
    held(whole, since)
    held(half, dt.datetime(2026, 11, 16, tzinfo=DENVER))
    leads = pool(roofing, "80202", 3, top=60, now=START + dt.timedelta(days=2))
    leads_route(now=START + dt.timedelta(days=2))
    lead_deliver(lead=leads[0], via="api", now=START + dt.timedelta(days=3))
    lead_return(lead=leads[0], reason="not_owner", actor="staff", now=START + dt.timedelta(days=4))
    ledger_entry_add(contractor=acme, kind="payment", amount=D("100.00"), note="ACH", user=None,
                     at=START + dt.timedelta(days=10))  # fmt: skip
    ledger_entry_add(contractor=acme, kind="adjustment", amount=D("5.00"), note="late fee", user=None,
                     at=START + dt.timedelta(days=11))  # fmt: skip
    return acme


def test_a_month_closes_with_prorated_fees_and_figures_equal_to_the_ledger(november):
    statement = month_close(contractor=november, month=NOVEMBER, now=AFTER)

    fees = LedgerEntry.objects.filter(kind="territory_fee").order_by("territory__zip_code")
    assert [(fee.territory.zip_code_id, fee.amount, fee.period) for fee in fees] == [
        ("80202", D("150.00"), NOVEMBER),  # the whole month, demand 2
        ("80203", D("45.00"), NOVEMBER),  # 15 of 30 days, demand 0
    ]
    assert all(fee.at == END - dt.timedelta(seconds=1) for fee in fees)
    assert (statement.lead_charges, statement.lead_credits, statement.territory_fees) == (
        D("100.00"), D("-20.00"), D("195.00")
    )  # fmt: skip
    assert (statement.payments, statement.adjustments, statement.opening_balance) == (D("-100.00"), D("5.00"), 0)
    start, end = month_bounds(month=NOVEMBER, zone="America/Denver")
    month_sum = LedgerEntry.objects.filter(contractor=november, at__gte=start, at__lt=end).aggregate(
        total=Sum("amount")
    )
    assert statement.closing_balance == month_sum["total"] == D("180.00")
    assert statement.leads_charged == 5
    assert statement.by_trade == {"roofing": {"leads": 5, "charged": "100.00", "credited": "20.00", "fees": "195.00"}}


def test_a_month_is_closed_once_and_not_before_it_is_over(november):
    with pytest.raises(LeadError, match="not over yet"):
        month_close(contractor=november, month=NOVEMBER, now=END - dt.timedelta(minutes=1))
    with pytest.raises(LeadError, match="first day"):
        month_close(contractor=november, month=dt.date(2026, 11, 2), now=AFTER)
    # The hourly job: at 06:00 UTC on Dec 1 it is still Nov 30 in Denver, so the month to close is October
    # (80202 was held all of it).
    october = months_close(now=dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC))
    assert (october.statements, october.fees) == (1, D("150.00"))

    first = months_close(now=AFTER)  # an hour into December in Denver: November
    again = months_close(now=AFTER + dt.timedelta(hours=1))

    assert (first.statements, again.statements) == (1, 0)
    statement = Statement.objects.get(month=NOVEMBER)
    assert month_close(contractor=november, month=NOVEMBER, now=AFTER).pk == statement.pk
    assert statement.opening_balance == D("150.00")  # October's closing
    assert LedgerEntry.objects.filter(kind="territory_fee").count() == 3
    with pytest.raises(LeadError, match="October 2026 is already closed; months close in order"):
        month_close(contractor=november, month=dt.date(2026, 9, 1), now=AFTER)


def test_the_next_month_opens_with_the_balance_the_last_closed_with(november):
    november_statement = month_close(contractor=november, month=NOVEMBER, now=AFTER)
    december = month_close(
        contractor=november, month=dt.date(2026, 12, 1), now=dt.datetime(2027, 1, 1, 8, tzinfo=dt.UTC)
    )
    assert december.opening_balance == november_statement.closing_balance
    assert december.territory_fees == D("240.00")  # both ZIPs, whole month
    assert december.closing_balance == D("420.00")


@pytest.mark.django_db(transaction=True)
def test_racing_month_closes_write_one_statement_and_one_fee_per_territory(trades, zip_codes):
    roofing = trades["roofing"]
    filters(roofing)
    since = START - dt.timedelta(days=40)
    price_list_create(trade=roofing, bands=[Band(0, D("20.00"))], fees=[FeeTier(0, D("90.00"))],
                      effective_from=since, now=since)  # fmt: skip
    acme = owner(roofing, time_zone="America/Denver")
    held(territory_claim(contractor=acme, trade=roofing, zip_code="80202"), since)

    results, errors = race(lambda _: month_close(contractor=acme, month=NOVEMBER, now=AFTER).pk, range(8))

    assert errors == []
    assert len(set(results)) == 1
    assert Statement.objects.count() == 1
    assert list(LedgerEntry.objects.values_list("kind", "amount")) == [("territory_fee", D("90.00"))]


def test_statements_through_the_api_are_scoped_and_come_as_csv(november, roofing):
    statement = month_close(contractor=november, month=NOVEMBER, now=AFTER)
    rival = owner(roofing, "80209")
    theirs = month_close(contractor=rival, month=NOVEMBER, now=AFTER)
    client = api_client(november)

    listed = client.get("/api/v1/statements/").json()["results"]
    assert [item["id"] for item in listed] == [statement.pk]
    body = client.get(f"/api/v1/statements/{statement.pk}/").json()
    assert (body["month"], body["currency"], body["closing_balance"], body["territory_fees"]) == (
        "2026-11-01", "USD", "180.00", "195.00"
    )  # fmt: skip
    assert client.get(f"/api/v1/statements/{theirs.pk}/").status_code == 404
    assert client.get(f"/api/v1/statements/{theirs.pk}/csv/").status_code == 404

    response = client.get(f"/api/v1/statements/{statement.pk}/csv/")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="statement-{november.slug}-2026-11.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["kind"] == "opening_balance"
    assert rows[-1]["kind"] == "closing_balance"
    assert rows[-1]["amount"] == "180.00"
    assert sum(D(row["amount"]) for row in rows[1:-1]) == D("180.00")
    assert [row["kind"] for row in rows[1:-1]].count("territory_fee") == 2


def test_staff_read_a_statement_as_a_printable_page(november, staff_client):
    statement = month_close(contractor=november, month=NOVEMBER, now=AFTER)
    page = staff_client.get(f"/admin/leads/statement/{statement.pk}/print/").content.decode()
    assert "Statement for November 2026 (America/Denver)" in page
    assert "<th>Closing balance</th><td>180.00</td>" in page
    assert "80203 Roofing, November 2026: 90.00 a month, held 15.0 of 30 days" in page
    exported = staff_client.post(
        "/admin/leads/statement/", {"action": "export_csv", "_selected_action": [statement.pk]}
    )
    assert exported["Content-Type"] == "text/csv; charset=utf-8"


def test_no_entry_is_dated_into_a_closed_month(november):
    month_close(contractor=november, month=NOVEMBER, now=AFTER)

    with pytest.raises(LeadError, match="November 2026 is closed"):
        ledger_entry_add(contractor=november, kind="payment", amount=D("1.00"), note="late", user=None,
                         at=END - dt.timedelta(hours=2))  # fmt: skip
    ledger_entry_add(contractor=november, kind="payment", amount=D("1.00"), note="on time", user=None, at=AFTER)
    assert LedgerEntry.objects.filter(note="on time").count() == 1
