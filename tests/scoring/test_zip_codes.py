import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from core.fields import is_zip_code, validate_zip_code
from scoring.models import Property, ZipCode
from scoring.services.zip_codes import reference_frame, zip_codes_load


@pytest.mark.django_db
def test_reference_table_holds_every_zip_of_the_package(zip_codes):
    assert ZipCode.objects.count() == len(reference_frame()) == 42789
    boulder = ZipCode.objects.get(code="80302")
    assert (boulder.city, boulder.state, boulder.county, boulder.kind, boulder.time_zone, boulder.active) == (
        "Boulder",
        "CO",
        "Boulder County",
        ZipCode.Kind.STANDARD,
        "America/Denver",
        True,
    )
    assert ZipCode.objects.get(code="00501").kind == ZipCode.Kind.UNIQUE


@pytest.mark.django_db
def test_loading_again_changes_nothing(zip_codes):
    before = list(ZipCode.objects.order_by("code").values_list())
    assert zip_codes_load() == {"total": 42789, "inserted": 0, "updated": 0}
    assert list(ZipCode.objects.order_by("code").values_list()) == before


@pytest.mark.django_db
def test_loading_restores_an_edited_zip(zip_codes):
    ZipCode.objects.filter(code="80302").update(city="Wrong", latitude=0)
    assert zip_codes_load() == {"total": 42789, "inserted": 0, "updated": 1}
    assert ZipCode.objects.get(code="80302").city == "Boulder"


@pytest.mark.django_db
def test_zip_codes_cannot_be_deleted(zip_codes):
    with pytest.raises(IntegrityError, match="reference data"), transaction.atomic():
        ZipCode.objects.filter(code="80302").delete()
    assert ZipCode.objects.filter(code="80302").exists()


@pytest.mark.django_db
def test_a_property_with_a_zip_outside_the_reference_is_refused_by_the_database(zip_codes):
    refused = pytest.raises(IntegrityError, match="ZIP code 00000 is not in the ZIP reference")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO scoring_property (parcel_id, address, city, state, zip_code, zip_derived, property_type,"
            " created_at, updated_at) VALUES ('X1', '1 Main St', 'Nowhere', 'CO', '00000', false, 'other',"
            " now(), now())"
        )
    assert not Property.objects.filter(parcel_id="X1").exists()


@pytest.mark.django_db
def test_moving_a_property_to_an_unknown_zip_is_refused_by_the_database(zip_codes):
    home = Property.objects.create(parcel_id="X2", address="2 Main St", city="Boulder", state="CO", zip_code_id="80302")
    with pytest.raises(IntegrityError, match="not in the ZIP reference"), transaction.atomic():
        Property.objects.filter(pk=home.pk).update(zip_code_id="99999")
    home.refresh_from_db()
    assert home.zip_code_id == "80302"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("80302", True),
        ("00501", True),
        ("8030", False),
        ("803021", False),
        ("8030x", False),
        ("80302-1234", False),
        (" 80302", False),
        ("80302\n", False),
        ("８０３０２", False),  # full-width digits: digits to Python's isdigit, not to the database
        ("٨٠٣٠٢", False),  # Arabic-Indic digits
        ("", False),
    ],
)
def test_a_zip_code_is_five_ascii_digits_and_nothing_else(value, expected):
    assert is_zip_code(value) is expected
    if expected:
        validate_zip_code(value)
    else:
        with pytest.raises(ValidationError) as refused:
            validate_zip_code(value)
        assert (refused.value.messages, refused.value.code) == (["Enter a five-digit ZIP code."], "invalid_zip_code")


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["8030", "8030x", "８０３０２"])
def test_the_database_refuses_a_reference_zip_that_is_not_five_digits(zip_codes, code):
    with pytest.raises(IntegrityError, match="scoring_zipcode_five_digits"), transaction.atomic():
        ZipCode.objects.create(
            code=code, kind=ZipCode.Kind.STANDARD, city="Nowhere", state="CO", latitude=0, longitude=0, active=True
        )
    assert not ZipCode.objects.filter(code=code).exists()
