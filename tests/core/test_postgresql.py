"""The database backend's health check (core/postgresql): a connection kept between requests is checked without a
query while the server has said nothing, and replaced before a request's first query when the server ended it
(pg_terminate_backend on the shared server; a real restart of a throw-away server)."""

import os
import select
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.db import close_old_connections, connection

from tests.faults.servers import Postgres, wait_until
from tests.workers import database_url


def readable(wrapper) -> bool:
    poll = select.poll()
    poll.register(wrapper.connection.fileno(), select.POLLIN)
    return bool(poll.poll(0))


def backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_an_idle_connection_is_found_usable_without_a_query():
    pid = backend_pid(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last query'")

    assert connection.is_usable()

    with psycopg.connect(database_url(), autocommit=True) as other:
        (last,) = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert last == "SELECT 'the last query'"  # Django's own check would have left "SELECT 1"


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced_before_a_requests_first_query():
    assert connection.settings_dict["CONN_MAX_AGE"]
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    pid = backend_pid(connection)
    with psycopg.connect(database_url(), autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    wait_until(lambda: readable(connection), seconds=10, what="the server's goodbye")
    assert not connection.is_usable()

    close_old_connections()  # what a request's start does (request_started)

    assert backend_pid(connection) != pid


# A process of the site's settings holding one connection to the throw-away server, as a web worker between
# requests: it reads a line, then starts a "request" (Django's request_started) and answers its backend's pid.
KEPT_CONNECTION = """
import sys
import django
django.setup()
from django.conf import settings
from django.db import close_old_connections, connection
for _ in sys.stdin:
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        print(cursor.fetchone()[0], flush=True)
"""


def test_a_connection_kept_across_a_server_restart_is_replaced_before_the_next_requests_first_query():
    pg = Postgres()
    env = os.environ | {
        "DATABASE_URL": pg.url(),
        "DB_CONN_MAX_AGE": "600",
        "DJANGO_SETTINGS_MODULE": "leadengine.settings",
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", KEPT_CONNECTION], cwd=settings.BASE_DIR, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:

        def request() -> int:
            worker.stdin.write("request\n")
            worker.stdin.flush()
            return int(worker.stdout.readline())

        first = request()
        assert request() == first  # the connection is kept between requests

        pg.stop(mode="fast")
        pg.start()

        assert request() != first  # replaced, and the request's query answered
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)
        pg.destroy()
