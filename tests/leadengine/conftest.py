import pytest

from scoring.models import ScoringModel
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import active_model, filters


@pytest.fixture
def roofing(trades, zip_codes):  # noqa: F811
    """Roofing has an active scoring model and permissive lead filters (every score makes a lead); no
    other trade has an active model, so the seeded schedules are roofing's and the shared ones."""
    ScoringModel.objects.exclude(trade=trades["roofing"]).update(status=ScoringModel.Status.RETIRED)
    filters(trades["roofing"])
    active_model(trades["roofing"])
    return trades["roofing"]
