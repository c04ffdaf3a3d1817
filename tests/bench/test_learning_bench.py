"""bench/learning.py run end to end at a tiny size, as a user runs it, so that it cannot rot unseen: it needs
no database, exits 0 and prints its figures as one JSON object on its last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_learning_bench_fits_and_prints_its_figures():
    done = subprocess.run(
        [sys.executable, "bench/learning.py", "--outcomes", "3000", "--seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "learning"
    assert figures["outcomes"] == 3000
    assert 0 < figures["conversions"] < 3000
    assert 0 < figures["kept"] <= figures["candidates"]
    assert 0.5 < figures["held_out_auc"] <= 1
    assert figures["held_out_auc_low"] <= figures["held_out_auc"] <= figures["held_out_auc_high"]
    for name in ("candidates_s", "design_matrix_s", "backtest_fit_s", "backtest_figures_s", "fit_s", "total_s"):
        assert figures[name] >= 0
