"""Import speed and memory: generate a canonical properties CSV and import it with `import_data`.

    python bench/import_properties.py --rows 1000000 [--runs 3] [--seed 7] [--no-zip]

Each run empties the property table and imports the file in a fresh `manage.py import_data` process
(as a user runs it), timing the import (from its ImportRun) and the whole process, and reading the
process's peak memory from the kernel. A re-import of the same file (every row unchanged) and an
import of a file a tenth the size show what a second import costs and that memory does not grow with
the file. The last line printed is one JSON object of figures.

--no-zip adds the import of the same file without its ZIP column, as county assessor files come
(coordinates, no ZIP): every row then gets the ZIP of the nearest residential centroid. Each run
imports the file without ZIPs, then the one with them, each into an empty table, so both see the same
machine; the figures gain no_zip_seconds, no_zip_rows_per_s, no_zip_wall_seconds, no_zip_peak_rss_mb,
no_zip_inserted, no_zip_rejected and no_zip_slowdown (no-ZIP seconds over with-ZIP seconds, 1.0 when
deriving ZIPs costs nothing). Without it, only the file with ZIPs is imported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, median, prepare_schema, use_bench_database


def run_import(path: Path) -> dict:
    """`manage.py import_data properties PATH` in a child process: wall seconds, import seconds, peak RSS."""
    from scoring.models import ImportRun

    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "import_data", "properties", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"import failed with exit code {child.returncode}:\n{output}")
    run = ImportRun.objects.filter(file_name=str(path.resolve())).order_by("-id").first()
    return {
        "import_seconds": run.duration_seconds,
        "wall_seconds": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "inserted": run.rows_inserted,
        "unchanged": run.rows_unchanged,
        "rejected": run.rows_rejected,
    }


def empty_property_table() -> None:
    """Empty, and analysed as empty: the statistics a first import into a new market meets."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE scoring_property CASCADE")
        cursor.execute("ANALYZE scoring_property")


def write_file(rows: int, seed: int, path: Path, no_zip_path: Path | None = None) -> None:
    """The generated file at `path`, and at `no_zip_path` the same rows without their ZIP column."""
    use_bench_database()
    import django

    django.setup()
    from demo.market import demo_frame_write, demo_market_frames
    from scoring import selectors

    frames = demo_market_frames(
        properties=rows, seed=seed, zips=selectors.residential_zip_frame(), today=dt.date(2026, 11, 1)
    )
    demo_frame_write(frames["properties"], path)
    if no_zip_path:
        demo_frame_write(frames["properties"].drop(columns=["zip"]), no_zip_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-zip", action="store_true", help="also import the file without its ZIP column")
    # Internal: only write the file(s).
    parser.add_argument("--write", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--write-no-zip", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.write:
        write_file(args.rows, args.seed, Path(args.write), Path(args.write_no_zip) if args.write_no_zip else None)
        return
    use_bench_database()
    prepare_schema()
    with tempfile.TemporaryDirectory(prefix="leadengine-bench-") as folder:
        big, small = Path(folder) / "properties.csv", Path(folder) / "properties-tenth.csv"
        no_zip = Path(folder) / "properties-no-zip.csv" if args.no_zip else None
        # Files are written by a child process: a child forked from a parent that held the generated
        # frames would report the parent's memory as its own peak.
        for rows, path, without in ((args.rows, big, no_zip), (max(args.rows // 10, 1), small, None)):
            write = [sys.executable, __file__, "--write", str(path), "--rows", str(rows), "--seed", str(args.seed)]
            subprocess.run(write + (["--write-no-zip", str(without)] if without else []), check=True)
        file_mb = big.stat().st_size / 2**20

        fresh, fresh_no_zip = [], []
        for number in range(args.runs):
            if no_zip:  # first, so that the table holds the file with ZIPs for the re-import
                empty_property_table()
                fresh_no_zip.append(run_import(no_zip))
                print(f"run {number + 1} without ZIPs: {json.dumps(fresh_no_zip[-1])}", file=sys.stderr)
            empty_property_table()
            fresh.append(run_import(big))
            print(f"run {number + 1}: {json.dumps(fresh[-1])}", file=sys.stderr)
        again = run_import(big)  # every row already there and unchanged
        print(f"re-import: {json.dumps(again)}", file=sys.stderr)
        empty_property_table()
        tenth = run_import(small)
        print(f"tenth: {json.dumps(tenth)}", file=sys.stderr)
        empty_property_table()

    seconds = median([run["import_seconds"] for run in fresh])
    figures = {
        "bench": "import_properties",
        "rows": args.rows,
        "runs": args.runs,
        "seconds": round(seconds, 2),
        "rows_per_s": round(args.rows / seconds),
        "wall_seconds": round(median([run["wall_seconds"] for run in fresh]), 2),
        "reimport_seconds": round(again["import_seconds"], 2),
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in fresh)),
        "peak_rss_mb_tenth_file": round(tenth["peak_rss_mb"]),
        "file_mb": round(file_mb, 1),
    }
    if fresh_no_zip:
        no_zip_seconds = median([run["import_seconds"] for run in fresh_no_zip])
        figures |= {
            "no_zip_seconds": round(no_zip_seconds, 2),
            "no_zip_rows_per_s": round(args.rows / no_zip_seconds),
            "no_zip_wall_seconds": round(median([run["wall_seconds"] for run in fresh_no_zip]), 2),
            "no_zip_peak_rss_mb": round(max(run["peak_rss_mb"] for run in fresh_no_zip)),
            "no_zip_inserted": fresh_no_zip[-1]["inserted"],
            "no_zip_rejected": fresh_no_zip[-1]["rejected"],
            "no_zip_slowdown": round(no_zip_seconds / seconds, 3),
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
