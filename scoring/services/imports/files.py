"""Reading an import file: its header, its rows in chunks, and the rejects file written beside it."""

from __future__ import annotations

import codecs
import csv
import os
import re
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from scoring.errors import ImportFileError
from scoring.services.imports.kinds import Importer

# Other spellings of canonical column names that exports commonly use (after normalise_header).
COLUMN_ALIASES = {
    "zip_code": "zip", "zipcode": "zip", "zip5": "zip", "postal_code": "zip",
    "lat": "latitude", "lon": "longitude", "lng": "longitude", "long": "longitude",
    "situs_address": "address", "site_address": "address", "property_address": "address",
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


def resolve_header(
    header: list[str],
    importer: Importer,
    column_map: Mapping[str, str],
    *,
    profile_map: Mapping[str, str] | None = None,
    provided: Collection[str] = (),
    inputs: Collection[str] = (),
) -> list[str]:
    """Canonical name for each column of the file (or "" for columns LeadEngine does not use).

    A profile's column map (`profile_map`) applies like --map, beneath it: --map wins where both name a
    column or a canonical name, and the profile's columns that the file lacks are simply not read.
    Canonical columns in `provided` come from the profile (constants, converter), not from the file.
    Columns in `inputs` (what a profile's converter reads besides) keep their own name.
    """
    canonical = {c.name for c in importer.columns()}
    for source, target in column_map.items():
        if target not in canonical:
            raise ImportFileError(
                f"--map {source}={target}: {target!r} is not a {importer.kind} column; "
                f"use one of {', '.join(sorted(canonical))}"
            )
        if source not in header and normalise_header(source) not in map(normalise_header, header):
            raise ImportFileError(f"--map {source}={target}: the file has no column {source!r}")
    overridden = {normalise_header(source) for source in column_map} | set(column_map.values())
    merged = {
        source: target
        for source, target in (profile_map or {}).items()
        if normalise_header(source) not in overridden and target not in overridden
    }
    merged.update(column_map)
    normalised_map = {normalise_header(k): v for k, v in merged.items()}
    normalised_inputs = {normalise_header(name): name for name in inputs}
    names = []
    for raw in header:
        if raw in inputs or normalise_header(raw) in normalised_inputs:
            names.append(raw if raw in inputs else normalised_inputs[normalise_header(raw)])
            continue
        name = merged.get(raw) or normalised_map.get(normalise_header(raw)) or normalise_header(raw)
        names.append(name if name in canonical and name not in provided else "")
    used = [n for n in names if n in canonical]
    doubled = sorted({n for n in used if used.count(n) > 1})
    if doubled:
        raise ImportFileError(f"several columns of the file map to {', '.join(doubled)}")
    used += provided
    missing = [
        " or ".join(group)
        for group in importer.required_header()
        if not any(all(part in used for part in option.split("+")) for option in group)
    ]
    if missing:
        raise ImportFileError(
            f"missing required column(s): {'; '.join(missing)} (the file has: {', '.join(header)}; "
            f"use --map SOURCE=CANONICAL to name them)"
        )
    return names


# Control characters refused in a value: C0 but tab, CR and LF (a quoted value may hold line breaks), and DEL.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same but LINE_END: those counted to know whether a chunk must be searched for them.
COUNTED_CONTROLS = re.compile("[\x00\x02-\x08\x0b\x0c\x0e-\x1f\x7f]")
# In the rejects file a control character shows as its visible symbol (U+2400 NUL is ␀).
CONTROL_PICTURES = {code: 0x2400 + code for code in range(32)} | {0x7F: 0x2421}
# A value longer than this is cut in the rejects file, which says how long it was.
REJECTED_VALUE_CHARS = 200


def control_named(character: str) -> str:
    return "a NUL byte" if character == "\x00" else f"a control character (U+{ord(character):04X})"


def rejected_values_shown(values: pd.Series) -> pd.Series:
    """Values as the rejects file shows them: cut after REJECTED_VALUE_CHARS characters, saying how long
    they were, so that a 20 MB field stays one short line; control characters as visible symbols, so
    that a NUL byte neither breaks the file nor hides."""
    text = values.where(values.notna(), "").astype(str).to_numpy(dtype=object, copy=True)
    lengths = np.fromiter(map(len, text), dtype=np.int64, count=len(text))
    for i in np.flatnonzero(lengths > REJECTED_VALUE_CHARS):
        text[i] = f"{text[i][:REJECTED_VALUE_CHARS]}… ({lengths[i]:,} characters)"
    for index, value in enumerate(text):
        if CONTROL_CHARACTERS.search(value):
            text[index] = value.translate(CONTROL_PICTURES)
    return pd.Series(text, index=values.index, dtype=object)


class RejectsFile:
    """The rejects CSV next to the input, written as rows are refused; removed when there are none.

    It is written under a name of its own (a random token) and moved into place whole when the import ends, so
    that two imports of the same file at once (into two databases, or one waiting on the other's lock) never
    write into one file: the rejects file is the whole file of whichever import finished last."""

    def __init__(self, source: Path) -> None:
        self.path = source.with_name(source.name + ".rejects.csv")
        self.partial = source.with_name(f"{source.name}.rejects.csv.{secrets.token_hex(6)}.partial")
        self.handle = open(self.partial, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed by finish/discard)
        self.handle.write("line,column,value,reason\n")
        self.rows = 0
        self.lock = threading.Lock()  # rows are refused by the reading thread and by the SQL checks

    def write(self, rejects: pd.DataFrame) -> None:
        if len(rejects):
            rejects = rejects.assign(value=rejected_values_shown(rejects["value"]))
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
    for number, cell in enumerate(header, start=1):
        # Column names end up in messages and on the run: a NUL byte there would fail to be recorded.
        control = CONTROL_CHARACTERS.search(cell)
        if control:
            raise ImportFileError(
                f"the header line contains {control_named(control.group())} (column {number}): "
                "the first line must name the columns"
            )
    return header


# The field added after the last field of every line as it is read (see MarkedLines); where it lands
# tells how many fields the line has. A control character: a line holding one of its own is refused.
LINE_END = "\x01"
# How many fields beyond the header's a line is read with, so that its count of fields can be told;
# a line with more is refused all the same, as having "more than" that many.
EXTRA_FIELDS_READ = 2
LINE_END_FIELD = ("," + LINE_END).encode()
HEADER_END = LINE_END_FIELD + b"," * EXTRA_FIELDS_READ
LINE_BREAK = re.compile(rb"\r\n|\r|\n")
# LINE_END as added inside a quoted value that runs over a line break (taken out again).
LINE_END_IN_VALUE = re.compile(",\x01(?=[\r\n])")
NOT_QUOTE_OR_BREAK = bytes(b for b in range(256) if b not in b'"\r\n')


class MarkedLines:
    """The bytes of the file as pandas reads them, in UTF-8, with one more field after the last field of
    every line: LINE_END, or after the header's, LINE_END and EXTRA_FIELDS_READ empty fields.

    pandas reads a missing field as an empty one and a line of more fields than the header as a broken
    file; the added field tells them apart: a line of 11 fields has LINE_END as its 12th. Reading
    the header's width plus EXTRA_FIELDS_READ columns (pandas' usecols) reads longer lines cut to
    that width instead of stopping. The bytes are scanned as they pass (a few milliseconds per 100 MB)
    for what the chunks must then look for: `controls`, how many control characters were seen; and
    `split_values`, set once a line holds an odd number of quotes: a quoted value may then run over a
    line break, with a LINE_END added inside it that must be taken out.
    """

    def __init__(self, handle: BinaryIO, *, encoding: str, header_breaks: int) -> None:
        self.handle = handle
        self.decoder = None
        if codecs.lookup(encoding).name != "utf-8":  # pandas' C parser reads UTF-8; other encodings are recoded
            self.decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        self.header_breaks_left = header_breaks + 1  # the header's own line break and those in its quoted names
        self.held = b""  # a CR ending a piece: with an LF starting the next it is one line break
        self.quote_left = b""  # the quote (or none) left over from the quotes of the unfinished line
        self.line_open = False  # the data so far ends inside a line, not after a line break
        self.ended = False
        self.breaks = 0  # line breaks after the header, and a last line without one
        self.controls = 0  # control characters seen, but LINE_END's
        self.line_ends_in_data = 0  # LINE_END characters of the file's own (a control character too)
        self.split_values = False

    def __iter__(self) -> Iterator[bytes]:  # pandas takes for a file only what iterates; it calls read()
        return iter(lambda: self.read(1 << 18), b"")

    def read(self, size: int = -1) -> bytes:
        while not self.ended:
            data = self.handle.read(size if size and size > 0 else -1)
            final = not data
            if self.decoder is not None:
                data = self.decoder.decode(data, final=final).encode("utf-8")
            data, self.held = self.held + data, b""
            if not final and data.endswith(b"\r"):
                data, self.held = data[:-1], b"\r"
            self.ended = final
            marked = self.mark(data, final=final)
            if marked:
                return marked
        return b""

    def mark(self, data: bytes, *, final: bool) -> bytes:
        header = b""
        if self.header_breaks_left:
            for found in LINE_BREAK.finditer(data):
                self.header_breaks_left -= 1
                if not self.header_breaks_left:
                    header = data[: found.start()] + HEADER_END + found.group()
                    data = data[found.end() :]
                    break
            else:
                return data + HEADER_END if final else data
        body = b""
        if data:
            line_feeds, returns, returns_fed = self.scan(data)
            if not returns:
                body = data.replace(b"\n", LINE_END_FIELD + b"\n")
            elif line_feeds == returns == returns_fed:  # CR LF throughout
                body = data.replace(b"\r\n", LINE_END_FIELD + b"\r\n")
            else:
                body = LINE_BREAK.sub(LINE_END_FIELD + rb"\g<0>", data)
            self.line_open = not data.endswith((b"\n", b"\r"))
        if final and self.line_open:  # a last line without a line break
            body += LINE_END_FIELD
            self.breaks += 1
            self.line_open = False
            self.split_values |= self.quote_left == b'"'
        return header + body

    def scan(self, data: bytes) -> tuple[int, int, int]:
        """Count the line breaks and control characters of `data`, and look for lines with an odd
        number of quotes; numpy and bytes methods, so that a clean file pays a few passes over memory.
        Returns the counts of LF, CR and CR LF."""
        array = np.frombuffer(data, dtype=np.uint8)
        below_space = int(np.count_nonzero(array < 32))
        line_feeds = int(np.count_nonzero(array == 10))
        returns = returns_fed = 0
        if below_space != line_feeds:
            returns = int(np.count_nonzero(array == 13))
            returns_fed = data.count(b"\r\n") if returns else 0
            if below_space != line_feeds + returns:
                tabs = int(np.count_nonzero(array == 9))
                ones = int(np.count_nonzero(array == 1))
                self.controls += below_space - line_feeds - returns - tabs - ones
                self.line_ends_in_data += ones
        if b"\x7f" in data:
            self.controls += data.count(b"\x7f")
        self.breaks += line_feeds + returns - returns_fed
        if not self.split_values and (self.quote_left or b'"' in data):
            # Quotes and line breaks only; quotes in pairs dropped: a quote left before a line break
            # ends a line with an odd number of them.
            quotes = (self.quote_left + data.translate(None, NOT_QUOTE_OR_BREAK)).replace(b'""', b"")
            last_break = max(quotes.rfind(b"\n"), quotes.rfind(b"\r"))
            self.split_values = quotes.find(b'"', 0, max(last_break, 0)) != -1
            self.quote_left = quotes[last_break + 1 :]
        return line_feeds, returns, returns_fed


class LineCheck:
    """Which lines of a chunk read through MarkedLines are rows: the others are refused by line, with a
    reason, or (blank) dropped.

    Each line must have as many fields as the header. Exports that end every line with a comma are
    read too: when the first line of data has one field more than the header and that field is empty,
    every line must end so.
    """

    def __init__(self, names: list[str], header: list[str]) -> None:
        self.names = names
        self.width = len(names)
        # Where a line is refused for a value of a column LeadEngine does not use, the file's own name.
        self.labels = [name if name else raw for name, raw in zip(names, header, strict=False)]
        self.trailing: bool | None = None  # decided by the first line with a value
        self.controls_found = 0
        self.records = 0  # lines read after the header, blank ones included
        self.values_split = 0  # LINE_END taken out of values that run over line breaks
        self.cut = False  # a line was read cut (more than EXTRA_FIELDS_READ fields too many)

    def refused(self, frame: pd.DataFrame, lines: MarkedLines) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows of `frame` that are rows (the header's columns) and the rejects of the others."""
        if not len(frame):
            return frame.iloc[:, : self.width], no_rejects()
        self.records = int(frame.index[-1]) + 1
        if lines.split_values:
            frame = self.values_joined(frame)
        if self.trailing is None:
            self.trailing = self.ends_with_empty_field(frame)
        fits = frame[self.width].to_numpy() == ("" if self.trailing else LINE_END)
        if self.trailing:
            fits &= frame[self.width + 1].to_numpy() == LINE_END
        rejects: list[tuple[int, str, str, str]] = []
        keep = fits.copy()
        if not fits.all():
            for i in np.flatnonzero(~fits).tolist():
                fields, more = line_fields(frame.iloc[i].tolist())
                self.cut |= more
                if more or any(fields):
                    rejects.append(
                        (int(frame.index[i]) + 2, "", line_shown(fields, more), self.count_reason(fields, more))
                    )
        if lines.line_ends_in_data or lines.controls > self.controls_found:
            keep &= ~self.controlled(frame, fits, rejects)
        rows = frame.iloc[keep, : self.width] if not keep.all() else frame.iloc[:, : self.width]
        found = pd.DataFrame(rejects, columns=["line", "column", "value", "reason"]) if rejects else no_rejects()
        return rows, found.sort_values(["line", "column"], kind="stable")

    def ends_with_empty_field(self, frame: pd.DataFrame) -> bool | None:
        """Whether the first line with a value has one field more than the header, empty; None when no
        line of `frame` has a value (the next chunk decides)."""
        for row in frame.itertuples(index=False, name=None):
            fields, more = line_fields(list(row))
            if more or any(fields):
                return len(fields) == self.width + 1 and fields[-1] == ""
        return None

    def count_reason(self, fields: list[str], more: bool) -> str:
        count = f"more than {self.width + EXTRA_FIELDS_READ}" if more else f"{len(fields):,}"
        reason = f"{count} field{'' if count == '1' else 's'}, the header has {self.width}"
        if self.trailing:
            reason += " and every line of this file ends with one more, empty field"
        return reason

    def controlled(self, frame: pd.DataFrame, fits: np.ndarray, rejects: list[tuple[int, str, str, str]]) -> np.ndarray:
        """Rows of `frame` holding a control character in a value, each refused under every column
        where it does; also counts the control characters of the chunk (lines refused anyway included)."""
        flagged = np.zeros(len(frame), dtype=bool)
        for label in frame.columns:
            position = int(label)  # the reader numbers the columns
            column = frame[position]
            text = "".join(column.to_numpy())
            if COUNTED_CONTROLS.search(text):
                self.controls_found += int(column.str.count(COUNTED_CONTROLS.pattern).sum())
            # The header's columns of a line that fits hold no LINE_END of the reader's: any there is the file's.
            if position >= self.width or not CONTROL_CHARACTERS.search(text):
                continue
            held = column[fits].str.contains(CONTROL_CHARACTERS)
            for label in held.index[held.to_numpy()]:
                value = column[label]
                control = CONTROL_CHARACTERS.search(value)
                assert control is not None  # the column's test found one in this value
                found = control.group()
                rejects.append((int(label) + 2, self.labels[position], value, f"contains {control_named(found)}"))
                flagged[frame.index.get_loc(label)] = True
        return flagged

    def values_joined(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the LINE_END that went inside values running over line breaks taken out."""
        frame = frame.copy()
        for position in frame.columns:
            text = "".join(frame[position].to_numpy())
            if "," + LINE_END + "\n" not in text and "," + LINE_END + "\r" not in text:
                continue
            column = frame[position]
            inside = column.str.contains(LINE_END_IN_VALUE)
            self.values_split += int(column[inside].str.count(LINE_END_IN_VALUE.pattern).sum())
            frame.loc[inside, position] = column[inside].str.replace(LINE_END_IN_VALUE, "", regex=True)
        return frame


def line_fields(row: list[str]) -> tuple[list[str], bool]:
    """The fields of a line read through MarkedLines, and whether it has more than were read."""
    for end in range(len(row) - 1, -1, -1):
        if row[end] == LINE_END:
            return row[:end], False
    return row, True


def line_shown(fields: list[str], more: bool) -> str:
    return ",".join(fields) + (",…" if more else "")


def no_rejects() -> pd.DataFrame:
    return pd.DataFrame(columns=["line", "column", "value", "reason"])


def read_chunks(
    path: Path,
    names: list[str],
    encoding: str,
    chunk_rows: int,
    only: Iterable[str] | None = None,
    refuse: Callable[[pd.DataFrame], None] | None = None,
) -> Iterator[tuple[pd.DataFrame, int]]:
    """The file's rows in chunks of text with canonical column names (`only` some of them), blank
    lines dropped, each with the position in the file reached.

    Lines that cannot be read as a row are left out of the chunk and handed to `refuse` as rejects
    (columns line, column, value, reason): a line with a number of fields other than the header's
    (LineCheck), a line with a control character in a value. Reading `only` some columns (the look
    ahead at the keys) checks neither: it reads what it can of every line.

    Row labels count records from 0 with blank lines included, so a row's line is its label + 2.
    """
    if only is not None:
        yield from columns_read(path, names, encoding, chunk_rows, only)
        return
    header = read_header(path, encoding)
    wanted = [n for n in names if n]
    positions = [i for i, n in enumerate(names) if n]
    check = LineCheck(names, header)
    read = list(range(len(names) + 1 + EXTRA_FIELDS_READ))
    header_breaks = sum(len(LINE_BREAK.findall(cell.encode())) for cell in header)  # in quoted names
    with open(path, "rb") as handle:
        lines = MarkedLines(handle, encoding=encoding, header_breaks=header_breaks)
        try:
            reader = pd.read_csv(  # type: ignore[call-overload]  # read as a file: iterated, read()
                lines,
                dtype=object,
                header=0,
                names=read,
                usecols=read,
                index_col=False,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=False,
                chunksize=chunk_rows,
                encoding="utf-8",
                encoding_errors="strict",
            )
            for frame in reader:
                rows, rejects = check.refused(frame, lines)
                if len(rejects) and refuse is not None:
                    refuse(rejects)
                raw = rows.iloc[:, positions]
                raw.columns = wanted
                yield without_blank_rows(raw), handle.tell()
        except UnicodeDecodeError as error:
            raise ImportFileError(f"the file is not {encoding} text ({error.reason}); try --encoding latin-1") from None
        except pd.errors.ParserError as error:
            # pandas ends some of its messages with a newline
            raise ImportFileError(f"not a well-formed CSV file: {str(error).strip()}") from None
    if lines.breaks != check.records + check.values_split and not check.cut:
        # A line break inside a quoted value that no odd count of quotes gave away (a stray quote on each
        # line it ends): the values read past it may hold a LINE_END. Rare enough to refuse the file.
        # (Unless a line was read cut: its breaks cannot be counted, and the check is left out.)
        raise ImportFileError(
            "not a well-formed CSV file: a quoted value runs over several lines whose quotes do not pair up "
            '(a quote inside an unquoted value?); quote such values and double the quotes inside them ("")'
        )


def columns_read(
    path: Path, names: list[str], encoding: str, chunk_rows: int, only: Iterable[str]
) -> Iterator[tuple[pd.DataFrame, int]]:
    """read_chunks of `only` some columns, as pandas reads them: only those columns are parsed."""
    wanted = [n for n in names if n and n in only]
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
                usecols=positions,
            )
            for raw in reader:
                raw.columns = [names[i] for i in positions]
                yield without_blank_rows(raw.loc[:, wanted].fillna("")), handle.tell()
        except UnicodeDecodeError as error:
            raise ImportFileError(f"the file is not {encoding} text ({error.reason}); try --encoding latin-1") from None
        except pd.errors.ParserError as error:
            raise ImportFileError(f"not a well-formed CSV file: {str(error).strip()}") from None


def without_blank_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """`raw` without the rows empty in every column read."""
    if not raw.shape[1]:
        return raw
    maybe_blank = raw.iloc[:, 0] == ""
    if maybe_blank.any():
        blank = (raw[maybe_blank] == "").all(axis=1).reindex(raw.index, fill_value=False)
        raw = raw[~blank]
    return raw
