"""The registry of PostgreSQL advisory locks (core/locks.py): every use named once, no two sharing a first key,
and every lock the code takes drawn from it."""

import re
from pathlib import Path

from core import locks
from scoring.services.imports import IMPORTERS

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["contractors", "core", "demo", "leadengine", "leads", "scoring", "territories"]
ADVISORY_CALL = re.compile(r"SELECT pg_(?:try_)?advisory_\w+\(")  # in the SQL the code runs


def registered() -> dict[str, int]:
    return {name: value for name, value in vars(locks).items() if name.isupper() and isinstance(value, int)}


def test_every_use_has_a_first_key_of_its_own():
    assert registered() == {
        "LEAD_GENERATION": 7_301, "JOB_RUN": 7_302, "ZIP_CODES_LOAD": 7_303, "DATA_IMPORT": 7_304,
        "IMPORTS_RESCORE": 7_305,
    }  # fmt: skip
    assert len(set(registered().values())) == len(registered())


def test_every_advisory_lock_the_code_takes_names_its_use_from_the_registry():
    calls = [
        (path.relative_to(ROOT).as_posix(), line.strip())
        for source in SOURCES
        for path in (ROOT / source).rglob("*.py")
        for line in path.read_text().splitlines()
        if ADVISORY_CALL.search(line)
    ]

    assert sorted(path for path, _ in calls) == [
        "leadengine/flows.py", "leadengine/services/jobs.py", "leadengine/services/jobs.py",
        "leads/services/generation.py",
        "scoring/services/imports/run.py", "scoring/services/zip_codes.py",
    ]  # fmt: skip
    assert [line for _, line in calls if "[locks." not in line] == []


def test_each_kind_of_import_file_has_a_lock_of_its_own_that_never_moves():
    keys = {kind: locks.name_number(kind) for kind in IMPORTERS}

    assert keys == {"properties": 130_232_775, "storms": 491_386_564, "permits": 641_360_150, "sales": 1_803_644_996}
    assert len(set(keys.values())) == len(keys)


def test_a_name_number_is_its_crc32_below_the_bound():
    assert locks.name_number("scoring") == 2_071_372_490
    assert locks.name_number("scoring", below=2_147) == 565
