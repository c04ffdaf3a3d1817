"""Every PostgreSQL advisory lock the product takes, named here once, so that no two uses can meet.

A lock is taken on two int4 keys, pg_advisory_*lock(<use>, <which>): the first is one of the numbers below
and says what the lock guards; the second says which one (a trade id, a kind of file; 0 when there is only
one). No two uses share a first key, so they never collide, whatever their second keys. The one-bigint form
(pg_advisory_lock(bigint)) is not used. Advisory locks are per database: tests on other databases never
meet these.

A new use takes the next number, with a comment saying what it guards and what its second key is.
"""

from __future__ import annotations

import zlib

# (LEAD_GENERATION, trade id), for a generation's transaction: two generations of one trade never interleave,
# so the per-ZIP daily limit holds (leads.services.generation).
LEAD_GENERATION = 7_301
# (JOB_RUN, job and trade: leadengine.services.jobs._lock_key), held by the worker's session while the run
# executes: one live execution per job and trade; a run "running" whose lock is free has lost its worker.
JOB_RUN = 7_302
# (ZIP_CODES_LOAD, 0), for the load's transaction: one load of the ZIP reference at a time
# (scoring.services.zip_codes).
ZIP_CODES_LOAD = 7_303
# (DATA_IMPORT, name_number(kind)), for the import's transaction: one import of a kind of file at a time, so
# that two files naming the same keys apply in a clear order (scoring.services.imports.run).
DATA_IMPORT = 7_304
# (IMPORTS_RESCORE, 0), for the storm fast path's transaction: one rescoring of pending imports at a time, so
# that two never write the same scores in opposite orders (leadengine.flows.imports_rescore).
IMPORTS_RESCORE = 7_305


def name_number(name: str, *, below: int = 2**31) -> int:
    """A number in [0, below) drawn from `name` (its CRC-32; by default any int4 of 0 or more, a second key):
    the same in every process and every release, unlike hash(), and unmoved by other names being added or
    reordered. Distinct names may share one; the callers' tests check that theirs do not."""
    return zlib.crc32(name.encode()) % below
