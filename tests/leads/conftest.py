import pytest

from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import filters


@pytest.fixture
def roofing(trades):  # noqa: F811
    """Roofing, with permissive filters (every score, no ZIP limit) that each test tightens."""
    trade = trades["roofing"]
    filters(trade)
    return trade
