import pytest


@pytest.fixture
def zip_codes(db):
    """The real US ZIP reference table, loaded as `make run` loads it."""
    from scoring.services.zip_codes import zip_codes_load

    zip_codes_load()
