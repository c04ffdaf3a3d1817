"""Error reports: with SENTRY_DSN set, a failing page's and a failing task's exceptions reach Sentry's ingest (here a
local HTTP server standing in for it), tagged with their request's or task's ids and without personal data; an
unreadable DSN stops the process naming SENTRY_DSN; unset, the SDK is never initialised (leadengine/sentry.py)."""

from __future__ import annotations

import gzip
import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from leadengine.sentry import sentry_init
from tests.faults.servers import manage, wait_until
from tests.leadengine.failing_site import FAILURE
from tests.leadengine.test_logging import failing_site, get
from tests.receiver import Receiver
from tests.workers import database_url


def events(receiver: Receiver) -> list[dict]:
    """The events (errors) among the envelopes the stand-in received: each envelope is lines of JSON, headers and
    items, gzipped."""
    found = []
    for headers, body in list(receiver.requests):
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        for line in body.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and "exception" in item:
                found.append(item)
    return found


def exception_of(event: dict) -> tuple[str, str]:
    last = event["exception"]["values"][-1]
    return last["type"], last["value"]


@pytest.fixture
def ingest():
    """A local stand-in for Sentry's ingest, and a DSN pointing at it."""
    receiver = Receiver()
    yield receiver, f"http://public@127.0.0.1:{receiver.port}/1"
    receiver.close()


@pytest.mark.django_db
def test_a_failing_page_is_reported_with_its_request_id_and_no_personal_data(ingest, tmp_path):
    receiver, dsn = ingest
    env = {"SENTRY_DSN": dsn, "SENTRY_ENVIRONMENT": "staging", "LOG_FORMAT": "json"}
    with failing_site("gunicorn", env=env, log=tmp_path / "web.log") as port:
        status, _ = get(port, "/fail/", {"X-Request-ID": "req-7", "Cookie": "sessionid=secret-session"})
        reported = wait_until(lambda: events(receiver), seconds=30, what="the event at the ingest")

    assert status == 500
    assert len(reported) == 1, reported  # the exception, not its log line a second time
    event = reported[0]
    assert exception_of(event) == ("RuntimeError", FAILURE)
    assert event["environment"] == "staging"
    assert event["tags"]["request_id"] == "req-7"
    assert event["request"]["url"].endswith("/fail/")
    assert "secret-session" not in json.dumps(event)
    assert "ip_address" not in json.dumps(event.get("user", {}))


@pytest.mark.django_db
def test_a_failing_task_is_reported_with_its_task(ingest, tmp_path):
    """A job run's task asked for a run that does not exist, run eagerly in a process of its own."""
    receiver, dsn = ingest
    snippet = "from leadengine.tasks import job_run\njob_run.apply(args=[0])\n"
    command = manage(
        "shell", "-c", snippet, env={"SENTRY_DSN": dsn, "DATABASE_URL": database_url()}, log=tmp_path / "task.log"
    )

    assert command.wait(60) == 0, command.output()
    reported = events(receiver)  # sent before the process exited (the SDK flushes at exit)
    assert len(reported) == 1, reported
    event = reported[0]
    assert exception_of(event) == ("JobRun.DoesNotExist", "JobRun matching query does not exist.")
    assert event["tags"]["task_name"] == "leadengine.job_run"
    assert event["tags"]["job_run_id"] == "0"
    assert event["environment"] == "development"  # DEBUG on, no SENTRY_ENVIRONMENT


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("sentry.example.com", "Unsupported scheme ''"),
        ("https://sentry.example.com/1", "Missing public key"),
        ("https://key@sentry.example.com/project", "Invalid project in DSN ('project')"),
    ],
)
def test_an_invalid_dsn_stops_the_process_naming_sentry_dsn(dsn, reason, tmp_path):
    command = manage("check", env={"SENTRY_DSN": dsn}, log=tmp_path / "check.log")

    assert command.wait(60) != 0
    assert (
        f"ImproperlyConfigured: SENTRY_DSN is not a Sentry DSN ({reason}); it looks like "
        "https://<public key>@<host>/<project id>"
    ) in command.output()


def test_without_a_dsn_sentry_is_never_initialised(tmp_path):
    snippet = "import sys\nprint('sentry_sdk' in sys.modules)\n"
    command = manage("shell", "-c", snippet, env={"SENTRY_DSN": ""}, log=tmp_path / "shell.log")

    assert command.wait(60) == 0, command.output()
    assert command.output().splitlines()[-1] == "False"
    assert sentry_init({}, debug=False) is False


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        ("2", "SENTRY_TRACES_SAMPLE_RATE=2 must be from 0 to 1"),
        ("-0.1", "SENTRY_TRACES_SAMPLE_RATE=-0.1 must be from 0 to 1"),
        ("nan", "SENTRY_TRACES_SAMPLE_RATE=nan must be from 0 to 1"),
        ("half", "SENTRY_TRACES_SAMPLE_RATE='half' is not a number from 0 to 1"),
    ],
)
def test_a_traces_sample_rate_outside_0_to_1_is_refused(rate, message):
    import sentry_sdk

    with pytest.raises(ImproperlyConfigured) as refused:
        sentry_init({"SENTRY_DSN": "https://key@sentry.example.com/1", "SENTRY_TRACES_SAMPLE_RATE": rate}, debug=False)

    assert str(refused.value) == message
    assert not sentry_sdk.is_initialized()
