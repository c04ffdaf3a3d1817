import pytest

from scoring.models import ZipCode


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Load the real US ZIP reference once into the test database, as `make run` does."""
    from scoring.services.zip_codes import zip_codes_load

    with django_db_blocker.unblock():
        zip_codes_load()


@pytest.fixture
def zip_codes(db):
    """The ZIP reference; reloaded when a transactional test emptied the tables."""
    if not ZipCode.objects.exists():
        from scoring.services.zip_codes import zip_codes_load

        zip_codes_load()
