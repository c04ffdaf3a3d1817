import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from leadengine.config import check_redis_url, env_bool, env_int, env_list, env_time_zone, parse_database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("word", ["1", "true", "TRUE", "yes", "Y", "on", " t "])
def test_true_words_read_as_true(word):
    assert env_bool({"DEBUG": word}, "DEBUG", False) is True


@pytest.mark.parametrize("word", ["0", "false", "No", "n", "off", ""])
def test_false_words_read_as_false(word):
    assert env_bool({"DEBUG": word}, "DEBUG", True) is False


def test_unset_boolean_takes_the_default():
    assert env_bool({}, "DEBUG", True) is True


def test_unreadable_boolean_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG='maybe' is not a boolean"):
        env_bool({"DEBUG": "maybe"}, "DEBUG", False)


def test_integer_below_minimum_is_refused():
    with pytest.raises(ImproperlyConfigured, match="IMPORT_CHUNK_ROWS=0 must be at least 1"):
        env_int({"IMPORT_CHUNK_ROWS": "0"}, "IMPORT_CHUNK_ROWS", 10, minimum=1)


def test_integer_that_is_not_a_number_is_refused():
    with pytest.raises(ImproperlyConfigured, match="is not a whole number"):
        env_int({"N": "ten"}, "N", 10)


def test_list_splits_on_commas_and_drops_blanks():
    assert env_list({"ALLOWED_HOSTS": " a.example.com, ,b.example.com "}, "ALLOWED_HOSTS", []) == [
        "a.example.com",
        "b.example.com",
    ]


def test_time_zone_must_be_an_iana_name():
    assert env_time_zone({"TIME_ZONE": "America/Denver"}, "TIME_ZONE", "UTC") == "America/Denver"
    with pytest.raises(ImproperlyConfigured, match="not an IANA time zone"):
        env_time_zone({"TIME_ZONE": "Mountain Time"}, "TIME_ZONE", "UTC")


def test_database_url_with_every_part():
    config = parse_database_url("postgres://lead%40user:p%3Ass@db.internal:6432/leads?sslmode=require")
    assert {key: config[key] for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")} == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "leads",
        "USER": "lead@user",
        "PASSWORD": "p:ss",
        "HOST": "db.internal",
        "PORT": "6432",
        "OPTIONS": {"sslmode": "require"},
    }


def test_database_url_with_a_unix_socket_directory():
    config = parse_database_url("postgresql://postgres:@/leadengine?host=/srv/data/pg")
    assert (config["NAME"], config["USER"], config["HOST"], config["PORT"]) == (
        "leadengine",
        "postgres",
        "/srv/data/pg",
        "",
    )


def test_database_url_other_than_postgres_is_refused():
    with pytest.raises(ImproperlyConfigured, match="LeadEngine runs on PostgreSQL only"):
        parse_database_url("sqlite:///db.sqlite3")


def test_database_url_without_a_database_name_is_refused():
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        parse_database_url("postgres://db.internal:5432/")


def test_redis_url_schemes():
    assert check_redis_url("unix:///tmp/redis.sock") == "unix:///tmp/redis.sock"
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL must start with"):
        check_redis_url("http://localhost:6379")


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false", ALLOWED_HOSTS="leads.example.com",
        SECRET_KEY="x7!Qm2#vR9$kL4@pZ8^wN1&dF6*hJ3(bT5)cY0-sG2+eU9=aO7",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_without_a_secret_key_refuses_to_start():
    result = run_manage("check", DEBUG="false")
    assert result.returncode == 1
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_dead_workers_task_comes_back_only_after_any_task_could_have_ended():
    """Redis hands an unacknowledged task to another worker after the visibility timeout: it must be longer
    than every task's hard time limit, or a long job still running would get a second copy."""
    from leadengine.celery import app

    app.loader.import_default_modules()
    limits = {name: task.time_limit for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert limits and all(limits.values()), limits  # every task of ours has a hard limit
    assert app.conf.broker_transport_options["visibility_timeout"] > max(limits.values())
