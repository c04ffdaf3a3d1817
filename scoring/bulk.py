"""Bulk reads and writes of PostgreSQL shared by the services that move data in volume: COPY to and
from DataFrames, and upserts from a staging table that rewrite only the rows whose values changed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.db import connection


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A DataFrame as CSV for COPY ... (FORMAT csv): missing values are unquoted empty fields (NULL),
    empty strings are quoted (""). Arrow's writer is about twenty times faster than DataFrame.to_csv."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), sink, pa_csv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def copy_frame(cursor, query: str, params: Mapping | Sequence, types: Mapping[str, pa.DataType]) -> pd.DataFrame:
    """The rows of `query` as a DataFrame, read through COPY ... TO STDOUT and parsed by Arrow.

    `types` names every column of the query in order with its Arrow type; integers that may be NULL
    come back as floats, dates as Python dates."""
    # Django's debug cursor wrapper takes no parameters for COPY; psycopg's own cursor binds them.
    raw = getattr(cursor, "cursor", cursor)
    # Django wraps the errors of execute() and fetch*() in its own classes, not those of COPY: wrapped here,
    # a connection lost during a COPY is an OperationalError like any other, and db_retry sees it.
    with connection.wrap_database_errors, raw.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", params) as copy:
        data = b"".join(bytes(block) for block in copy)
    names = list(types)
    if not data:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    table = pa_csv.read_csv(
        pa.py_buffer(data),
        read_options=pa_csv.ReadOptions(column_names=names),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict(types),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    return table.to_pandas(date_as_object=True)


def copy_in(cursor, table: str, columns: str, data: bytes) -> None:
    """Bulk-load CSV `data` into the `columns` (comma-separated) of `table` through COPY; its errors are
    Django's, as in copy_frame."""
    with connection.wrap_database_errors, cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(data)


def copy_rows(cursor, table: str, frame: pd.DataFrame) -> None:
    """Bulk-load a DataFrame into `table` through COPY."""
    copy_in(cursor, table, ", ".join(frame.columns), csv_bytes(frame))


def upsert(
    cursor,
    table: str,
    columns: Mapping[str, str],
    source: str,
    key: Iterable[str],
    *,
    stamped: bool,
    update: Iterable[str] | None = None,
) -> tuple[int, int]:
    """Write the rows of `source` into `table` by natural key: update rows whose values differ, insert
    new ones, leave identical rows untouched. Returns (inserted, updated).

    `columns` maps each target column to its expression over `source` (a scalar subquery where a
    value is looked up, such as a property id by parcel); `update` limits which columns an existing
    row takes (by default all). `key` must be a unique constraint of `table`.

    INSERT ... ON CONFLICT finds each row's match through that unique index: no join for the planner
    to get wrong, whatever the table's statistics say (a table analysed while empty looks empty to
    the planner, and a join planned on that belief crawls as the table fills).
    """
    key = list(key)
    names = list(columns)
    update = set(names if update is None else update)
    changing = [name for name in names if name not in key and name in update]
    insert_columns = names + (["created_at", "updated_at"] if stamped else [])
    select = [f"{expression} AS {name}" for name, expression in columns.items()] + (
        ["now()", "now()"] if stamped else []
    )
    if changing:
        assignments = [f"{name} = EXCLUDED.{name}" for name in changing] + (["updated_at = now()"] if stamped else [])
        stored = ", ".join(f"t.{name}" for name in changing)
        incoming = ", ".join(f"EXCLUDED.{name}" for name in changing)
        on_conflict = f"DO UPDATE SET {', '.join(assignments)} WHERE ({stored}) IS DISTINCT FROM ({incoming})"
    else:
        on_conflict = "DO NOTHING"
    cursor.execute(
        f"""
        WITH written AS (
            INSERT INTO {table} AS t ({", ".join(insert_columns)})
            SELECT {", ".join(select)} FROM {source}
            ON CONFLICT ({", ".join(key)}) {on_conflict}
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
        """
    )
    inserted, updated = cursor.fetchone()
    return inserted, updated


@contextmanager
def probe_plan(cursor) -> Iterator[None]:
    """Plan the statements inside as index probes: a nested loop over the staged rows, one probe of the
    target's unique index each. A join of a staging table with a table of millions of rows is planned
    on statistics that may be stale (a table analysed while empty looks empty); with hash and merge
    joins off the plan is the same whatever they say."""
    names = ("enable_nestloop", "enable_hashjoin", "enable_mergejoin", "enable_seqscan")
    cursor.execute(f"SELECT {', '.join(f'current_setting({name!r})' for name in names)}")
    before = dict(zip(names, cursor.fetchone(), strict=True))
    # Sequential scans off as well: a table that statistics say is empty would be scanned for every
    # staged row instead of probed. The staged table itself has no index and is scanned all the same.
    for name, value in zip(names, ("on", "off", "off", "off"), strict=True):
        cursor.execute(f"SET LOCAL {name} = {value}")
    yield
    # Not on an error: the transaction is lost then, settings and all, and a statement sent on a lost
    # connection would hide the error that lost it.
    for name, value in before.items():
        cursor.execute(f"SET LOCAL {name} = {value}")


@dataclass(frozen=True)
class Merged:
    inserted: int
    updated: int
    older: int  # rows skipped because the stored row came from a newer as-of


def merge(
    cursor,
    table: str,
    source: str,
    *,
    key: Mapping[str, str],
    insert: Mapping[str, str],
    update: Mapping[str, str],
    stamped: bool,
    as_of: bool = False,
    older_possible: bool = True,
    stored: bool = True,
) -> Merged:
    """Write the rows of `source` (alias s) into `table` (alias t) by natural key.

    `key` maps each key column of the table to its expression over s; `insert` gives every column of
    a new row, `update` the columns an existing row takes, as expressions over s and t (the stored
    row: COALESCE(s.x, t.x) keeps the stored value where the file's cell was blank). A row whose
    values are all the same as stored is not rewritten.

    With `as_of`, s.source_as_of is the date the row is true as of: a row older than the stored
    row's source_as_of is skipped and counted (checked only when `older_possible`); a row as new
    or newer advances the stored source_as_of even when no value changed, so an older file imported
    later cannot bring old values back. With `stamped`, updated_at moves only when a value changed,
    and that is what the updated count counts. `stored=False` says no row of `source` can match a
    stored row (the table was empty when the import began): the rows are only inserted.
    """
    match = " AND ".join(f"t.{column} = {expression}" for column, expression in key.items())
    older = 0
    with probe_plan(cursor):
        if not stored:
            return Merged(
                inserted=insert_rows(cursor, table, source, key, insert, as_of, stamped, ""), updated=0, older=0
            )
        if as_of and older_possible:
            cursor.execute(f"DELETE FROM {source} s USING {table} t WHERE {match} AND s.source_as_of < t.source_as_of")
            older = cursor.rowcount
        new = ", ".join(update.values())
        old = ", ".join(f"t.{column}" for column in update)
        changed = f"ROW({new}) IS DISTINCT FROM ROW({old})" if update else "false"
        assignments = [f"{column} = {expression}" for column, expression in update.items()]
        where = [match]
        if as_of:
            assignments.append("source_as_of = GREATEST(t.source_as_of, s.source_as_of)")
            where.append(f"({changed} OR t.source_as_of IS NULL OR s.source_as_of > t.source_as_of)")
        else:
            where.append(changed)
        if stamped:
            # statement_timestamp(), not now(): a row changed by this statement, not by an earlier
            # statement of the same transaction, is what the count counts.
            assignments.append(f"updated_at = CASE WHEN {changed} THEN statement_timestamp() ELSE t.updated_at END")
        updated = 0
        if assignments:
            cursor.execute(
                f"""
                WITH written AS (
                    UPDATE {table} t SET {", ".join(assignments)} FROM {source} s WHERE {" AND ".join(where)}
                    RETURNING {"t.updated_at = statement_timestamp()" if stamped else "true"} AS changed
                )
                SELECT count(*) FILTER (WHERE changed) FROM written
                """
            )
            (updated,) = cursor.fetchone()
        missing = f"WHERE NOT EXISTS (SELECT FROM {table} t WHERE {match})"
        inserted = insert_rows(cursor, table, source, key, insert, as_of, stamped, missing)
    return Merged(inserted=inserted, updated=updated, older=older)


def insert_rows(cursor, table, source, key, insert, as_of: bool, stamped: bool, where: str) -> int:
    columns = list(insert) + (["source_as_of"] if as_of else []) + (["created_at", "updated_at"] if stamped else [])
    # The statement's time, as updates stamp theirs: what an import wrote is what it stamped since it began
    # writing (scoring.services.imports.run.rescoring_record), whatever the transaction did before.
    stamp = ["statement_timestamp()", "statement_timestamp()"] if stamped else []
    values = list(insert.values()) + (["s.source_as_of"] if as_of else []) + stamp
    cursor.execute(
        f"""
        INSERT INTO {table} ({", ".join(columns)}) SELECT {", ".join(values)} FROM {source} s {where}
        ON CONFLICT ({", ".join(key)}) DO NOTHING
        """
    )
    return cursor.rowcount


def id_range_plan(cursor) -> None:
    """Plan the rest of the transaction for reading or writing one partition's rows by id range.

    A run rewrites most scores of a trade, which leaves the score table's rows out of id order and its
    statistics behind: the planner then hashes the whole table (0.4 s per partition of a million-row
    table) where the index on (property_id, trade_id) reads the partition's range in 0.15 s. And no
    parallel workers: a run keeps both cores busy with its own reading, computing and writing."""
    cursor.execute("SET LOCAL enable_seqscan = off")
    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
