"""Contractors: status changes and what they allow, trades served, users, caps (contractors.services)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from contractors.errors import ContractorStatusError, MembershipError
from contractors.models import Contractor, ContractorStatusChange, Membership
from contractors.selectors import Access, contractor_api_access, contractor_assignment_access, contractor_for_user
from contractors.services.contractors import (
    contractor_create,
    contractor_member_add,
    contractor_status_change,
    contractor_trades_set,
    contractor_webhook_secret_rotate,
)
from tests.contractors.factories import ContractorFactory

Status = Contractor.Status


def history(contractor):
    return list(contractor.status_changes.order_by("id").values_list("from_status", "to_status", "reason"))


def test_create_makes_an_active_contractor_serving_its_trades(trades):
    contractor = contractor_create(
        name="Peak Solar", slug="peak-solar", trades=[trades["solar"], trades["roofing"]], daily_cap=5
    )
    contractor.refresh_from_db()
    assert (contractor.status, contractor.daily_cap, contractor.weekly_cap) == (Status.ACTIVE, 5, None)
    assert sorted(contractor.trades.values_list("slug", flat=True)) == ["roofing", "solar"]
    assert len(contractor.webhook_secret) == 43


def test_create_refuses_an_unknown_time_zone_and_writes_nothing(trades):
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        contractor_create(name="Peak Solar", slug="peak-solar", trades=[trades["solar"]], time_zone="Mars/Olympus")
    assert not Contractor.objects.exists()


def test_pausing_stops_new_assignments_and_keeps_api_access(acme):
    contractor_status_change(contractor=acme, status=Status.PAUSED, reason="Crews booked until May.")
    acme.refresh_from_db()

    assert contractor_assignment_access(contractor=acme) == Access(
        False, "Acme Roofing is paused: Crews booked until May."
    )
    assert contractor_api_access(contractor=acme) == Access(True)
    assert list(Contractor.objects.receiving_assignments()) == []
    assert history(acme) == [("active", "paused", "Crews booked until May.")]


def test_resuming_restores_assignments_and_clears_the_reason(acme):
    contractor_status_change(contractor=acme, status=Status.PAUSED, reason="Holidays")
    contractor_status_change(contractor=acme, status=Status.ACTIVE)
    acme.refresh_from_db()

    assert (acme.status, acme.status_reason) == (Status.ACTIVE, "")
    assert contractor_assignment_access(contractor=acme) == Access(True)
    assert list(Contractor.objects.receiving_assignments()) == [acme]
    assert history(acme) == [("active", "paused", "Holidays"), ("paused", "active", "")]


def test_suspending_blocks_assignments_and_api_access_with_the_reason(acme):
    contractor_status_change(contractor=acme, status=Status.SUSPENDED, reason="Invoice 1041 unpaid.")
    acme.refresh_from_db()

    assert contractor_assignment_access(contractor=acme) == Access(
        False, "Acme Roofing is suspended: Invoice 1041 unpaid."
    )
    assert contractor_api_access(contractor=acme) == Access(False, "Acme Roofing is suspended: Invoice 1041 unpaid.")


def test_a_change_to_the_same_status_is_refused_and_not_audited(acme):
    with pytest.raises(ContractorStatusError, match="Acme Roofing is already active"):
        contractor_status_change(contractor=acme, status=Status.ACTIVE)
    with pytest.raises(ContractorStatusError, match="'closed' is not a contractor status"):
        contractor_status_change(contractor=acme, status="closed")
    acme.refresh_from_db()
    assert (acme.status, acme.status_changed_at) == (Status.ACTIVE, None)
    assert not ContractorStatusChange.objects.exists()


def test_the_database_refuses_an_unknown_status(acme):
    with pytest.raises(IntegrityError, match="contractors_contractor_status_valid"), transaction.atomic():
        Contractor.objects.filter(pk=acme.pk).update(status="closed")
    assert Contractor.objects.get(pk=acme.pk).status == Status.ACTIVE


@pytest.mark.parametrize(
    ("caps", "constraint"),
    [
        ({"daily_cap": 20, "weekly_cap": 10}, "contractors_contractor_caps_ordered"),
        ({"weekly_cap": 100, "monthly_cap": 50}, "contractors_contractor_caps_ordered"),
        ({"daily_cap": 0}, "contractors_contractor_caps_positive"),
    ],
)
def test_the_database_refuses_caps_that_contradict_each_other(acme, caps, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Contractor.objects.filter(pk=acme.pk).update(**caps)
    acme.refresh_from_db()
    assert (acme.daily_cap, acme.weekly_cap, acme.monthly_cap) == (None, None, None)


def test_trades_can_be_added_and_dropped_when_no_territory_needs_them(acme, trades):
    contractor_trades_set(contractor=acme, trades=[trades["solar"], trades["hvac"]])
    assert sorted(acme.trades.values_list("slug", flat=True)) == ["hvac", "solar"]


def test_a_user_belongs_to_one_contractor(acme):
    user = get_user_model().objects.create_user("pat", password="pw-for-tests-only")
    other = ContractorFactory()
    membership = contractor_member_add(contractor=acme, user=user)

    assert contractor_member_add(contractor=acme, user=user) == membership
    with pytest.raises(MembershipError, match="pat already belongs to Acme Roofing"):
        contractor_member_add(contractor=other, user=user)
    assert list(Membership.objects.values_list("user__username", "contractor__slug")) == [("pat", "acme-roofing")]
    assert contractor_for_user(user=user) == acme


def test_staff_users_belong_to_no_contractor(acme):
    staff = get_user_model().objects.create_user("sam", password="pw-for-tests-only", is_staff=True)
    with pytest.raises(MembershipError, match="sam is staff"):
        contractor_member_add(contractor=acme, user=staff)
    with pytest.raises(ValidationError, match="Staff users belong to no contractor"):
        Membership(user=staff, contractor=acme).full_clean()
    assert not Membership.objects.exists()
    assert contractor_for_user(user=staff) is None


def test_rotating_the_webhook_secret_replaces_it(acme):
    old = acme.webhook_secret
    new = contractor_webhook_secret_rotate(contractor=acme)
    acme.refresh_from_db()
    assert acme.webhook_secret == new != old
