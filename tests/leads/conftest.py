import pytest

from leads.models import Lead
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.factories import filters, owner, scored_home


@pytest.fixture
def roofing(trades):  # noqa: F811
    """Roofing, with permissive filters (every score, no ZIP limit) that each test tightens."""
    trade = trades["roofing"]
    filters(trade)
    return trade


@pytest.fixture
def acme(roofing, zip_codes):
    """Acme Roofing, owning roofing in 80202 (the admin's tests)."""
    return owner(roofing, "80202", name="Acme Roofing", slug="acme-roofing")


@pytest.fixture
def peak(roofing, zip_codes):
    """Peak Roofing, owning roofing in 80203."""
    return owner(roofing, "80203", name="Peak Roofing", slug="peak-roofing")


@pytest.fixture
def market(roofing):
    """Acme owns 80202 with two assigned leads (95 and 85); Bolt owns 80203 with one (75)."""
    acme, bolt = owner(roofing, "80202"), owner(roofing, "80203")
    homes = [scored_home(roofing, score=s, urgency=10, zip_code="80202") for s in (95, 85)]
    homes.append(scored_home(roofing, score=75, zip_code="80203"))
    leads_generate(trade=roofing)
    leads_route()
    leads = {home.pk: Lead.objects.get(property=home) for home in homes}
    return acme, bolt, [leads[home.pk] for home in homes]
