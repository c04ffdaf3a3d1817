"""API keys: generated, stored as a hash only, authenticated, revoked (contractors.services.api_keys)."""

import datetime as dt
import hashlib
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contractors.models import ApiKey, Contractor
from contractors.services.api_keys import (
    ApiAccessDenied,
    ApiKeyRevoked,
    ApiKeyUnknown,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
)
from contractors.services.contractors import contractor_status_change


def stored_text() -> str:
    """Every value of every column of the API key table, as PostgreSQL has them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t::text FROM {ApiKey._meta.db_table} t")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_raw_key_is_never_stored_only_its_sha256(acme):
    key, raw_key = api_key_create(contractor=acme, name="CRM sync")

    assert raw_key.startswith(key.prefix + "_")
    assert len(key.prefix) == 11 and key.prefix.startswith("le_")
    assert len(raw_key) == 11 + 1 + 43
    assert key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    text = stored_text()
    assert raw_key not in text
    assert raw_key[len(key.prefix) + 1 :] not in text  # nor its secret part
    assert key.prefix in text and key.key_hash in text


def test_two_keys_differ(acme):
    (_, first), (_, second) = api_key_create(contractor=acme), api_key_create(contractor=acme)
    assert first != second


def test_the_database_refuses_a_raw_key_in_the_hash_column(acme):
    with pytest.raises(IntegrityError, match="contractors_apikey_hash_is_sha256"), transaction.atomic():
        ApiKey.objects.create(contractor=acme, prefix="le_00000000", key_hash="le_00000000_" + "x" * 43)
    assert not ApiKey.objects.exists()


def test_a_valid_key_authenticates_its_contractor_and_records_its_use(acme):
    key, raw_key = api_key_create(contractor=acme)
    now = timezone.now()

    found = api_key_authenticate(raw_key=raw_key, now=now)

    assert (found.pk, found.contractor) == (key.pk, acme)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now


def test_last_use_is_written_at_most_once_a_minute(acme):
    key, raw_key = api_key_create(contractor=acme)
    first = timezone.now()
    api_key_authenticate(raw_key=raw_key, now=first)
    api_key_authenticate(raw_key=raw_key, now=first + dt.timedelta(seconds=30))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    api_key_authenticate(raw_key=raw_key, now=first + dt.timedelta(seconds=61))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first + dt.timedelta(seconds=61)


def test_an_unknown_key_is_rejected_with_401(acme):
    key, raw_key = api_key_create(contractor=acme)
    with pytest.raises(ApiKeyUnknown, match="Unknown API key") as caught:
        api_key_authenticate(raw_key=raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B"))
    assert (caught.value.http_status, caught.value.code) == (401, "unknown_api_key")
    assert ApiKey.objects.get(pk=key.pk).last_used_at is None


def test_a_revoked_key_is_rejected_and_revoking_twice_keeps_the_first_time(acme):
    key, raw_key = api_key_create(contractor=acme)
    revoked = api_key_revoke(key=key)
    first_time = revoked.revoked_at
    api_key_revoke(key=key)

    assert ApiKey.objects.get(pk=key.pk).revoked_at == first_time
    with pytest.raises(ApiKeyRevoked, match=f"API key {key.prefix} was revoked on") as caught:
        api_key_authenticate(raw_key=raw_key)
    assert (caught.value.http_status, caught.value.code) == (401, "revoked_api_key")
    assert ApiKey.objects.get(pk=key.pk).last_used_at is None


def test_a_suspended_contractor_gets_403_with_the_reason(acme):
    _, raw_key = api_key_create(contractor=acme)
    contractor_status_change(contractor=acme, status=Contractor.Status.SUSPENDED, reason="Chargebacks under review.")

    with pytest.raises(ApiAccessDenied) as caught:
        api_key_authenticate(raw_key=raw_key)
    assert (caught.value.http_status, caught.value.code, str(caught.value)) == (
        403,
        "api_access_denied",
        "Acme Roofing is suspended: Chargebacks under review.",
    )


def test_a_paused_contractor_keeps_api_access(acme):
    key, raw_key = api_key_create(contractor=acme)
    contractor_status_change(contractor=acme, status=Contractor.Status.PAUSED)
    assert api_key_authenticate(raw_key=raw_key).pk == key.pk


def test_create_api_key_prints_the_key_alone_on_its_last_line(acme):
    out = io.StringIO()
    call_command("create_api_key", "acme-roofing", "--name", "Zapier", stdout=out)

    raw_key = out.getvalue().splitlines()[-1]
    key = ApiKey.objects.get()
    assert (key.name, key.contractor, key.created_by) == ("Zapier", acme, None)
    assert raw_key == raw_key.strip() and raw_key.startswith(key.prefix + "_")
    assert api_key_authenticate(raw_key=raw_key).pk == key.pk


def test_create_api_key_refuses_an_unknown_contractor(acme):
    with pytest.raises(CommandError, match="no contractor with slug 'acme'"):
        call_command("create_api_key", "acme")
    assert not ApiKey.objects.exists()


def test_create_api_key_warns_that_a_suspended_contractor_cannot_use_it_yet(acme):
    contractor_status_change(contractor=acme, status=Contractor.Status.SUSPENDED, reason="Unpaid.")
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "acme-roofing", stdout=out, stderr=err)
    assert err.getvalue() == (
        "Note: the key is refused until the contractor may use the API again. Acme Roofing is suspended: Unpaid.\n"
    )
    assert out.getvalue().splitlines()[-1].startswith(ApiKey.objects.get().prefix + "_")
