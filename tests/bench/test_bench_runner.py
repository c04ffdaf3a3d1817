"""bench/run_all.py (`make bench`) run as a user runs it, at the tiny size, on two cheap benchmarks: it runs each
in turn, prints one table of their figures, writes them to the results file, and shows a benchmark that fails
as failed while the others still run. Never timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import DATABASE_VARIABLE, server_url
from tests.bench.test_bench_smoke import ROOT, SCRIPT_TIMEOUT_SECONDS, databases_drop, smoke_prefix, value_in

BENCHES = "learning,leads"


@pytest.fixture
def bench_name():
    """The bench database name the runner is given (it runs tiny benchmarks in `<name>_tiny`), dropped after."""
    name = f"{smoke_prefix()}_runner"
    databases_drop(server_url(), name)
    yield name
    databases_drop(server_url(), name)


def run_all(output: Path, database: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/run_all.py", "--size", "tiny", "--bench", BENCHES, "--output", str(output)],
        cwd=ROOT,
        env=os.environ | {DATABASE_VARIABLE: database},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )


def table_rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    """(bench, figure) -> the row's cells (value, unit), from the table the runner prints."""
    rows = {}
    for line in stdout.splitlines()[2:]:
        cells = line.split()
        if len(cells) >= 3 and "|" not in cells:
            rows[cells[0], cells[1]] = cells[2:]
    return rows


def test_the_runner_runs_each_bench_asked_for_and_prints_one_table_of_their_figures(bench_name, tmp_path):
    output = tmp_path / "results.json"

    done = run_all(output, bench_name)

    assert done.returncode == 0, done.stderr[-5000:]
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["bench", "figure", "value", "unit"]
    assert lines[-2:] == ["2 benchmarks, 2 ok", f"Figures written to {output}"]
    # Each benchmark's output went by on stderr, in the run order (leads before learning, as in BENCHES).
    assert done.stderr.index("== leads: python bench/leads.py --properties 2000 --runs 1") < done.stderr.index(
        "== learning: python bench/learning.py --outcomes 3000 --seed 3"
    )
    results = json.loads(output.read_text())
    assert list(results["benches"]) == ["leads", "learning"]
    leads, learning = results["benches"]["leads"], results["benches"]["learning"]
    assert (leads["ok"], leads["exit_code"], leads["size"], leads["error"]) == (True, 0, "tiny", None)
    assert leads["command"] == "python bench/leads.py --properties 2000 --runs 1"
    assert leads["figures"]["bench"] == "leads"
    assert leads["figures"]["properties"] == 2000
    assert learning["figures"]["outcomes"] == 3000
    assert 0.5 < learning["figures"]["held_out_auc"] <= 1
    # The table shows every figure of the file, with its unit when its name tells it.
    rows = table_rows(done.stdout)
    for bench in ("leads", "learning"):
        figures = results["benches"][bench]["figures"]
        assert {name for (row_bench, name) in rows if row_bench == bench} == (set(figures) - {"bench"}) | {
            "bench_seconds"
        }
    assert rows["leads", "properties"] == ["2,000"]
    assert rows["leads", "leads_1000_seconds"] == [f"{leads['figures']['leads_1000_seconds']:,}", "s"]
    assert rows["learning", "outcomes"] == ["3,000"]
    # The leads benchmark ran in the tiny bench database, beside the one it was named.
    assert value_in(f"{bench_name}_tiny", "SELECT count(*) FROM scoring_property") == 2000


def test_a_failing_bench_is_shown_failed_with_its_error_and_the_others_still_run(bench_name, tmp_path):
    output = tmp_path / "results.json"
    earlier = {"ok": True, "size": "tiny", "figures": {"bench": "storm", "leads": 12}}
    output.write_text(json.dumps({"benches": {"storm": earlier}}))
    refused = "Not-A-Database"  # the leads benchmark refuses the name; learning needs no database

    done = run_all(output, refused)

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-2] == "2 benchmarks, 1 ok, 1 failed: leads"
    rows = table_rows(done.stdout)
    assert rows["leads", "FAILED"] == ["exit", "code", "1"]
    assert ("leads", "properties") not in rows
    assert rows["learning", "outcomes"] == ["3,000"]
    message = f"{DATABASE_VARIABLE}='{refused}_tiny' is not a bench database name"
    assert any(line.startswith("leads") and "| " in line and message in line for line in lines)
    results = json.loads(output.read_text())
    # This run's entries replace those of the same benchmarks; the storm benchmark's earlier entry is kept, and
    # the entries are in the run order.
    assert list(results["benches"]) == ["leads", "storm", "learning"]
    assert results["benches"]["storm"] == earlier
    leads = results["benches"]["leads"]
    assert (leads["ok"], leads["exit_code"], leads["figures"]) == (False, 1, None)
    assert message in leads["error"]
    assert results["benches"]["learning"]["ok"] is True
