"""Reading an import file line by line: a line whose fields do not match the header, or that holds a
control character, is refused by line with the reason, never shifted, padded or fatal; long values are
cut in the rejects file (scoring.services.imports.files)."""

from pathlib import Path

import pytest

from scoring.models import ImportRun, Property
from scoring.services.imports import data_file_import
from tests.scoring.test_imports import (
    REJECTS_HEADER,
    TODAY,
    PropertyFactory,
    all_rows,
    command,
    counts,
    read_rejects,
    reference,
    rejects_path,
    run_import,
    trades,
    write,
)

__all__ = ["reference", "trades"]  # fixtures, used by name

HEADER = "parcel_id,address,zip,market_value,bedrooms"


def stored() -> list[tuple]:
    return list(Property.objects.order_by("parcel_id").values_list("parcel_id", "address", "market_value", "bedrooms"))


def write_bytes(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "properties.csv"
    path.write_bytes(content)
    return path


# --- Lines with more or fewer fields than the header ------------------------------------------------------------


def test_a_line_with_an_unquoted_thousands_separator_is_refused_never_shifted(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", HEADER,
        "A,1 Pearl St,80304,950000,3",
        "B,2 Pearl St,80304,1,050,000,4",
        'C,3 Pearl St,80304,"1,050,000",5',
    )  # fmt: skip

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["3", "", "B,2 Pearl St,80304,1,050,000,4", "7 fields, the header has 5"],
    ]
    assert counts(run) == {"status": "partial", "read": 3, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert stored() == [("A", "1 Pearl St", 950000, 3), ("C", "3 Pearl St", 1050000, 5)]


def test_a_line_with_too_few_fields_is_refused_never_padded(reference, tmp_path):
    path = write(tmp_path, "properties.csv", HEADER, "A,1 Pearl St,80304,950000,3", "B,2 Pearl St,80304", "C,,80304,,")

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["3", "", "B,2 Pearl St,80304", "3 fields, the header has 5"],
        ["4", "address", "", "required"],
    ]
    assert counts(run) == {"status": "partial", "read": 3, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 2}
    assert stored() == [("A", "1 Pearl St", 950000, 3)]


def test_a_line_with_many_extra_fields_is_refused_alone_and_the_file_still_loads(reference, tmp_path):
    many = ",".join(["x"] * 40)
    path = write(tmp_path, "properties.csv", HEADER, f"A,1 Pearl St,80304,950000,3,{many}", "B,2 Pearl St,80304,,")

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2", "", "A,1 Pearl St,80304,950000,3,x,x,x,…", "more than 7 fields, the header has 5"],
    ]
    assert counts(run) == {"status": "partial", "read": 2, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 1}
    assert stored() == [("B", "2 Pearl St", None, None)]


def test_line_numbers_of_refused_lines_count_blank_lines_and_stay_those_of_other_rejects(reference, tmp_path):
    # Line 4 is blank; line 5 holds a quoted line break (one record, numbered 5 as the rest of the import does).
    path = write(
        tmp_path, "properties.csv", HEADER,
        "A,1 Pearl St,80304,950000,3",
        "B,2 Pearl St",
        "",
        'C,"3 Pearl St\nUnit 2",80304,,',
        "D,4 Pearl St,99999,,",
        "E,5 Pearl St,80304,1,2,3",
    )  # fmt: skip

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["3", "", "B,2 Pearl St", "2 fields, the header has 5"],
        ["6", "zip", "99999", "ZIP code 99999 is not in the US ZIP reference"],
        ["7", "", "E,5 Pearl St,80304,1,2,3", "6 fields, the header has 5"],
    ]
    assert counts(run) == {"status": "partial", "read": 5, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 3}
    assert stored() == [("A", "1 Pearl St", 950000, 3), ("C", "3 Pearl St\nUnit 2", None, None)]


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_refused_lines_are_the_same_whatever_the_chunking_and_line_breaks(reference, tmp_path, line_break):
    lines = [HEADER]
    for i in range(60):
        if i % 7 == 3:
            lines.append(f"P{i:03d},{i} Pearl St,80304,1,{i}00,000,2")
        elif i % 11 == 5:
            lines.append(f"P{i:03d},{i} Pearl St")
        elif i % 13 == 4:
            lines.append(f'P{i:03d},"{i} Pearl St{line_break}Unit 1",80304,{i},2')
        else:
            lines.append(f"P{i:03d},{i} Pearl St,80304,{i},2")
    path = tmp_path / "properties.csv"
    path.write_bytes(line_break.join(lines).encode() + line_break.encode())
    outcomes = []

    for chunk_rows in (1, 4, 1000):
        Property.objects.all().delete()
        run = run_import("properties", path, chunk_rows=chunk_rows)
        outcomes.append((counts(run), read_rejects(path), stored()))

    assert outcomes[0] == outcomes[1] == outcomes[2]
    run_counts, rejects, rows = outcomes[0]
    assert rejects[1:] == [
        [str(i + 2), "", f"P{i:03d},{i} Pearl St,80304,1,{i}00,000,2", "7 fields, the header has 5"]
        if i % 7 == 3
        else [str(i + 2), "", f"P{i:03d},{i} Pearl St", "2 fields, the header has 5"]
        for i in range(60)
        if i % 7 == 3 or i % 11 == 5
    ]
    assert run_counts == {"status": "partial", "read": 60, "inserted": 47, "updated": 0, "unchanged": 0, "rejected": 13}
    assert [row for row in rows if row[0] in ("P004", "P030")] == [
        ("P004", f"4 Pearl St{line_break}Unit 1", 4, 2),
        ("P030", f"30 Pearl St{line_break}Unit 1", 30, 2),
    ]
    assert len(rows) == 47


def test_lines_ending_with_a_comma_must_all_end_so(reference, tmp_path):
    path = write(
        tmp_path, "properties.csv", HEADER,
        "A,1 Pearl St,80304,950000,3,",
        "B,2 Pearl St,80304,950000,3",
        "C,3 Pearl St,80304,1,050,000,",
        "D,4 Pearl St,80304,,,",
    )  # fmt: skip

    run = run_import("properties", path)

    suffix = " and every line of this file ends with one more, empty field"
    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["3", "", "B,2 Pearl St,80304,950000,3", f"5 fields, the header has 5{suffix}"],
        ["4", "", "C,3 Pearl St,80304,1,050,000,", f"7 fields, the header has 5{suffix}"],
    ]
    assert counts(run) == {"status": "partial", "read": 4, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 2}
    assert stored() == [("A", "1 Pearl St", 950000, 3), ("D", "4 Pearl St", None, None)]


def test_a_file_not_in_utf8_is_read_line_by_line_too(reference, tmp_path):
    path = write_bytes(tmp_path, f"{HEADER}\nA,1 Café Rd,80304,950000,3\nB,2 Café Rd\n".encode("latin-1"))

    run = run_import("properties", path, encoding="latin-1")

    assert read_rejects(path) == [REJECTS_HEADER, ["3", "", "B,2 Café Rd", "2 fields, the header has 5"]]
    assert run.status == "partial"
    assert stored() == [("A", "1 Café Rd", 950000, 3)]


# --- NUL bytes and other control characters ---------------------------------------------------------------------


def test_a_nul_byte_in_a_value_refuses_its_line_and_the_rest_loads(reference, tmp_path):
    path = write_bytes(tmp_path, f"{HEADER}\nA,1 Pe\x00arl St,80304,950000,3\nB,2 Pearl St,80304,,\n".encode())

    run = run_import("properties", path)

    assert read_rejects(path) == [REJECTS_HEADER, ["2", "address", "1 Pe\u2400arl St", "contains a NUL byte"]]
    assert counts(run) == {"status": "partial", "read": 2, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 1}
    assert stored() == [("B", "2 Pearl St", None, None)]


def test_control_characters_are_refused_under_each_column_that_holds_one(reference, tmp_path):
    # A bell in a used column, a backspace in one LeadEngine does not use; a tab is an ordinary character.
    path = write_bytes(
        tmp_path,
        b"parcel_id,address,zip,Notes\n"
        b"A,1 Pearl\x07 St,80304,x\x08y\n"
        b"B,2 Pearl\tSt,80304,ok\n"
        b"C,3 Pearl St,80304\x7f,\n",
    )

    run = run_import("properties", path)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2", "Notes", "x\u2408y", "contains a control character (U+0008)"],
        ["2", "address", "1 Pearl\u2407 St", "contains a control character (U+0007)"],
        ["4", "zip", "80304\u2421", "contains a control character (U+007F)"],
    ]
    assert counts(run) == {"status": "partial", "read": 3, "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 2}
    assert list(Property.objects.values_list("parcel_id", "address")) == [("B", "2 Pearl\tSt")]


def test_a_control_character_far_into_the_file_is_found_in_its_chunk(reference, tmp_path):
    lines = [HEADER.encode()] + [b"P%05d,%d Pearl St,80304,,2" % (i, i) for i in range(3000)]
    lines[2500] = b"P02499,2499 Pearl\x1b St,80304,,2"
    path = write_bytes(tmp_path, b"\n".join(lines) + b"\n")

    run = run_import("properties", path, chunk_rows=100)

    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2501", "address", "2499 Pearl\u241b St", "contains a control character (U+001B)"],
    ]
    assert counts(run)["inserted"] == 2999


def test_command_exits_3_for_a_nul_byte_in_a_value(reference, tmp_path):
    path = write_bytes(tmp_path, f"{HEADER}\nA,1 Pearl St,803\x0004,,\nB,2 Pearl St,80304,,\n".encode())

    code, stdout, stderr = command("properties", str(path))

    assert code == 3
    assert stdout == ""
    assert stderr.startswith(
        f"properties: 2 rows read, 1 inserted, 0 updated, 0 unchanged, 1 rejected (see {rejects_path(path)}) in "
    )
    assert read_rejects(path)[1:] == [["2", "zip", "803\u240004", "contains a NUL byte"]]
    assert list(Property.objects.values_list("parcel_id", flat=True)) == ["B"]


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (
            b"parcel_id,addr\x00ess,zip",
            "the header line contains a NUL byte (column 2): the first line must name the columns",
        ),
        (
            b"parcel_id,address,zip,no\x07tes",
            "the header line contains a control character (U+0007) (column 4): the first line must name the columns",
        ),
    ],
)
def test_command_exits_2_for_a_control_character_in_the_header(reference, tmp_path, header, error):
    PropertyFactory(parcel_id="KEEP", address="1 Stored St")
    before = all_rows()
    path = write_bytes(tmp_path, header + b"\nA,1 Pearl St,80304,x\n")

    code, stdout, stderr = command("properties", str(path))

    assert (code, stdout, stderr) == (2, "", f"properties: {path.resolve()} was not imported: {error}\n")
    assert all_rows() == before
    assert ImportRun.objects.values_list("status", "error", "rejects_file").get() == ("failed", error, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["properties.csv"]


def test_command_exits_0_for_a_clean_file_read_through_the_line_checks(reference, tmp_path):
    path = write(tmp_path, "properties.csv", HEADER, "A,1 Pearl St,80304,950000,3", 'B,"2 Pearl St, Unit 1",80304,,')

    code, stdout, stderr = command("properties", str(path))

    assert (code, stderr) == (0, "")
    assert stdout.startswith("properties: 2 rows read, 2 inserted, 0 updated, 0 unchanged, 0 rejected in ")
    assert stored() == [("A", "1 Pearl St", 950000, 3), ("B", "2 Pearl St, Unit 1", None, None)]


# --- Quoted values over several lines ---------------------------------------------------------------------------


def test_quoted_values_over_several_lines_load_exactly_as_written(reference, tmp_path):
    path = write_bytes(
        tmp_path,
        b"parcel_id,address,zip,owner_name\r\n"
        b'A,"1 Pearl St\r\nUnit 2",80304,"Ann ""Lee""\nand Bob"\r\n'
        b'B,"2 Pearl St",80304,"Carl, Dee"\r\n'
        b'C,"3 Pearl St\n\n",80304\r\n',
    )

    run = run_import("properties", path)

    assert read_rejects(path) == [REJECTS_HEADER, ["4", "", "C,3 Pearl St\n\n,80304", "3 fields, the header has 4"]]
    assert counts(run) == {"status": "partial", "read": 3, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert list(Property.objects.order_by("parcel_id").values_list("address", "owner_name")) == [
        ("1 Pearl St\r\nUnit 2", 'Ann "Lee"\nand Bob'),
        ("2 Pearl St", "Carl, Dee"),
    ]


def test_a_quoted_line_break_hidden_by_stray_quotes_makes_the_file_unusable(reference, tmp_path):
    # Each line of the quoted value also holds a quote inside an unquoted value (5" pipe, 7" gutter):
    # the counts of quotes pair up, the line break cannot be told from one between lines.
    path = write_bytes(
        tmp_path,
        b'parcel_id,address,owner_name,zip\nA,5" pipe,"Ann\nLee",7" gutter\nB,2 Pearl St,,80304\n',
    )

    code, stdout, stderr = command("properties", str(path))

    error = (
        "not a well-formed CSV file: a quoted value runs over several lines whose quotes do not pair up "
        '(a quote inside an unquoted value?); quote such values and double the quotes inside them ("")'
    )
    assert (code, stdout, stderr) == (2, "", f"properties: {path.resolve()} was not imported: {error}\n")
    assert Property.objects.count() == 0


# --- Long values in the rejects file ------------------------------------------------------------------------------


def test_a_long_value_is_cut_in_the_rejects_file_with_its_length(reference, tmp_path):
    huge = "x" * 1_048_576
    path = write(tmp_path, "properties.csv", HEADER, f"A,{huge},80304,,", f"B,{huge},80304", "C,3 Pearl St,80304,,")

    result = data_file_import(kind="properties", path=path, today=TODAY)

    assert result.exit_code == 3
    assert read_rejects(path) == [
        REJECTS_HEADER,
        ["2", "address", "x" * 200 + "… (1,048,576 characters)", "longer than 200 characters"],
        ["3", "", "B," + "x" * 198 + "… (1,048,584 characters)", "3 fields, the header has 5"],
    ]
    assert rejects_path(path).stat().st_size < 1000
    assert stored() == [("C", "3 Pearl St", None, None)]
