"""Procfile is production's (gunicorn, Celery workers, one beat); Procfile.dev is `make run`'s (runserver)."""

import os
import re
import shlex
import subprocess

import pytest

from tests.production import ROOT, fetch, processes, production_env, web


def expanded(command: str, **env: str) -> list[str]:
    """The command's words after the shell's expansion, as a platform's shell runs it."""
    clean = {key: value for key, value in os.environ.items() if key not in {"PORT", "WEB_CONCURRENCY"}}
    done = subprocess.run(
        ["sh", "-c", f"set -- {command}; printf '%s\\n' \"$@\""],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_procfile_runs_production_processes_and_no_development_server():
    production = processes("Procfile")

    assert sorted(production) == ["beat", "release", "web", "worker"]
    assert "runserver" not in (ROOT / "Procfile").read_text()
    web = shlex.split(production["web"])
    assert web[:2] == ["gunicorn", "leadengine.wsgi:application"]
    assert production["worker"] == "celery -A leadengine worker -l info"
    # one beat: its own process, and no worker embeds another (celery worker -B)
    assert production["beat"] == "celery -A leadengine beat -l info"
    assert [name for name, command in production.items() if "beat" in command] == ["beat"]


def test_procfile_release_migrates_collects_static_files_and_seeds_stopping_at_a_failed_step():
    steps = processes("Procfile")["release"].split(" && ")

    assert steps == [
        "python manage.py migrate --noinput",
        "python manage.py collectstatic --noinput",
        "python manage.py seed_schedules",
        "python manage.py seed_roles",
    ]


def test_procfile_web_takes_its_port_and_worker_count_from_the_environment():
    command = processes("Procfile")["web"]

    assert expanded(command, PORT="5000") == [
        "gunicorn", "leadengine.wsgi:application", "--workers", "2", "--worker-class", "gthread", "--threads", "4",
        "--bind", "0.0.0.0:5000",
    ]  # fmt: skip
    assert expanded(command, PORT="8080", WEB_CONCURRENCY="5")[2:4] == ["--workers", "5"]
    assert expanded(command, PORT="8080", WEB_CONCURRENCY="5")[-1] == "0.0.0.0:8080"


def test_procfile_dev_runs_the_development_server_worker_and_beat():
    development = processes("Procfile.dev")

    assert development == {
        "web": "python manage.py runserver $HOST:$PORT",
        "worker": "celery -A leadengine worker -l info -c 2",
        "beat": "celery -A leadengine beat -l info",
    }


def test_make_run_starts_procfile_dev():
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)

    assert run is not None
    honcho = [line for line in run[1].splitlines() if "honcho" in line]
    assert len(honcho) == 1
    assert honcho[0].endswith("$(BIN)/honcho start -f Procfile.dev")


def get(port: int, path: str) -> tuple[int, str]:
    answer = fetch(port, path)
    return answer.status, answer.headers.get("Location") or ""


@pytest.mark.django_db
def test_procfile_web_serves_production_with_probes_over_plain_http(tmp_path):
    """The web line as a platform runs it (a shell, PORT set, WEB_CONCURRENCY unset), with production's
    settings: 2 gunicorn workers; the probes answer plain HTTP, the admin redirects to https."""
    with web(production_env(), tmp_path / "gunicorn.log") as port:
        assert get(port, "/healthz") == (200, "")
        assert get(port, "/readyz") == (200, "")
        assert get(port, "/admin/") == (301, f"https://127.0.0.1:{port}/admin/")
        assert (tmp_path / "gunicorn.log").read_text().count("Booting worker with pid") == 2
