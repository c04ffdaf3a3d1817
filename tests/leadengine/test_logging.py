"""Logs: each line once in every process (a command, gunicorn, runserver, a Celery worker), in LOG_FORMAT (plain or
one JSON object per line), with the request's id (X-Request-ID) or the task's and job run's (core/logs.py)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from core.logs import ContextFilter, JsonFormatter, log_context, log_context_bound, logging_config
from core.request_id import REQUEST_ID_MAX_LENGTH
from leadengine.models import JobRun
from leadengine.services import jobs
from tests.faults.servers import Process, manage, wait_until
from tests.leadengine.failing_site import FAILURE
from tests.production import fetch, free_port, production_env, web
from tests.workers import database_url

TRACEBACK_END = f"RuntimeError: {FAILURE}"


@pytest.fixture
def json_lines():
    """The root logger's lines, as core/logs.py writes them with LOG_FORMAT=json, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def test_json_line_holds_time_level_logger_message_exception_context_and_extra_fields(json_lines):
    log = logging.getLogger("leadengine.test")
    with log_context_bound(request_id="req-1"):
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("failed %s of %s", 1, 2, extra={"rows": 3})
    log.warning("after")

    failed, after = json_lines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", failed.pop("time"))
    exception = failed.pop("exception")
    assert exception.startswith("Traceback (most recent call last):\n")
    assert exception.endswith("ZeroDivisionError: division by zero")
    assert failed == {
        "level": "ERROR", "logger": "leadengine.test", "message": "failed 1 of 2", "rows": 3, "request_id": "req-1",
    }  # fmt: skip
    after.pop("time")
    assert after == {"level": "WARNING", "logger": "leadengine.test", "message": "after"}
    assert log_context() == {}


def test_an_exception_logged_outside_its_block_keeps_the_fields_of_where_it_was_raised(json_lines):
    """Celery logs a failed task's exception after the job run's block has ended."""

    def task() -> None:
        with log_context_bound(task_id="t-1"), log_context_bound(job_run_id=7):
            raise ValueError("no such run")

    try:
        task()
    except ValueError:
        logging.getLogger("celery.app.trace").exception("task failed")
    logging.getLogger("celery.app.trace").warning("next")

    failed, after = json_lines()
    assert (failed["message"], failed["task_id"], failed["job_run_id"]) == ("task failed", "t-1", 7)
    assert "job_run_id" not in after
    assert "task_id" not in after


def test_a_value_json_cannot_hold_is_written_as_text(json_lines):
    logging.getLogger("leadengine.test").warning("odd", extra={"when": timezone.datetime(2026, 1, 2)})

    assert json_lines()[0]["when"] == "2026-01-02 00:00:00"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' is not one of: plain, json"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' is not one of: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_an_unreadable_log_setting_is_refused_naming_it(env, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        logging_config(env)

    assert str(refused.value) == message


def test_log_settings_are_read_in_any_case():
    config = logging_config({"LOG_FORMAT": " JSON ", "LOG_LEVEL": "warning"})

    assert config["handlers"]["console"]["formatter"] == "json"
    assert config["root"] == {"handlers": ["console"], "level": "WARNING"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sent",
    ["3f2a1c9e-5b7d-4e21-9a0b-6c8d7e9f0a1b", "Root=1-67891233-abcdef012345678912345678", "a" * REQUEST_ID_MAX_LENGTH],
)
def test_a_well_formed_request_id_is_answered_back(client, sent):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=sent)

    assert response.status_code == 200
    assert response["X-Request-ID"] == sent


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sent", [None, "", "two words", "line\r\nbreak", 'quote"d', "a" * (REQUEST_ID_MAX_LENGTH + 1), "é"]
)
def test_a_missing_or_malformed_request_id_is_replaced_by_a_new_one(client, sent):
    headers = {} if sent is None else {"HTTP_X_REQUEST_ID": sent}

    first = client.get("/healthz", **headers)["X-Request-ID"]
    second = client.get("/healthz", **headers)["X-Request-ID"]

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


@pytest.mark.django_db
def test_the_line_django_logs_of_a_refused_request_carries_its_id(client, json_lines):
    """Django writes a 4xx response's warning after the middleware returned, outside the request's context."""
    client.get("/api/v1/leads/", HTTP_X_REQUEST_ID="refused-1", secure=True)

    refused = [line for line in json_lines() if line["logger"] == "django.request"]
    assert [(line["message"], line["request_id"]) for line in refused] == [
        ("Unauthorized: /api/v1/leads/", "refused-1")
    ]


# Processes. Those counting lines run with DEBUG on: Django then adds a console handler of its own to its
# "django" logger, which wrote its lines (a failing request's traceback) a second time beside the root's.


def test_a_command_writes_each_line_once(tmp_path):
    snippet = (
        "import logging\n"
        "logging.getLogger('django.test').warning('a line of django')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('leadengine.test').exception('a line of the project')\n"
    )
    command = manage("shell", "-c", snippet, env={"LOG_FORMAT": "plain"}, log=tmp_path / "shell.log")

    assert command.wait(60) == 0, command.output()
    output = command.output()
    assert output.count("a line of django") == 1, output
    assert output.count("a line of the project") == 1, output
    assert output.count("ZeroDivisionError: division by zero") == 1, output
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING django.test a line of django$", output, re.M)


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    answer = fetch(port, path, headers)
    return answer.status, dict(answer.headers)


@contextmanager
def failing_site(server: str, *, env: dict[str, str], log: Path) -> Iterator[int]:
    """The failing site (tests/leadengine/failing_site.py) served by the Procfile's web line (gunicorn, its
    configuration file included; production's settings unless `env` says otherwise) or by runserver; yields its
    port once it answers, and stops it after. Plain HTTP: no redirect to https."""
    env = {"DJANGO_SETTINGS_MODULE": "tests.leadengine.failing_site", "SECURE_SSL_REDIRECT": "false", **env}
    if server == "gunicorn":
        with web(production_env(**env), log, workers=1) as port:
            yield port
        return
    port = free_port()
    env = {"DATABASE_URL": database_url(), **env}  # the test database, as production_env gives gunicorn
    process = Process(["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], env=env, log=log)

    def answers() -> bool:
        assert process.process.poll() is None, process.output()
        try:
            fetch(port, "/healthz")
        except OSError:
            return False
        return True

    try:
        wait_until(answers, seconds=60, what="runserver answering")
        yield port
    finally:
        process.terminate()


@pytest.mark.django_db
@pytest.mark.parametrize("server", ["gunicorn", "runserver"])
def test_a_failing_request_writes_its_traceback_once_in_plain_lines(server, tmp_path):
    env = {"LOG_FORMAT": "plain", "DEBUG": "true"}
    with failing_site(server, env=env, log=(log := tmp_path / "web.log")) as port:
        status, _ = get(port, "/fail/", {})

    output = log.read_text()
    assert status == 500
    assert output.count("serving the failing page") == 1, output
    assert output.count("Internal Server Error: /fail/") == 1, output
    assert output.count(TRACEBACK_END) == 1, output


@pytest.mark.django_db
def test_gunicorn_writes_one_json_object_per_line_with_the_request_id(tmp_path):
    with failing_site("gunicorn", env={"LOG_FORMAT": "json"}, log=(log := tmp_path / "web.log")) as port:
        status, headers = get(port, "/fail/", {"X-Request-ID": "req-from-the-proxy-42"})

    output = log.read_text()
    lines = [json.loads(line) for line in output.splitlines()]  # every line, gunicorn's own included
    assert status == 500
    assert headers["X-Request-ID"] == "req-from-the-proxy-42"
    by_logger = {(line["logger"], line["message"]): line for line in lines}
    assert len(by_logger) == len(lines), output  # no line twice
    assert any(line["logger"] == "gunicorn.error" and line["message"].startswith("Booting worker") for line in lines)
    served = by_logger["leadengine.failing_site", "serving the failing page"]
    assert served["level"] == "WARNING"
    assert served["request_id"] == "req-from-the-proxy-42"
    failed = by_logger["django.request", "Internal Server Error: /fail/"]
    assert failed["level"] == "ERROR"
    assert failed["request_id"] == "req-from-the-proxy-42"
    assert failed["status_code"] == 500
    assert failed["exception"].endswith(TRACEBACK_END)
    assert output.count(TRACEBACK_END) == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_writes_a_job_runs_lines_once_with_the_run_and_the_task(workers):
    """A run whose lock another session holds (its live copy elsewhere) is left alone by the worker, which says
    so in one line of the run and the task."""
    worker = workers(LOG_FORMAT="json", LOG_LEVEL="INFO")
    run = JobRun.objects.create(job=JobRun.Job.LEAD_EXPIRY, queued_at=timezone.now())
    assert jobs._lock_try(run)  # this test's connection plays the live copy
    try:
        assert jobs.job_run_send(run_id=run.pk)
        wait_until(lambda: "is running elsewhere" in worker.log.read_text(), seconds=60, what="the worker's line")
    finally:
        jobs._lock_release(run)
    output = worker.stop()

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    elsewhere = [line for line in lines if "is running elsewhere" in line["message"]]
    assert len(elsewhere) == 1, output
    assert output.count("is running elsewhere") == 1, output
    line = elsewhere[0]
    assert line["message"] == f"job run {run.pk} is running elsewhere; this copy stops"
    assert line["logger"] == "leadengine.services.jobs"
    assert line["job_run_id"] == run.pk
    assert line["task_name"] == "leadengine.job_run"
    received = next(line for line in lines if line["message"].startswith("Task leadengine.job_run["))
    assert line["task_id"] == received["data"]["id"]
    # Celery's own lines are LeadEngine's too, not in its format beside them
    assert not re.search(r"^\[\d{4}-\d\d-\d\d .*: (INFO|WARNING|ERROR)/", output, re.M), output
    assert connection.vendor == "postgresql"
