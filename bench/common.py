"""What every benchmark needs: its own database next to the project's, and medians of repeated runs."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "leadengine_bench"
SEED = 7  # of the demo market every benchmark uses


def use_bench_database() -> str:
    """Point DATABASE_URL at a separate database on the same server (created when missing), so a
    benchmark never touches the demo or development data. Returns the URL; call before django.setup()."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadengine.settings")
    os.environ.setdefault("DEBUG", "true")
    base = os.environ.get("DATABASE_URL")
    if not base:
        from leadengine.embedded import postgres_url

        base = postgres_url(Path(os.environ.get("LEADENGINE_DATA_DIR") or ROOT / ".data"))
    parts = urlsplit(base)
    url = urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))
    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
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
