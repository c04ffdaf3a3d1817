"""The contractor filter of every list that filters by contractor is typed (core.admin.RelatedAutocompleteFilter):
no link per contractor in the sidebar, Django's own parameter kept, a bad value refused as Django refuses one."""

import re

import pytest

from contractors.models import ApiKey
from contractors.services.api_keys import api_key_create
from territories.models import Territory
from territories.services.claims import territory_claim
from tests.contractors.factories import ContractorFactory, seeded_trades

LISTS = ["/admin/territories/territory/", "/admin/contractors/apikey/", "/admin/contractors/contractornotice/"]


def sidebar_filter(page: str) -> str:
    return re.search(r'<details data-filter-title="contractor".*?</details>', page, re.S).group(0)


@pytest.fixture
def contractors(db, zip_codes):
    roofing = seeded_trades()["roofing"]
    made = ContractorFactory.create_batch(8, trades=[roofing])
    for contractor, code in zip(made[:2], ["80202", "80203"], strict=True):
        territory_claim(contractor=contractor, trade=roofing, zip_code=code)
        api_key_create(contractor=contractor, name="CRM")
    return made


@pytest.mark.parametrize("path", LISTS)
def test_a_contractor_is_typed_not_picked_from_a_link_each(staff_client, contractors, path):
    sidebar = sidebar_filter(staff_client.get(path).content.decode())

    assert 'name="contractor__id__exact"' in sidebar
    assert 'data-ajax--url="/admin/autocomplete/"' in sidebar
    assert re.findall(r"<option[^>]*>(.*?)</option>", sidebar) == [""]  # nobody listed until typed
    assert "?contractor__id__exact=" not in sidebar


def test_the_territory_list_keeps_django_s_parameter_and_names_the_one_chosen(staff_client, contractors):
    chosen = contractors[1]

    page = staff_client.get(f"/admin/territories/territory/?contractor__id__exact={chosen.pk}").content.decode()

    listed = set(map(int, re.findall(r'href="/admin/territories/territory/(\d+)/change/', page)))
    assert listed == set(Territory.objects.filter(contractor=chosen).values_list("pk", flat=True))
    assert len(listed) == 1
    selected = re.findall(r'<option value="(\d+)" selected>(.*?)</option>', sidebar_filter(page))
    assert selected == [(str(chosen.pk), chosen.name)]


@pytest.mark.parametrize("path", LISTS)
def test_a_value_that_is_not_an_id_is_refused(staff_client, contractors, path):
    response = staff_client.get(f"{path}?contractor__id__exact=acme")

    assert (response.status_code, response["Location"]) == (302, f"{path}?e=1")


def test_the_api_key_list_shows_the_chosen_contractor_s_keys(staff_client, contractors):
    chosen = contractors[0]

    keys = staff_client.get(f"/admin/contractors/apikey/?contractor__id__exact={chosen.pk}").content.decode()

    shown = set(map(int, re.findall(r'href="/admin/contractors/apikey/(\d+)/change/', keys)))
    assert shown == set(ApiKey.objects.filter(contractor=chosen).values_list("pk", flat=True))
    assert len(shown) == 1
