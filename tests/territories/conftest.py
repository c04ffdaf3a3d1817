import pytest

from tests.contractors.factories import ContractorFactory, seeded_trades


@pytest.fixture
def trades(db):
    return seeded_trades()


@pytest.fixture
def acme(trades):
    return ContractorFactory(name="Acme Roofing", slug="acme-roofing", trades=[trades["roofing"]])
