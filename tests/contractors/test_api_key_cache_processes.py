"""The API key cache across real processes: two gunicorn servers as production runs them (each one worker
of 4 threads, its own cache), both already serving keys from their cache, refuse a key within a second of
a change committed in a third process (this test's): a key revoked, a contractor suspended, a staff user
deactivated."""

import json
import time

import pytest
from django.db import connection

from contractors.services.api_keys import api_key_create, api_key_revoke
from contractors.services.contractors import contractor_status_change
from tests.contractors.factories import ContractorFactory
from tests.production import fetch, production_env, web

PROFILE = "/api/v1/profile/"
LEADS = "/api/v1/leads/"
BOUND_SECONDS = 1.0  # the README's promise: a key stopped anywhere is refused everywhere within a second


def answer(port: int, raw_key: str, path: str = PROFILE) -> tuple[int, str | None]:
    response = fetch(port, path, {"Authorization": f"Api-Key {raw_key}"})
    return response.status, json.loads(response.body).get("code") if response.status != 200 else None


def sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.django_db(transaction=True)
def test_a_key_stopped_in_one_process_is_refused_by_every_warmed_server_within_a_second(
    trades, django_user_model, tmp_path
):
    acme = ContractorFactory(name="Acme Roofing", slug="acme-roofing", trades=[trades["roofing"]])
    bolt = ContractorFactory(name="Bolt Roofing", slug="bolt-roofing", trades=[trades["roofing"]])
    alice = django_user_model.objects.create_user("alice", is_staff=True)
    acme_key, acme_raw = api_key_create(contractor=acme)
    _, bolt_raw = api_key_create(contractor=bolt)
    _, alice_raw = api_key_create(user=alice)
    env = production_env(SECURE_SSL_REDIRECT="false")

    with web(env, tmp_path / "a.log", workers=1) as a, web(env, tmp_path / "b.log", workers=1) as b:
        servers = (a, b)
        for port in servers:
            assert [answer(port, raw) for raw in (acme_raw, bolt_raw)] == [(200, None), (200, None)]
            assert answer(port, alice_raw, LEADS) == (200, None)

        # Proof that both serve the key from their cache: suspended by a raw UPDATE, which tells no cache
        # (what the services and the signals never do), the key still works there (for up to 5 s).
        sql("UPDATE contractors_contractor SET status = 'suspended' WHERE id = %s", [acme.pk])
        assert [answer(port, acme_raw) for port in servers] == [(200, None), (200, None)]
        sql("UPDATE contractors_contractor SET status = 'active' WHERE id = %s", [acme.pk])

        # Revoked here (committed: this test is transactional), a second later refused by both.
        api_key_revoke(key=acme_key)
        time.sleep(BOUND_SECONDS)
        assert [answer(port, acme_raw) for port in servers] == [(401, "revoked_api_key")] * 2

        contractor_status_change(contractor=bolt, status="suspended", reason="Unpaid.")
        time.sleep(BOUND_SECONDS)
        assert [answer(port, bolt_raw) for port in servers] == [(403, "api_access_denied")] * 2

        alice.is_active = False
        alice.save()
        time.sleep(BOUND_SECONDS)
        assert [answer(port, alice_raw, LEADS) for port in servers] == [(403, "api_access_denied")] * 2
