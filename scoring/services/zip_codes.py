"""The US ZIP code reference table, loaded from the `zipcodes` package (no hand-typed data)."""

from __future__ import annotations

import pandas as pd
from django.db import connection, transaction

from core import locks
from core.progress import Progress, no_progress
from scoring.bulk import copy_rows, upsert
from scoring.models import ZipCode

KINDS = {
    "STANDARD": ZipCode.Kind.STANDARD,
    "PO BOX": ZipCode.Kind.PO_BOX,
    "UNIQUE": ZipCode.Kind.UNIQUE,
    "MILITARY": ZipCode.Kind.MILITARY,
}


def reference_frame() -> pd.DataFrame:
    """The package's ZIP list as the table's columns."""
    import zipcodes

    frame = pd.DataFrame(zipcodes.list_all())
    return pd.DataFrame(
        {
            "code": frame["zip_code"],
            "kind": frame["zip_code_type"].map(KINDS),
            "city": frame["city"].str.slice(0, 64),
            "state": frame["state"],
            "county": frame["county"].fillna("").str.slice(0, 64),
            "time_zone": frame["timezone"].fillna(""),
            "latitude": pd.to_numeric(frame["lat"]),
            "longitude": pd.to_numeric(frame["long"]),
            "active": frame["active"].astype(bool),
        }
    )


@transaction.atomic
def zip_codes_load(*, progress: Progress = no_progress) -> dict[str, int]:
    """Insert new ZIPs and update changed ones; running it again changes nothing. `progress` hears each stage."""
    progress("reading the zipcodes package")
    frame = reference_frame()
    progress(f"writing {len(frame):,} ZIP codes")
    columns = list(frame.columns)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS zip_stage")
        cursor.execute(
            f"CREATE TEMPORARY TABLE zip_stage ON COMMIT DROP AS SELECT {', '.join(columns)} "
            f"FROM {ZipCode._meta.db_table} LIMIT 0"
        )
        copy_rows(cursor, "zip_stage", frame)
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [locks.ZIP_CODES_LOAD])
        inserted, updated = upsert(
            cursor, ZipCode._meta.db_table, {c: c for c in columns}, "zip_stage", ["code"], stamped=False
        )
        cursor.execute("DROP TABLE zip_stage")
    return {"total": len(frame), "inserted": inserted, "updated": updated}
