"""What every benchmark needs: its own database next to the project's, and medians of repeated runs."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DATABASE_VARIABLE = "LEADENGINE_BENCH_DATABASE"
DEFAULT_DATABASE = "leadengine_bench"
# PostgreSQL keeps 63 bytes of a name; room is left for the suffix of a benchmark's own database ("_admin").
MAX_DATABASE_NAME = 63 - len("_admin")
SEED = 7  # of the demo market every benchmark uses


def bench_database(suffix: str = "") -> str:
    """The bench database's name: LEADENGINE_BENCH_DATABASE, leadengine_bench by default, and with `suffix` the
    database of a benchmark that needs one of its own (leadengine_bench_dash)."""
    name = os.environ.get(DATABASE_VARIABLE) or DEFAULT_DATABASE
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or len(name) > MAX_DATABASE_NAME:
        raise SystemExit(
            f"{DATABASE_VARIABLE}={name!r} is not a bench database name: lower-case letters, digits and "
            f"underscores, not starting with a digit, at most {MAX_DATABASE_NAME} characters"
        )
    return f"{name}_{suffix}" if suffix else name


def server_url() -> str:
    """The configured PostgreSQL server's URL: DATABASE_URL, or the embedded server's when it is unset."""
    sys.path.insert(0, str(ROOT))
    base = os.environ.get("DATABASE_URL")
    if not base:
        from leadengine.embedded import postgres_url

        base = postgres_url(Path(os.environ.get("LEADENGINE_DATA_DIR") or ROOT / ".data"))
    return base


def database_url(url: str, name: str) -> str:
    """`url` with its database replaced by `name`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def use_bench_database(name: str | None = None) -> str:
    """Point DATABASE_URL at a separate database on the same server (`name`, by default bench_database();
    created when missing), so a benchmark never touches the demo or development data. Returns the URL; call
    before django.setup()."""
    name = name or bench_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadengine.settings")
    os.environ.setdefault("DEBUG", "true")
    base = server_url()
    import psycopg

    with psycopg.connect(database_url(base, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(base, name)
    os.environ["DATABASE_URL"] = url
    return url


def prepare_schema() -> None:
    """Migrate the bench database and load the ZIP reference (both idempotent)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from scoring.services.zip_codes import zip_codes_load

    zip_codes_load()


def median(values: list[float]) -> float:
    """The median; of counts (integers), the lower middle one, so that a count stays a whole number of runs."""
    if values and all(isinstance(value, int) for value in values):
        return statistics.median_low(values)
    return statistics.median(values)


def market_ensure(properties: int) -> None:
    """The demo market of `properties` homes in the bench database, seeded in a child process when the
    database holds another number."""
    from django.db import connection

    from scoring.models import Property

    if Property.objects.count() == properties:
        return
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE scoring_property, scoring_stormevent CASCADE")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "seed_demo", "--properties", str(properties), "--seed", str(SEED)],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    print(f"seeded {properties:,} properties in {time.monotonic() - started:.0f} s", file=sys.stderr)
