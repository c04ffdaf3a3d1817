"""Reading an import file: its header, its rows in chunks, and the rejects file written beside it."""

from __future__ import annotations

import csv
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pandas as pd

from scoring.services.imports.kinds import Importer


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, wrong encoding, missing columns): nothing is written."""


# Other spellings of canonical column names that exports commonly use (after normalise_header).
COLUMN_ALIASES = {
    "zip_code": "zip", "zipcode": "zip", "zip5": "zip", "postal_code": "zip",
    "lat": "latitude", "lon": "longitude", "lng": "longitude", "long": "longitude",
    "apn": "parcel_id", "parcel": "parcel_id", "parcel_number": "parcel_id",
    "permit_no": "permit_number", "permit_id": "permit_number",
}  # fmt: skip


def normalise_header(name: str) -> str:
    """`Parcel ID` and `parcel-id` are parcel_id; `Zip Code` is zip (COLUMN_ALIASES)."""
    name = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return COLUMN_ALIASES.get(name, name)


def parse_column_map(pairs: Iterable[str]) -> dict[str, str]:
    """`--map SOURCE=CANONICAL` values into {source: canonical}."""
    mapping = {}
    for pair in pairs:
        source, sep, canonical = pair.partition("=")
        if not sep or not source.strip() or not canonical.strip():
            raise ImportFileError(f"--map {pair!r}: expected SOURCE=CANONICAL, e.g. --map 'Parcel Number=parcel_id'")
        mapping[source.strip()] = canonical.strip()
    return mapping


def resolve_header(header: list[str], importer: Importer, column_map: Mapping[str, str]) -> list[str]:
    """Canonical name for each column of the file (or "" for columns LeadEngine does not use)."""
    canonical = {c.name for c in importer.columns()}
    for source, target in column_map.items():
        if target not in canonical:
            raise ImportFileError(
                f"--map {source}={target}: {target!r} is not a {importer.kind} column; "
                f"use one of {', '.join(sorted(canonical))}"
            )
        if source not in header and normalise_header(source) not in map(normalise_header, header):
            raise ImportFileError(f"--map {source}={target}: the file has no column {source!r}")
    normalised_map = {normalise_header(k): v for k, v in column_map.items()}
    names = []
    for raw in header:
        name = column_map.get(raw) or normalised_map.get(normalise_header(raw)) or normalise_header(raw)
        names.append(name if name in canonical else "")
    used = [n for n in names if n]
    doubled = sorted({n for n in used if used.count(n) > 1})
    if doubled:
        raise ImportFileError(f"several columns of the file map to {', '.join(doubled)}")
    missing = []
    for group in importer.required_header():
        if not any(all(part in used for part in option.split("+")) for option in group):
            missing.append(" or ".join(group))
    if missing:
        raise ImportFileError(
            f"missing required column(s): {'; '.join(missing)} (the file has: {', '.join(header)}; "
            f"use --map SOURCE=CANONICAL to name them)"
        )
    return names


class RejectsFile:
    """The rejects CSV next to the input, written as rows are refused; removed when there are none."""

    def __init__(self, source: Path) -> None:
        self.path = source.with_name(source.name + ".rejects.csv")
        self.partial = source.with_name(source.name + ".rejects.csv.partial")
        self.handle = open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed by finish/discard)
        self.handle.write("line,column,value,reason\n")
        self.rows = 0
        self.lock = threading.Lock()  # rows are refused by the reading thread and by the SQL checks

    def write(self, rejects: pd.DataFrame) -> None:
        if len(rejects):
            with self.lock:
                rejects.to_csv(self.handle, header=False, index=False, lineterminator="\n")
                self.rows += rejects["line"].nunique()

    def write_found(self, found: list[tuple[int, str, str, str]]) -> None:
        """Refusals found in SQL, as (line, column, value, reason)."""
        self.write(pd.DataFrame(found, columns=["line", "column", "value", "reason"]))

    def finish(self) -> str:
        """Put the refusals in line order (they are found per chunk and, for repeated keys, at the
        end) and move the file into place; returns its path, or "" when no row was refused."""
        self.handle.close()
        if self.rows:
            found = pd.read_csv(self.partial, dtype=str, keep_default_na=False)
            found = found.iloc[found["line"].astype(int).argsort(kind="stable")]
            found.to_csv(self.partial, index=False, lineterminator="\n")
            os.replace(self.partial, self.path)
            return str(self.path)
        self.partial.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)  # a stale file from an earlier import would mislead
        return ""

    def discard(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


def read_header(path: Path, encoding: str) -> list[str]:
    try:
        with open(path, newline="", encoding=encoding) as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise ImportFileError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path} is a directory, not a CSV file") from None
    except PermissionError:
        raise ImportFileError(f"cannot read {path}: permission denied") from None
    except UnicodeDecodeError as error:
        raise ImportFileError(f"the file is not {encoding} text ({error.reason}); try --encoding latin-1") from None
    except csv.Error as error:
        raise ImportFileError(f"not a readable CSV file: {error}") from None
    if not header or not any(cell.strip() for cell in header):
        raise ImportFileError("the file is empty: expected a header row with column names")
    return header


def read_chunks(
    path: Path, names: list[str], encoding: str, chunk_rows: int, only: Iterable[str] | None = None
) -> Iterator[tuple[pd.DataFrame, int]]:
    """The file's rows in chunks of text with canonical column names (`only` some of them), blank
    lines dropped, each with the position in the file reached.

    Row labels count records from 0 with blank lines included, so a row's line is its label + 2.
    """
    wanted = [n for n in names if n and (only is None or n in only)]
    positions = [i for i, n in enumerate(names) if n in wanted]
    with open(path, "rb") as handle:
        try:
            reader = pd.read_csv(
                handle,
                dtype=object,
                header=0,
                names=None,
                index_col=False,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=False,
                chunksize=chunk_rows,
                encoding=encoding,
                encoding_errors="strict",
                # Reading a few columns skips checking the others; every read of all columns checks the
                # shape of every line (a line with an extra field makes the file unusable).
                usecols=positions if only is not None else None,
            )
            for raw in reader:
                raw.columns = [names[i] for i in positions] if only is not None else names
                raw = raw.loc[:, wanted].fillna("")
                maybe_blank = raw.iloc[:, 0] == ""
                if maybe_blank.any():
                    blank = (raw[maybe_blank] == "").all(axis=1).reindex(raw.index, fill_value=False)
                    raw = raw[~blank]
                yield raw, handle.tell()
        except UnicodeDecodeError as error:
            raise ImportFileError(f"the file is not {encoding} text ({error.reason}); try --encoding latin-1") from None
        except pd.errors.ParserError as error:
            # pandas ends some of its messages with a newline
            raise ImportFileError(f"not a well-formed CSV file: {str(error).strip()}") from None
