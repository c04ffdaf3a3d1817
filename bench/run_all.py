"""Every benchmark, one after the other, and one table of their figures at the end.

    python bench/run_all.py [--bench NAME]... [--size full|tiny] [--output PATH]

`make bench` runs it (`make bench BENCH=leads`, `make bench BENCH_SIZE=tiny`). Each benchmark runs as its own
process with the arguments of the README's Speed section (`--size full`) or the tiny ones the smoke tests use
(`--size tiny`: a few thousand properties, one run; in a database of its own, LEADENGINE_BENCH_DATABASE with
`_tiny` added, so that a tiny run never replaces the full-size market). Its output goes by as it runs; the
last line it prints is its JSON object of figures. A benchmark that fails (exit code not 0, or no JSON last)
is shown as failed with the end of its stderr, the others still run, and the exit code is 1.

The figures are written to a JSON file (bench/results.json; bench/results-tiny.json for tiny runs), one entry
per benchmark with its command, when it finished, how long it took and its figures. A run of some
benchmarks replaces their entries and keeps the others', so the file holds the latest figures of each: the
README's Speed figures are taken from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import DATABASE_VARIABLE, DEFAULT_DATABASE  # noqa: E402
from core.text import counted  # noqa: E402

SIZES = ("full", "tiny")
TINY_SUFFIX = "_tiny"
STDERR_TAIL_LINES = 20
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")  # as shown(): right-aligned in the table


@dataclass(frozen=True)
class Bench:
    """A benchmark script (bench/<name>.py) and its arguments at each size."""

    name: str
    full: str  # the README's arguments (Speed, or the section that quotes the benchmark)
    tiny: str  # tests/bench's
    tiny_env: dict[str, str] = field(default_factory=dict)

    def arguments(self, size: str) -> list[str]:
        return shlex.split(self.full if size == "full" else self.tiny)


# In the order they run. The benchmarks that share the bench database reuse its market when it has their
# number of properties; the import benchmark empties it, so the scoring benchmark after it seeds it again.
BENCHES = [
    Bench("import_properties", "--rows 1000000 --runs 5", "--rows 2000 --runs 1"),
    Bench("scoring", "--properties 1000000 --runs 3", "--properties 2000 --storms 1000 --runs 1 --orm-properties 20"),
    Bench("leads", "--properties 1000000 --runs 3", "--properties 2000 --runs 1"),
    Bench("storm", "--properties 1000000 --runs 3", "--properties 2000 --storms 5 --reach 200 --runs 1"),
    Bench(
        "api",
        "--properties 1000000 --leads 100000 --clients 4,32 --seconds 30 --floor",
        "--properties 2000 --leads 200 --clients 2 --seconds 2 --workers 1 --threads 2 --floor",
    ),
    Bench("dashboard", "--properties 1000000 --leads 100000 --runs 5", "--properties 2000 --leads 200 --runs 1"),
    Bench("admin", "--properties 1000000 --leads 100000 --runs 5", "--properties 2000 --leads 200 --runs 1"),
    Bench("learning", "--outcomes 100000", "--outcomes 3000 --seed 3"),
    Bench(
        "quality",
        "--properties 200000 --days 60 --seed 1",
        "--properties 4000 --days 12 --test-days 6 --seed 3 --timing-outcomes 3000",
        # A tiny market plays a few days: learning is allowed from fewer outcomes than a real trade needs.
        tiny_env={"LEARN_MIN_OUTCOMES": "30"},
    ),
    Bench(
        "login_guard",
        "--threads 32 --attempts 40",
        "--threads 8 --attempts 22 --guards ours axes_database",
    ),
    Bench(
        "faults",
        "--runs 3",
        "--runs 1 --properties 2000 --scenario api_redis_killed --scenario api_postgres_down",
    ),
]
BY_NAME = {bench.name: bench for bench in BENCHES}

# A figure's unit, from how its name ends (the benchmarks' own naming).
UNITS = [
    (re.compile(r"(^|_)per_s$"), "/s"),
    (re.compile(r"(^|_)rps$"), "requests/s"),
    (re.compile(r"(^|_)(seconds|s)$"), "s"),
    (re.compile(r"(^|_)ms$"), "ms"),
    (re.compile(r"(^|_)mb($|_)"), "MB"),
    (re.compile(r"(^|_)(speedup|slowdown|lift)($|_)"), "x"),
    (re.compile(r"(^|_)queries$"), "queries"),
]


@dataclass
class Outcome:
    """What one benchmark's run left: its figures, or why there are none."""

    bench: str
    command: list[str]
    exit_code: int
    seconds: float
    figures: dict[str, Any] | None
    stderr_tail: list[str]
    finished: str
    load_at_start: float  # the machine's 1-minute load average as it started: figures of a busy machine are slower

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.figures is not None

    def entry(self, size: str) -> dict[str, Any]:
        return {
            "size": size,
            "command": shlex.join(["python", *self.command[1:]]),
            "finished": self.finished,
            "seconds": round(self.seconds, 1),
            "machine": {"cpus": os.cpu_count(), "load_at_start": self.load_at_start},
            "ok": self.ok,
            "exit_code": self.exit_code,
            "figures": self.figures,
            "error": None if self.ok else "\n".join(self.stderr_tail),
        }


def unit(figure: str) -> str:
    name = figure.rsplit(".", 1)[-1]
    for pattern, text in UNITS:
        if pattern.search(name):
            return text
    return ""


def flat(figures: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(name, value) of every figure, a nested object's as parent.child."""
    for key, value in figures.items():
        if isinstance(value, dict):
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def last_json_object(stdout: str) -> dict[str, Any] | None:
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        figures = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return figures if isinstance(figures, dict) else None


def pump(stream, sink, keep: deque[str] | list[str]) -> None:
    """Copy a child's stream line by line to `sink` as it comes, keeping the lines."""
    for line in stream:
        keep.append(line.rstrip("\n"))
        sink.write(line)
        sink.flush()


def bench_run(bench: Bench, size: str, env: dict[str, str]) -> Outcome:
    command = [sys.executable, f"bench/{bench.name}.py", *bench.arguments(size)]
    if size == "tiny":
        env = env | bench.tiny_env
    print(f"== {bench.name}: {shlex.join(['python', *command[1:]])}", file=sys.stderr, flush=True)
    load_at_start = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    stdout: list[str] = []
    stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    ) as process:
        # Both streams go by on stderr, so that stdout is the table alone.
        pumps = [
            threading.Thread(target=pump, args=(process.stdout, sys.stderr, stdout), daemon=True),
            threading.Thread(target=pump, args=(process.stderr, sys.stderr, stderr), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        exit_code = process.wait()
        for thread in pumps:
            thread.join()
    seconds = time.monotonic() - started
    figures = last_json_object("\n".join(stdout))
    if exit_code == 0 and figures is None:
        stderr.append("the last line printed is not a JSON object of figures")
    outcome = Outcome(
        bench=bench.name,
        command=command,
        exit_code=exit_code,
        seconds=seconds,
        figures=figures if exit_code == 0 else None,
        stderr_tail=list(stderr),
        finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        load_at_start=load_at_start,
    )
    print(f"== {bench.name}: {'ok' if outcome.ok else 'FAILED'} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return outcome


def table(outcomes: list[Outcome]) -> str:
    """One row per figure: bench, figure, value, unit; a failed benchmark's rows are FAILED and its stderr's end."""
    rows: list[tuple[str, str, str, str]] = []
    for outcome in outcomes:
        if outcome.ok:
            assert outcome.figures is not None
            for name, value in flat(outcome.figures):
                if name != "bench":
                    rows.append((outcome.bench, name, shown(value), unit(name)))
            rows.append((outcome.bench, "bench_seconds", f"{outcome.seconds:,.1f}", "s"))
        else:
            failure = f"exit code {outcome.exit_code}" if outcome.exit_code else "no JSON figures last"
            rows.append((outcome.bench, "FAILED", failure, ""))
            rows.extend((outcome.bench, "stderr", line, "") for line in outcome.stderr_tail)
    header = ("bench", "figure", "value", "unit")
    widths = [max(len(row[column]) for row in [header, *rows] if row[1] != "stderr") for column in range(4)]
    lines = []
    for row in [header, *rows]:
        if row[1] == "stderr":  # a line of text, not a figure: not padded, so a long line does not widen the table
            lines.append(f"{row[0]:<{widths[0]}}  | {row[2]}")
            continue
        value = f"{row[2]:>{widths[2]}}" if NUMBER.match(row[2]) else f"{row[2]:<{widths[2]}}"
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {value}  {row[3]}".rstrip())
        if row is header:
            lines.append("  ".join("-" * width for width in widths))
    failed = [outcome.bench for outcome in outcomes if not outcome.ok]
    summary = f"{counted(len(outcomes), 'benchmark')}, {len(outcomes) - len(failed)} ok"
    if failed:
        summary += f", {len(failed)} failed: {', '.join(failed)}"
    return "\n".join([*lines, "", summary])


def results_write(path: Path, outcomes: list[Outcome], size: str) -> None:
    """Replace the entries of the benchmarks run in the results file, keeping the others'."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = None
    if not isinstance(results, dict) or not isinstance(results.get("benches"), dict):
        results = {"benches": {}}  # none yet, or not a results file: written anew
    results["benches"].update({outcome.bench: outcome.entry(size) for outcome in outcomes})
    results["benches"] = {name: results["benches"][name] for name in sorted(results["benches"], key=order)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def order(name: str) -> int:
    names = [bench.name for bench in BENCHES]
    return names.index(name) if name in names else len(names)


def names_parse(values: list[str] | None) -> list[str]:
    """The benchmarks asked for (each --bench, comma- or space-separated), in the run order; all by default."""
    asked = [name for value in values or [] for name in re.split(r"[\s,]+", value) if name]
    unknown = sorted(set(asked) - set(BY_NAME))
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}: choose among {', '.join(BY_NAME)}")
    return [bench.name for bench in BENCHES if not asked or bench.name in asked]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", action="append", metavar="NAME", help=f"Only these ({', '.join(BY_NAME)}).")
    parser.add_argument("--size", choices=SIZES, default="full", help="The README's sizes (full) or tiny ones.")
    parser.add_argument("--output", type=Path, help="The results file (bench/results.json, -tiny for tiny).")
    args = parser.parse_args(argv)
    names = names_parse(args.bench)
    output = args.output or ROOT / "bench" / ("results.json" if args.size == "full" else "results-tiny.json")

    env = dict(os.environ)
    if args.size == "tiny":
        env[DATABASE_VARIABLE] = (env.get(DATABASE_VARIABLE) or DEFAULT_DATABASE) + TINY_SUFFIX
    outcomes = []
    for name in names:
        outcomes.append(bench_run(BY_NAME[name], args.size, env))
        results_write(output, outcomes[-1:], args.size)  # after each: a run stopped midway keeps what it measured
    print(table(outcomes))
    print(f"Figures written to {output}")
    return 0 if all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
