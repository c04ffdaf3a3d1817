from pathlib import Path

import pytest
from django.core.management import call_command

from scoring.models import ImportRun, Property

EXAMPLES = "docs/examples"


@pytest.fixture
def example_market(zip_codes, tmp_path):
    """The example files of docs/examples imported as a user would."""
    for kind in ("properties", "storms", "permits", "sales"):
        source = f"{EXAMPLES}/{kind}.csv"
        copy = tmp_path / f"{kind}.csv"
        copy.write_bytes(Path(source).read_bytes())
        call_command("import_data", kind, str(copy))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/admin/scoring/property/?q=R0012345", "1420 Mapleton Ave"),
        ("/admin/scoring/property/?q=80304&property_type__exact=townhouse", "3285 20th St"),
        ("/admin/scoring/property/?zip_derived__exact=1", "550 Baseline Rd"),
        ("/admin/scoring/stormevent/?kind__exact=hail", "NWS-2026-0501-017"),
        ("/admin/scoring/permit/?q=BLD-2004-11872", "RESIDENTIAL REROOF"),
        ("/admin/scoring/sale/?q=R0012345", "2011"),
        ("/admin/scoring/zipcode/?q=80302", "Boulder"),
        ("/admin/scoring/zipcode/?state__exact=CO&kind__exact=standard&q=Boulder", "80302"),
        ("/admin/scoring/importrun/?kind__exact=properties&status__exact=succeeded", "properties.csv"),
        ("/admin/scoring/trade/", "Roofing"),
    ],
)
def test_change_lists_search_and_filter(staff_client, example_market, url, expected):
    response = staff_client.get(url)
    assert response.status_code == 200
    assert expected in response.content.decode()


def test_property_page_shows_its_permits_and_sales(staff_client, example_market):
    home = Property.objects.get(parcel_id="R0012345")
    page = staff_client.get(f"/admin/scoring/property/{home.pk}/change/").content.decode()
    assert "BLD-2004-11872" in page
    assert "612000" in page  # the earlier sale, inline


def test_import_runs_are_read_only_in_the_admin(staff_client, example_market):
    run = ImportRun.objects.filter(kind="properties").first()
    assert staff_client.get("/admin/scoring/importrun/add/").status_code == 403
    response = staff_client.post(f"/admin/scoring/importrun/{run.pk}/change/", {"status": "failed"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED


def test_zip_codes_cannot_be_deleted_from_the_admin(staff_client, zip_codes):
    response = staff_client.get("/admin/scoring/zipcode/80302/delete/")
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("R0012345", ["1420 Mapleton Ave"]),  # a parcel id, exactly
        ("1420 Mapleton", ["1420 Mapleton Ave"]),  # the start of an address, words and all
        ("1420 mapleton", ["1420 Mapleton Ave"]),  # in any case
        ("Mapleton", []),  # a prefix, not any part
    ],
)
def test_property_search_finds_a_parcel_or_an_address_start(staff_client, example_market, query, expected):
    page = staff_client.get("/admin/scoring/property/", {"q": query}).content.decode()

    shown = [address for address in Property.objects.values_list("address", flat=True) if f">{address}<" in page]
    assert shown == expected


def test_property_search_by_zip_lists_the_zips_properties(staff_client, example_market):
    page = staff_client.get("/admin/scoring/property/", {"q": "80304"}).content.decode()

    in_zip = set(Property.objects.filter(zip_code="80304").values_list("parcel_id", flat=True))
    shown = {parcel for parcel in Property.objects.values_list("parcel_id", flat=True) if f">{parcel}<" in page}
    assert shown == in_zip
    assert in_zip
