"""The planner's statistics of the tables the nightly run rewrites, kept fresh by the run itself.

A scoring run rewrites a trade's scores and generation adds a day's leads; the statements that follow
(generation's candidates, routing) are planned from the tables' statistics. PostgreSQL's autovacuum
refreshes them after enough changes, but it may be off, behind, or not yet woken up: planned with a lead
table it believed held 19 rows (it held 7,918) and 943 scores (81,668), lead generation's statement on
a 200,000-home market took 58 s, a nested loop comparing every score with every lead; with fresh
statistics the whole generation, its exploration draw included, takes about 3 s.
So the run analyzes what changed by more than autovacuum's own default rule would let pass.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model

# Autovacuum's defaults are 50 rows + 10% of the table; a few hundred rows more spare the small tables of
# tests and new markets an ANALYZE a day for nothing.
STALE_ROWS = 500
STALE_SHARE = 0.1


def analyze_if_stale(*models: type[Model]) -> list[str]:
    """ANALYZE each model's table whose rows changed since its last analysis (by anyone: autovacuum's count)
    by more than STALE_ROWS + STALE_SHARE of its rows; returns the tables analyzed. Call it outside a
    long transaction: ANALYZE holds its table's lock (which another ANALYZE waits for) until commit."""
    tables = [model._meta.db_table for model in models]
    analyzed = []
    with connection.cursor() as cursor:
        # This connection's own recent writes count too: flushed to the statistics now, not within a second.
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            """SELECT relname, n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables
               WHERE relid = ANY(%s::regclass[])""",
            [tables],
        )
        stale = {name for name, changed, rows in cursor.fetchall() if changed > STALE_ROWS + STALE_SHARE * rows}
        for table in tables:
            if table in stale:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
                analyzed.append(table)
    return analyzed
