import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from leadengine.config import (
    broker_url,
    broker_url_beside,
    check_apart,
    check_redis_url,
    embedded_servers,
    env_bool,
    env_int,
    env_list,
    env_seconds,
    env_time_zone,
    parse_database_url,
    redis_url_on_database,
)

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
        "ENGINE": "core.postgresql",
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
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL must start with one of redis://, rediss://, unix://"):
        check_redis_url("http://localhost:6379")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://cache.internal:6379/two", "REDIS_URL selects database 'two', which is not a whole number"),
        ("redis://cache.internal:6379/0?db=x", "REDIS_URL selects database 'x', which is not a whole number"),
        ("redis://cache.internal:6379/-1", "REDIS_URL selects database -1, which is below 0"),
        ("redis://cache.internal:99999/0", "REDIS_URL has an invalid port: 'cache.internal:99999'"),
        ("unix://", "REDIS_URL names no socket file"),
    ],
)
def test_an_unreadable_redis_url_names_the_variable(url, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        check_redis_url(url)


@pytest.mark.parametrize(
    ("redis_url", "broker"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/1"),
        ("redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379/15", "redis://127.0.0.1:6379/14"),  # the last of 16: the one before
        ("redis://:s%40cret@cache.internal:6380/3", "redis://:s%40cret@cache.internal:6380/4"),
        ("redis://cache.internal:6379/0?db=7", "redis://cache.internal:6379/8"),  # redis-py reads ?db= first
        (
            "rediss://cache.internal:6380/2?ssl_cert_reqs=required",
            "rediss://cache.internal:6380/3?ssl_cert_reqs=required",
        ),
        ("unix:///srv/redis/redis.sock", "redis+socket:///srv/redis/redis.sock?virtual_host=1"),
        ("unix:///srv/redis/redis.sock?db=15", "redis+socket:///srv/redis/redis.sock?virtual_host=14"),
    ],
)
def test_the_broker_is_derived_on_the_database_after_the_caches(redis_url, broker):
    assert broker_url_beside(redis_url) == broker


def test_the_embedded_servers_socket_url_gives_a_broker_beside_it(tmp_path):
    from leadengine.embedded import _redis_socket

    socket = _redis_socket(tmp_path)

    assert broker_url_beside(f"unix://{socket}") == f"redis+socket://{socket}?virtual_host=1"


def test_a_redis_py_url_on_another_database():
    assert redis_url_on_database("redis://h:6379/0?db=3&ssl_cert_reqs=none", 5) == "redis://h:6379/5?ssl_cert_reqs=none"
    assert redis_url_on_database("unix:///srv/redis.sock?db=2", 5) == "unix:///srv/redis.sock?db=5"


def test_a_broker_url_is_spelled_as_celery_reads_it():
    assert broker_url("unix:///srv/redis.sock?db=3") == "redis+socket:///srv/redis.sock?virtual_host=3"
    assert (
        broker_url("redis+socket:///srv/redis.sock?virtual_host=2") == "redis+socket:///srv/redis.sock?virtual_host=2"
    )
    assert broker_url("redis://queue.internal:6379") == "redis://queue.internal:6379/0"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "amqp://guest@rabbit:5672//",
            "CELERY_BROKER_URL must start with one of redis://, redis+socket://, rediss://, unix://",
        ),
        ("redis://queue.internal:6379/1?db=2", "CELERY_BROKER_URL has option(s) db that Celery's broker cannot take"),
        ("redis://queue.internal:6379/one", "CELERY_BROKER_URL selects database 'one', which is not a whole number"),
    ],
)
def test_an_unreadable_broker_url_names_the_variable(url, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        broker_url(url)


def test_a_redis_url_with_options_celery_cannot_take_asks_for_a_broker_url():
    with pytest.raises(ImproperlyConfigured, match=r"REDIS_URL has option.s. socket_timeout that Celery's broker"):
        broker_url_beside("redis://cache.internal:6379/0?socket_timeout=3")


@pytest.mark.parametrize(
    ("cache_url", "broker"),
    [
        ("redis://localhost:6379/3", "redis://127.0.0.1:6379/3"),
        ("redis://cache.internal/0", "redis://cache.internal:6379"),
        ("unix:///srv/redis.sock?db=2", "redis+socket:///srv/redis.sock?virtual_host=2"),
    ],
)
def test_a_cache_and_a_broker_on_one_database_are_refused(cache_url, broker):
    with pytest.raises(ImproperlyConfigured, match="clearing the cache would empty the task queue"):
        check_apart(cache_url, broker_url(broker))


def test_a_cache_and_a_broker_on_databases_apart_are_accepted():
    check_apart("redis://cache.internal:6379/0", "redis://cache.internal:6379/1")
    check_apart("redis://cache.internal:6379/0", "redis://queue.internal:6379/0")


def test_seconds_take_fractions_and_refuse_words_and_small_values():
    assert env_seconds({"CACHE_TIMEOUT_SECONDS": "0.25"}, "CACHE_TIMEOUT_SECONDS", 0.5) == 0.25
    assert env_seconds({}, "CACHE_TIMEOUT_SECONDS", 0.5) == 0.5
    with pytest.raises(ImproperlyConfigured, match="CACHE_TIMEOUT_SECONDS='soon' is not a number of seconds"):
        env_seconds({"CACHE_TIMEOUT_SECONDS": "soon"}, "CACHE_TIMEOUT_SECONDS", 0.5)
    with pytest.raises(
        ImproperlyConfigured, match=r"CACHE_TIMEOUT_SECONDS=0 must be a number of seconds of at least 0.05"
    ):
        env_seconds({"CACHE_TIMEOUT_SECONDS": "0"}, "CACHE_TIMEOUT_SECONDS", 0.5, minimum=0.05)
    with pytest.raises(ImproperlyConfigured, match="must be a number of seconds"):
        env_seconds({"CACHE_TIMEOUT_SECONDS": "nan"}, "CACHE_TIMEOUT_SECONDS", 0.5)


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


def test_production_settings_pass_the_deploy_check(settings):
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false", ALLOWED_HOSTS="leads.example.com",
        # production names its servers (embedded ones are refused with DEBUG off): the session's own
        DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL,
        SECRET_KEY="x7!Qm2#vR9$kL4@pZ8^wN1&dF6*hJ3(bT5)cY0-sG2+eU9=aO7",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_without_a_secret_key_refuses_to_start():
    result = run_manage("check", DEBUG="false")
    assert result.returncode == 1
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_settings_derive_the_cache_and_the_broker_from_redis_url():
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps([s.CACHES['default'], s.CELERY_BROKER_URL, s.CELERY_BROKER_CONNECTION_TIMEOUT]))"
    )
    result = run_manage("shell", "--no-imports", "-c", code, REDIS_URL="redis://127.0.0.1:6379/14", DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "BACKEND": "core.cache_backend.FallbackRedisCache",
            "LOCATION": "redis://127.0.0.1:6379/14",
            "KEY_PREFIX": "leadengine",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        },
        "redis://127.0.0.1:6379/15",
        2.0,
    ]


def test_a_broker_on_the_caches_database_stops_the_process_naming_both():
    result = run_manage(
        "check", DEBUG="true", CACHE_URL="redis://127.0.0.1:6379/9", CELERY_BROKER_URL="redis://127.0.0.1:6379/9"
    )
    assert result.returncode == 1
    assert "CACHE_URL and CELERY_BROKER_URL are both Redis database 9 of 127.0.0.1" in result.stderr


def test_an_unreadable_cache_url_stops_the_process_naming_it():
    result = run_manage("check", DEBUG="true", CACHE_URL="memcached://127.0.0.1:11211")
    assert result.returncode == 1
    assert "CACHE_URL must start with one of redis://, rediss://, unix://" in result.stderr


def test_a_dead_workers_task_comes_back_only_after_any_task_could_have_ended():
    """Redis hands an unacknowledged task to another worker after the visibility timeout: it must be longer
    than every task's hard time limit, or a long job still running would get a second copy."""
    from leadengine.celery import app

    app.loader.import_default_modules()
    limits = {name: task.time_limit for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert limits
    assert all(limits.values()), limits  # every task of ours has a hard limit
    assert app.conf.broker_transport_options["visibility_timeout"] > max(limits.values())


def test_the_data_stores_are_embedded_only_for_unset_urls():
    urls = {"DATABASE_URL": "postgres://db.internal/leads", "REDIS_URL": "redis://cache.internal:6379/0"}

    assert embedded_servers(urls, debug=False) == ()
    assert embedded_servers(urls, debug=True) == ()
    assert embedded_servers({}, debug=True) == ("DATABASE_URL", "REDIS_URL")
    assert embedded_servers({"REDIS_URL": urls["REDIS_URL"]}, debug=True) == ("DATABASE_URL",)
    assert embedded_servers({"LEADENGINE_EMBEDDED": "true"}, debug=False) == ("DATABASE_URL", "REDIS_URL")
    assert embedded_servers({"DATABASE_URL": urls["DATABASE_URL"], "LEADENGINE_EMBEDDED": "yes"}, debug=False) == (
        "REDIS_URL",
    )


@pytest.mark.parametrize(
    ("env", "debug", "message"),
    [
        (
            {},
            False,
            (
                "DATABASE_URL (postgres://user:password@host:5432/name) and REDIS_URL (redis://host:6379/0) must be "
                "set when DEBUG is off; LEADENGINE_EMBEDDED=true starts embedded servers under LEADENGINE_DATA_DIR "
                "instead, for a one-box demo"
            ),
        ),
        (
            {"REDIS_URL": "redis://cache.internal:6379/0", "LEADENGINE_EMBEDDED": "false"},
            False,
            "DATABASE_URL (postgres://user:password@host:5432/name) must be set when DEBUG is off;",
        ),
        (
            {"DATABASE_URL": "postgres://db.internal/leads", "LEADENGINE_EMBEDDED": "false"},
            True,  # a developer who wants their own servers only
            "REDIS_URL (redis://host:6379/0) must be set when LEADENGINE_EMBEDDED is false;",
        ),
    ],
)
def test_an_unset_url_without_embedded_servers_is_refused_naming_it(env, debug, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        embedded_servers(env, debug=debug)


def test_an_unreadable_embedded_choice_names_the_variable():
    with pytest.raises(ImproperlyConfigured, match=re.escape("LEADENGINE_EMBEDDED='demo' is not a boolean")):
        embedded_servers({"LEADENGINE_EMBEDDED": "demo"}, debug=False)


# Imports the settings as a process starting does, with a stand-in for leadengine/embedded.py that records which
# server it was asked to start and answers a URL, so that no server is started; prints what the settings read.
SETTINGS_IMPORT = """
import json, sys, types
started = []
embedded = types.ModuleType("leadengine.embedded")
embedded.postgres_url = lambda data_dir: started.append("postgres") or "postgres://pgserver@/leadengine?host=/srv/pg"
embedded.redis_url = lambda data_dir: started.append("redis") or "unix:///srv/redis/redis.sock"
sys.modules["leadengine.embedded"] = embedded
from leadengine import settings
print(json.dumps({
    "embedded": settings.EMBEDDED_SERVERS, "started": started,
    "database": [settings.DATABASES["default"][key] for key in ("HOST", "NAME")], "redis": settings.REDIS_URL,
}))
"""
STORE_VARIABLES = {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CACHE_URL", "CELERY_BROKER_URL"}


def import_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in STORE_VARIABLES | {"LEADENGINE_EMBEDDED"}}
    return subprocess.run(
        [sys.executable, "-c", SETTINGS_IMPORT],
        cwd=ROOT,
        env={**clean, "SECRET_KEY": "a-production-secret-for-this-test-only", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_a_database_url_refuses_to_start_naming_it():
    result = import_settings(DEBUG="false", REDIS_URL="redis://cache.internal:6379/0")

    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_URL (postgres://user:password@host:5432/name) must be "
        "set when DEBUG is off; LEADENGINE_EMBEDDED=true starts embedded servers under LEADENGINE_DATA_DIR instead, "
        "for a one-box demo\n"
    ) in result.stderr


def test_production_without_a_redis_url_refuses_to_start_naming_it():
    result = import_settings(DEBUG="false", DATABASE_URL="postgres://db.internal/leads")

    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        "django.core.exceptions.ImproperlyConfigured: REDIS_URL (redis://host:6379/0) must be set when DEBUG is off;"
    ) in result.stderr


def test_production_with_both_urls_starts_no_embedded_server():
    result = import_settings(
        DEBUG="false", DATABASE_URL="postgres://db.internal/leads", REDIS_URL="redis://cache.internal:6379/0"
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "embedded": [],
        "started": [],
        "database": ["db.internal", "leads"],
        "redis": "redis://cache.internal:6379/0",
    }


def test_a_one_box_demo_chooses_the_embedded_servers_with_debug_off():
    result = import_settings(DEBUG="false", LEADENGINE_EMBEDDED="true", REDIS_URL="redis://cache.internal:6379/0")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "embedded": ["DATABASE_URL"],
        "started": ["postgres"],
        "database": ["/srv/pg", "leadengine"],
        "redis": "redis://cache.internal:6379/0",
    }


def test_development_embeds_both_servers_as_make_run_does():
    result = import_settings(DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "embedded": ["DATABASE_URL", "REDIS_URL"],
        "started": ["postgres", "redis"],
        "database": ["/srv/pg", "leadengine"],
        "redis": "unix:///srv/redis/redis.sock",
    }
