"""Every benchmark in bench/ run end to end at a tiny size, as a user runs it, so that none can rot unseen.

Never timed and never a judge of speed: each test checks that its script exits 0 and that its last line
is the JSON object of figures the README quotes, with every figure present and of the right kind. Each
script gets a bench database of its own, a copy of a template built once per test session with the
benchmarks' own helpers (schema, ZIP reference, the demo market, its roofing scores, every ZIP owned);
every smoke database is dropped at the end of the session.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from bench.common import DATABASE_VARIABLE, MAX_DATABASE_NAME, database_url, server_url

ROOT = Path(__file__).resolve().parents[2]
# The smallest market every script can use: the admin benchmark searches for the 501st property.
PROPERTIES = 2_000
LEADS = 200
SCRIPT_TIMEOUT_SECONDS = 600  # a hang fails the test instead of stalling the suite
TEMPLATE_BUILD = """
import sys

from bench.common import market_ensure, prepare_schema, use_bench_database
from bench.leads import owners_ensure, scores_ensure

properties = int(sys.argv[1])
use_bench_database()
prepare_schema()
market_ensure(properties)
scores_ensure(properties)
owners_ensure()
"""


def smoke_prefix() -> str:
    """The smoke databases' common prefix, derived from this session's test database, so that test runs on
    other databases never collide with this one."""
    from django.conf import settings

    test_name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if not test_name:
        test_name = "test_" + urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")
    test_name = re.sub(r"[^a-z0-9_]", "_", test_name.lower())
    return f"{test_name[: MAX_DATABASE_NAME - len('_smoke_dashboard')]}_smoke"  # room for the longest script


@contextmanager
def maintenance(server: str):
    with psycopg.connect(database_url(server, "postgres"), autocommit=True, connect_timeout=10) as conn:
        yield conn


def value_in(database: str, sql: str):
    """The one value `sql` reads from a smoke database: what a script left there shows it used the database
    it was given."""
    with psycopg.connect(database_url(server_url(), database), connect_timeout=10) as conn:
        return conn.execute(sql).fetchone()[0]


def databases_drop(server: str, prefix: str) -> None:
    """Drop every database of the prefix, including those a killed run left behind."""
    with maintenance(server) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [f"{prefix}_"]
        ).fetchall()
        for (name,) in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def script_run(arguments: list[str], database: str) -> subprocess.CompletedProcess:
    """`python <arguments>` in the project folder with LEADENGINE_BENCH_DATABASE=database; fails with the
    script's output when it exits non-zero."""
    done = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=os.environ | {DATABASE_VARIABLE: database},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"exit code {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="session")
def bench_database():
    """`bench_database(script, suffix="")`: the name to give the script in LEADENGINE_BENCH_DATABASE, its
    database (with `suffix` for a script that appends one) made a copy of the session's template."""
    server = server_url()
    prefix = smoke_prefix()
    databases_drop(server, prefix)
    template = f"{prefix}_template"

    def copy(script: str, suffix: str = "") -> str:
        name = f"{prefix}_{script}"
        database = f"{name}_{suffix}" if suffix else name
        with maintenance(server) as conn:
            conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
        return name

    try:
        script_run(["-c", TEMPLATE_BUILD, str(PROPERTIES)], template)
        yield copy
    finally:
        databases_drop(server, prefix)


def bench_run(script: str, arguments: list[str], database: str) -> dict:
    """Run bench/<script>.py and return the JSON object of its last stdout line."""
    done = script_run([f"bench/{script}.py", *arguments], database)
    last = done.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert isinstance(figures, dict), last
    assert figures["bench"] == script
    return figures


def assert_numbers(figures: dict, positive: Sequence[str] = (), non_negative: Sequence[str] = ()) -> None:
    """Each named figure is there and is a number: above zero for `positive`, zero or more for `non_negative`
    (timings rounded to a tenth of a millisecond can be 0 on a tiny table)."""
    for key in [*positive, *non_negative]:
        assert key in figures, f"{key} missing from {sorted(figures)}"
        value = figures[key]
        assert isinstance(value, int | float), (key, value)
        assert not isinstance(value, bool), (key, value)
    for key in positive:
        assert figures[key] > 0, (key, figures[key])
    for key in non_negative:
        assert figures[key] >= 0, (key, figures[key])


def test_import_bench_imports_fresh_again_and_a_tenth_and_prints_its_figures(bench_database):
    database = bench_database("import")
    figures = bench_run("import_properties", ["--rows", str(PROPERTIES), "--runs", "1"], database)

    assert figures["rows"] == PROPERTIES
    assert figures["runs"] == 1
    assert_numbers(
        figures,
        positive=["seconds", "rows_per_s", "wall_seconds", "reimport_seconds", "peak_rss_mb",
                  "peak_rss_mb_tenth_file", "file_mb"],
    )  # fmt: skip
    # One fresh import, the re-import of the same file and the file a tenth the size, each a run of its own.
    bench_files = r"'/leadengine-bench-[^/]+/properties(-tenth)?[.]csv$'"  # not the template's market import
    runs = f"SELECT count(*) FROM scoring_importrun WHERE file_name ~ {bench_files}"
    assert value_in(database, runs) == 3
    assert value_in(database, "SELECT count(*) FROM scoring_property") == 0  # emptied after the runs


def test_import_bench_with_no_zip_also_imports_the_file_without_zips_and_prints_both_rates(bench_database):
    database = bench_database("nozip")
    figures = bench_run("import_properties", ["--rows", str(PROPERTIES), "--runs", "1", "--no-zip"], database)

    assert figures["rows"] == PROPERTIES
    # Every generated home lies near a residential ZIP centroid, so every row gets a ZIP from its coordinates.
    assert figures["no_zip_inserted"] == PROPERTIES
    assert figures["no_zip_rejected"] == 0
    assert_numbers(
        figures,
        positive=["seconds", "rows_per_s", "no_zip_seconds", "no_zip_rows_per_s", "no_zip_wall_seconds",
                  "no_zip_peak_rss_mb", "no_zip_slowdown"],
    )  # fmt: skip
    # The file without ZIPs, then the one with them, its re-import and the file a tenth the size.
    no_zip_runs = (
        "SELECT count(*) FROM scoring_importrun WHERE file_name ~ '/leadengine-bench-[^/]+/properties-no-zip[.]csv$' "
        f"AND status = 'succeeded' AND rows_inserted = {PROPERTIES} AND rows_rejected = 0"
    )
    assert value_in(database, no_zip_runs) == 1
    bench_files = r"'/leadengine-bench-[^/]+/properties(-tenth)?[.]csv$'"
    assert value_in(database, f"SELECT count(*) FROM scoring_importrun WHERE file_name ~ {bench_files}") == 3
    # The re-import followed the import with ZIPs: every row was already there, unchanged.
    reimport = f"SELECT max(rows_unchanged) FROM scoring_importrun WHERE file_name ~ {bench_files}"
    assert value_in(database, reimport) == PROPERTIES
    assert value_in(database, "SELECT count(*) FROM scoring_property") == 0


def test_scoring_bench_scores_full_next_day_and_by_row_and_prints_its_figures(bench_database):
    arguments = ["--properties", str(PROPERTIES), "--storms", "1000", "--runs", "1", "--orm-properties", "20"]
    database = bench_database("scoring")
    figures = bench_run("scoring", arguments, database)

    assert figures["properties"] == PROPERTIES
    assert figures["runs"] == 1
    assert figures["orm_properties"] == 20
    assert figures["storms"] >= 1000
    assert 0 < figures["storms_in_window"] <= figures["storms"]
    assert 0 <= figures["next_day_scores_changed"] <= PROPERTIES
    assert_numbers(
        figures,
        positive=["seconds", "properties_per_s", "next_day_seconds", "next_day_properties_per_s", "peak_rss_mb",
                  "peak_rss_mb_tenth_partitions", "orm_properties_per_s", "speedup"],
    )  # fmt: skip
    assert value_in(database, "SELECT count(*) FROM scoring_stormevent") == figures["storms"]
    assert value_in(database, "SELECT count(*) FROM scoring_score") == 20  # the per-row loop's, written last


def test_leads_bench_generates_routes_and_expires_every_lead_and_prints_its_figures(bench_database):
    database = bench_database("leads")
    figures = bench_run("leads", ["--properties", str(PROPERTIES), "--runs", "1"], database)

    assert figures["properties"] == PROPERTIES
    assert figures["runs"] == 1
    assert figures["owned_zips"] > 0
    # Every ZIP of the market has an owner with no cap, so every lead generated is routed, then expires.
    assert figures["leads_100000_created"] > 0
    assert figures["route_100000_assigned"] == figures["leads_100000_created"]
    assert figures["expire_100000_expired"] == figures["leads_100000_created"]
    # The volume target: at most the target, and an exploration draw of a tenth of the day's leads.
    assert 0 < figures["leads_volume_created"] <= figures["leads_volume_target"]
    drawn = figures["leads_volume_exploration_drawn"]
    assert figures["leads_volume_exploration_created"] == figures["leads_volume_created"] + drawn
    assert drawn == math.floor(figures["leads_volume_created"] / 9 + 0.5)
    assert_numbers(
        figures,
        non_negative=["leads_1000_seconds", "leads_1000_created", "leads_100000_zip_limit_seconds",
                      "leads_100000_seconds", "route_100000_seconds", "expire_100000_seconds",
                      "leads_volume_seconds", "leads_volume_exploration_seconds"],
    )  # fmt: skip
    assert value_in(database, "SELECT count(*) FROM leads_lead") == 0  # emptied after the runs
    # The last run's filter: score 50 and up, no ZIP limit.
    last_filter = (
        "SELECT min_score::text || ' ' || coalesce(max_per_zip_per_day::text, 'none') FROM leads_leadfilter f "
        "JOIN scoring_trade t ON t.id = f.trade_id WHERE t.slug = 'roofing'"
    )
    assert value_in(database, last_filter) == "50 none"


def test_api_bench_loads_the_api_and_the_floor_with_wrk_at_each_client_count_and_prints_its_figures(bench_database):
    arguments = ["--properties", str(PROPERTIES), "--leads", str(LEADS), "--clients", "1,2", "--seconds", "2"]
    arguments += ["--workers", "1", "--threads", "2", "--floor"]
    database = bench_database("api")
    figures = bench_run("api", arguments, database)

    # The figures the README quotes lead the line, those of the last client count.
    assert list(figures)[:11] == [
        "bench", "clients", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "server_cpu_ms_per_request",
        "floor_cpu_ms_per_request", "cost_vs_floor", "cost_with_postgres_vs_floor",
    ]  # fmt: skip
    assert figures["clients"] == 2
    assert figures["properties"] == PROPERTIES
    assert figures["leads"] >= LEADS
    assert figures["seconds"] == 2
    assert figures["gunicorn"] == {"worker_class": "gthread", "workers": 1, "threads": 2}
    assert figures["load_generator"] == "wrk"
    # Each count measured in turn, the last one's figures also at the top.
    assert sorted(figures["by_clients"]) == ["1", "2"]
    assert figures["by_clients"]["2"] == {key: figures[key] for key in figures["by_clients"]["2"]}
    for count, run in figures["by_clients"].items():
        assert run["clients"] == int(count)
        assert run["errors"] == 0, run.get("error_kinds")
        assert run["floor_errors"] == 0, run.get("floor_error_kinds")
        endpoints = [name for name in ("list", "next", "detail", "accept") if f"{name}_requests" in run]
        assert sum(run[f"{name}_requests"] for name in endpoints) == run["requests"]
        # The script found delivered leads in the answers' bodies, so it accepted some.
        assert run["accept_requests"] > 0
        assert_numbers(
            run,
            positive=["requests", "rps", "server_cpu_ms_per_request", "floor_requests", "floor_rps",
                      "floor_cpu_ms_per_request", "cost_vs_floor", "wrk_cpu_ms_per_request"],
            non_negative=["p50_ms", "p95_ms", "p99_ms", "floor_p50_ms", "floor_p95_ms", "floor_p99_ms",
                          *(f"{name}_p95_ms" for name in endpoints)],
        )  # fmt: skip
        # PostgreSQL's share is read from its backends' processes: none when the server runs elsewhere.
        postgres = ["postgres_cpu_ms_per_request", "floor_postgres_cpu_ms_per_request", "cost_with_postgres_vs_floor"]
        if run["postgres_cpu_ms_per_request"] is not None:
            assert_numbers(run, non_negative=postgres)
        else:
            assert [run[name] for name in postgres] == [None, None, None]
        assert run["cost_vs_floor"] == round(run["server_cpu_ms_per_request"] / run["floor_cpu_ms_per_request"], 2)
    keys = "SELECT count(*) FROM contractors_apikey WHERE name = 'bench api'"
    assert value_in(database, keys) == figures["contractors"]


def test_dashboard_bench_times_each_figure_and_the_page_and_prints_its_figures(bench_database):
    from bench.dashboard import DATABASE_SUFFIX

    arguments = ["--properties", str(PROPERTIES), "--leads", str(LEADS), "--runs", "1"]
    database = bench_database("dashboard", DATABASE_SUFFIX)
    figures = bench_run("dashboard", arguments, database)

    assert figures["properties"] == PROPERTIES
    assert figures["runs"] == 1
    assert figures["leads"] >= LEADS
    assert figures["lead_events"] > figures["leads"]  # each lead's assignment, then its played-on history
    assert_numbers(
        figures,
        non_negative=[f"{figure}_ms" for figure in (
            "funnel_30d", "funnel_90d", "per_day_30d", "per_day_90d", "outcomes_30d", "outcomes_90d", "coverage",
            "scoring_runs", "jobs_overdue", "page_30d_uncached", "page_90d_uncached", "page_30d_cached")],
    )  # fmt: skip
    assert value_in(f"{database}_{DATABASE_SUFFIX}", "SELECT count(*) FROM leads_lead") == figures["leads"]
    assert value_in(f"{database}_{DATABASE_SUFFIX}", "SELECT count(*) FROM leadengine_jobrun") == 200


ADMIN_PAGES = [
    *("properties", "properties_filtered", "properties_search_parcel", "properties_search_zip"),
    *("scores", "scores_filtered", "scores_search"),
    *("leads", "leads_filtered", "leads_search_zip", "leads_search_parcel"),
    *("territories", "territories_filtered", "territories_search", "job_runs", "job_runs_filtered"),
]


def test_admin_bench_loads_every_change_list_and_prints_its_figures(bench_database):
    from bench.admin import DATABASE_SUFFIX

    arguments = ["--properties", str(PROPERTIES), "--leads", str(LEADS), "--runs", "1"]
    database = bench_database("admin", DATABASE_SUFFIX)
    figures = bench_run("admin", arguments, database)

    assert figures["properties"] == PROPERTIES
    assert figures["scores"] == PROPERTIES
    assert figures["runs"] == 1
    assert figures["leads"] >= LEADS
    assert figures["territories"] > 0
    for page in ADMIN_PAGES:
        assert figures[f"{page}_queries"] > 0, page
        assert isinstance(figures[f"{page}_estimated"], bool), page
    tables = ("scoring_property", "scoring_score", "leads_lead", "territories_territory")
    assert_numbers(
        figures,
        positive=[f"{page}_queries" for page in ADMIN_PAGES],
        non_negative=[*(f"{page}_ms" for page in ADMIN_PAGES), *(f"exact_count_{table}_ms" for table in tables)],
    )
    assert value_in(f"{database}_{DATABASE_SUFFIX}", "SELECT count(*) FROM leads_lead") == figures["leads"]


@pytest.mark.parametrize("name", ["Leadengine-Bench", "leadengine_bench_" + "x" * 41])
def test_bench_refuses_a_database_name_it_cannot_use_and_creates_no_database(name):
    done = subprocess.run(
        [sys.executable, "bench/leads.py", "--properties", str(PROPERTIES)],
        cwd=ROOT,
        env=os.environ | {DATABASE_VARIABLE: name},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"LEADENGINE_BENCH_DATABASE={name!r} is not a bench database name: lower-case letters, digits and "
        "underscores, not starting with a digit, at most 57 characters"
    )
    with maintenance(server_url()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0] == 0


def test_quality_bench_plays_days_learns_and_prints_its_figures(bench_database, monkeypatch):
    # A tiny market plays a few days: learning is allowed from fewer outcomes than a real trade needs.
    monkeypatch.setenv("LEARN_MIN_OUTCOMES", "30")
    database = bench_database("quality")
    arguments = ["--properties", "4000", "--days", "12", "--test-days", "6", "--seed", "3"]
    figures = bench_run("quality", [*arguments, "--timing-outcomes", "3000"], database)

    assert (figures["properties"], figures["days"], figures["seed"], figures["trade"]) == (4000, 12, 3, "roofing")
    assert figures["outcomes"] >= 30
    assert figures["test_outcomes"] > 0
    assert figures["timing_outcomes"] == 3000
    # A tiny market may leave a test window without a conversion: an AUC is then null, never missing.
    for name in ("truth_auc", "oracle_auc", "default_auc", "learned_auc"):
        assert figures[name] is None or 0 <= figures[name] <= 1, (name, figures[name])
    for name in ("default_top_decile_lift", "learned_top_decile_lift", "learned_share_of_oracle"):
        assert name in figures
    assert 0 < figures["truth_unseen_share"] < 1
    assert 0 < figures["truth_interaction_share"] < 1
    assert_numbers(figures, positive=["simulate_seconds"], non_negative=["learn_seconds", "evaluate_seconds"])
    # The bench played its own market, in its own database beside the one it was given.
    assert value_in(f"{database}_quality", "SELECT count(*) FROM scoring_property") == 4000
    assert value_in(f"{database}_quality", "SELECT count(*) FROM demo_truthdraw") > 0
    for name in ("default_top_decile_lift_unweighted", "learned_top_decile_lift_unweighted"):
        assert name in figures

    # --reuse learns and evaluates again on the market played, without playing it: the same test leads.
    again = bench_run("quality", [*arguments, "--timing-outcomes", "3000", "--reuse"], database)
    assert again["simulate_seconds"] is None
    assert (again["test_outcomes"], again["default_auc"]) == (figures["test_outcomes"], figures["default_auc"])
    assert value_in(f"{database}_quality", "SELECT count(*) FROM scoring_property") == 4000


def test_storm_bench_sends_every_lead_of_its_storms_by_webhook_and_prints_its_figures(bench_database):
    database = bench_database("storm")
    arguments = ["--properties", str(PROPERTIES), "--storms", "5", "--reach", "200", "--runs", "1"]
    figures = bench_run("storm", arguments, database)

    assert (figures["properties"], figures["storms"], figures["runs"]) == (PROPERTIES, 5, 1)
    assert 0 < figures["properties_hit"] <= PROPERTIES
    assert "roofing" in figures["trades_rescored"]
    # Every ZIP is owned by an uncapped contractor with a webhook: every lead made is posted.
    assert figures["leads_posted"] == figures["leads"] > 0
    assert_numbers(
        figures,
        positive=[
            "import_s",
            "rescoring_s",
            "first_webhook_s",
            "last_webhook_s",
            "full_nightly_s",
            "speedup",
            "incremental_scoring_s",
            "full_scoring_s",
            "scoring_speedup",
        ],
        non_negative=["rescored"],
    )
    assert figures["first_webhook_s"] <= figures["last_webhook_s"]
    assert value_in(database, "SELECT count(*) FROM scoring_scoringrun WHERE kind = 'incremental'") > 0


def test_login_guard_bench_races_each_guard_and_ours_checks_no_more_passwords_than_its_limits():
    """Its own database (no market needed), dropped after."""
    name = f"{smoke_prefix()}_guard"
    arguments = ["--threads", "8", "--attempts", "22", "--guards", "ours", "axes_database"]
    try:
        figures = bench_run("login_guard", arguments, name)
    finally:
        with maintenance(server_url()) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_login" WITH (FORCE)')

    assert (figures["threads"], figures["attempts"]) == (8, 22)
    # Ours holds its limits whatever the timing: 5 per username, 20 per address (an IPv6 address by its /64).
    assert figures["ours"] == {
        "live_race_user": 5, "race_user": 5, "race_address": 8, "address": 20, "ipv6_walk": 20,
        "owner_between_guesses": 20, "right_password_after_4_failures": True,
        "redis_down_right": 302, "redis_down_wrong": 200,
    }  # fmt: skip
    axes = figures["axes_database"]
    assert set(axes) == set(figures["ours"])
    assert_numbers(axes, positive=["live_race_user", "race_user", "race_address", "address", "ipv6_walk"])
    assert (axes["redis_down_right"], axes["redis_down_wrong"]) == (302, 200)  # its counts are in PostgreSQL
