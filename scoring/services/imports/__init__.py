"""CSV imports of properties, storm events, permits and sales (`manage.py import_data`).

The path of every file, real or synthetic:

1. Read the header; map the file's column names to the canonical ones (see README, "Importing data").
2. Stream the rows in chunks of IMPORT_CHUNK_ROWS with pandas, all as text; memory stays bounded by
   the chunk, whatever the file's size.
3. Parse and check each chunk with vectorised rules (fields.py); refused rows go to the rejects file
   with line, column, value and reason; good rows go through COPY into a temporary staging table.
4. In SQL, refuse keys that appear on several lines of the file and rows naming unknown parcels.
5. Upsert the staging table into the real table keyed by the natural key, touching only rows whose
   values changed, so importing a file twice leaves the database exactly as after the first time.

Everything from step 2 on is one transaction, which also writes the run's outcome: a file that turns
out to be unusable half-way (bad encoding, broken CSV) rolls back and nothing is written. A lost
database connection loses the transaction; the whole import is tried again from the file for
DB_RETRY_SECONDS, then recorded as failed (exit code 4). A run left "running" by a process that died
is closed as failed by import_runs_abandoned_close (the next import, the recovery sweep).

Where each part lives: files.py (header, chunks, rejects file), fields.py (column parsers), kinds.py
(the four kinds of file and their rules), run.py (the run itself); scoring/bulk.py (COPY and upsert).
"""

from scoring.services.imports.files import parse_column_map
from scoring.services.imports.kinds import IMPORTERS
from scoring.services.imports.run import (
    EXIT_CODES,
    EXIT_DATABASE_UNREACHABLE,
    ImportResult,
    data_file_import,
    import_runs_abandoned_close,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_DATABASE_UNREACHABLE",
    "IMPORTERS",
    "ImportResult",
    "data_file_import",
    "import_runs_abandoned_close",
    "parse_column_map",
]
