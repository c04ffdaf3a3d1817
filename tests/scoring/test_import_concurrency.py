"""Two imports of the same kind started at the same moment, on their own connections."""

import pytest

from scoring.models import ImportRun, Property
from scoring.services.imports import data_file_import
from tests.racing import race


def properties_file(path, parcels: range, value: int):
    lines = ["parcel_id,address,zip,market_value"] + [f"P{n:03d},{n} Pearl St,80302,{value}" for n in parcels]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.django_db(transaction=True)
def test_overlapping_imports_racing_apply_one_after_the_other(zip_codes, tmp_path):
    files = {
        "first": properties_file(tmp_path / "a.csv", range(1, 101), 100_000),
        "second": properties_file(tmp_path / "b.csv", range(51, 151), 200_000),
    }
    results, errors = race(lambda path: data_file_import(kind="properties", path=path, chunk_rows=10), files.values())

    assert errors == []
    runs = sorted((result.run for result in results), key=lambda run: run.finished_at)
    # The lock lets one import write at a time: the earlier inserts all its rows, the later inserts
    # the parcels only it has and updates the 50 both have.
    assert [(run.status, run.rows_inserted, run.rows_updated) for run in runs] == [
        (ImportRun.Status.SUCCEEDED, 100, 0),
        (ImportRun.Status.SUCCEEDED, 50, 50),
    ]
    later_value = 100_000 if runs[1].file_name.endswith("a.csv") else 200_000
    values = dict(Property.objects.values_list("parcel_id", "market_value"))
    assert len(values) == 150
    assert {values[f"P{n:03d}"] for n in range(1, 51)} == {100_000}  # only in a.csv
    assert {values[f"P{n:03d}"] for n in range(101, 151)} == {200_000}  # only in b.csv
    assert {values[f"P{n:03d}"] for n in range(51, 101)} == {later_value}
