import io

import pytest
from django.core.management import call_command

ROWS = "\n".join(f"P{n},{n} Pearl St,80302" for n in range(5))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def properties_file(tmp_path):
    path = tmp_path / "properties.csv"
    path.write_text("parcel_id,address,zip\n" + ROWS + "\n")
    return path


def test_progress_bar_is_drawn_on_a_terminal(zip_codes, properties_file):
    terminal, out = Terminal(), io.StringIO()
    call_command("import_data", "properties", str(properties_file), "--chunk-rows", "2", stderr=terminal, stdout=out)
    # One frame per chunk, redrawn in place; the share is of bytes read (a small file is read at once).
    assert terminal.getvalue() == (
        "\rproperties [##############################] 100% 2 rows"
        "\rproperties [##############################] 100% 4 rows"
        "\rproperties [##############################] 100% 5 rows\n"
    )
    assert out.getvalue().startswith("properties: 5 rows read, 5 inserted")


def test_no_progress_output_when_not_on_a_terminal(zip_codes, properties_file):
    err, out = io.StringIO(), io.StringIO()
    call_command("import_data", "properties", str(properties_file), stderr=err, stdout=out)
    assert err.getvalue() == ""
    assert out.getvalue().startswith("properties: 5 rows read, 5 inserted, 0 updated, 0 unchanged, 0 rejected in ")
