"""The lead list that fits a screen: its columns, the contractor chosen by typing its name (the admin's
autocomplete) rather than picked from a link per contractor, and the typed ZIP code."""

import json
import re
from urllib.parse import urlencode

from contractors.models import Contractor
from leads.models import Lead
from tests.admin_pages import page_of
from tests.contractors.factories import ContractorFactory
from tests.leads.test_admin import CHANGELIST, assigned_lead, listed, pool_lead

AUTOCOMPLETE = "/admin/autocomplete/"


def contractor_filter(page: str) -> str:
    """The sidebar's contractor filter."""
    return re.search(r'<details data-filter-title="contractor".*?</details>', page, re.S).group(0)


def test_the_list_shows_the_columns_that_fit_and_leaves_the_rest_to_the_lead_page(staff_client, roofing, peak):
    lead = assigned_lead(roofing, peak, score=85, zip_code="80203")

    page = staff_client.get(CHANGELIST).content.decode()

    assert re.findall(r'<th scope="col" class="(?:sortable )?column-(\w+)', page) == [
        "id", "trade", "state", "zip_code", "contractor", "score", "created_at",
    ]  # fmt: skip
    lead_page = staff_client.get(f"{CHANGELIST}{lead.pk}/change/").content.decode()
    for field in ("urgency", "model_version", "assigned_at"):
        assert f"form-row field-{field}" in lead_page


def test_the_contractor_filter_lists_no_contractor_until_one_is_typed(staff_client, roofing, acme, peak):
    ContractorFactory.create_batch(6, trades=[roofing])
    assigned_lead(roofing, peak, zip_code="80203")

    sidebar = contractor_filter(staff_client.get(CHANGELIST).content.decode())

    assert "<option" in sidebar  # the empty choice only
    assert re.findall(r"<option[^>]*>(.*?)</option>", sidebar) == [""]
    assert "contractor__id__exact=" not in sidebar  # no link per contractor
    assert 'name="contractor__id__exact"' in sidebar
    assert 'data-ajax--url="/admin/autocomplete/"' in sidebar
    for path in (
        "core/autocomplete_filter.js",
        "admin/js/vendor/select2/select2.full",
        "admin/js/autocomplete.js",
    ):
        assert path in sidebar
    assert "admin/js/vendor/jquery/jquery" not in sidebar  # the page's own copy serves


def test_the_contractor_filter_narrows_to_its_leads_and_names_the_one_chosen(staff_client, roofing, acme, peak):
    a = assigned_lead(roofing, acme, zip_code="80202")
    b = assigned_lead(roofing, peak, zip_code="80203")
    c = pool_lead(roofing, zip_code="80204")

    assert listed(staff_client, f"contractor__id__exact={peak.pk}") == [b.pk]
    assert listed(staff_client, f"contractor__id__exact={acme.pk}") == [a.pk]
    assert listed(staff_client, "contractor__isnull=True") == [c.pk]
    assert listed(staff_client, f"contractor__id__exact={peak.pk}&state__exact=generated") == []
    page = staff_client.get(f"{CHANGELIST}?state__exact=assigned&contractor__id__exact={peak.pk}").content.decode()
    sidebar = contractor_filter(page)
    assert re.findall(r'<option value="(\d+)" selected>(.*?)</option>', sidebar) == [(str(peak.pk), "Peak Roofing")]
    assert '<input type="hidden" name="state__exact" value="assigned">' in sidebar  # the other filters go along
    assert '<a href="?state__exact=assigned">' in sidebar  # "All" clears this filter only


def test_the_autocomplete_finds_contractors_by_name_for_the_filter(staff_client, roofing, acme, peak):
    query = {"app_label": "leads", "model_name": "lead", "field_name": "contractor", "term": "pea"}

    answer = json.loads(staff_client.get(AUTOCOMPLETE, query).content)

    assert answer["results"] == [{"id": str(peak.pk), "text": "Peak Roofing"}]


def test_a_contractor_id_that_is_not_a_number_is_refused_and_an_unknown_one_lists_nothing(staff_client, roofing, peak):
    assigned_lead(roofing, peak, zip_code="80203")
    missing = Contractor.objects.order_by("-pk").first().pk + 1

    refused = staff_client.get(f"{CHANGELIST}?contractor__id__exact=peak")

    assert (refused.status_code, refused["Location"]) == (302, f"{CHANGELIST}?e=1")
    assert listed(staff_client, f"contractor__id__exact={missing}") == []


def test_the_zip_filter_is_a_typed_code_or_its_first_digits(staff_client, roofing, acme, peak):
    a = pool_lead(roofing, zip_code="80202")
    b = assigned_lead(roofing, peak, zip_code="80203")
    c = pool_lead(roofing, zip_code="80301")

    assert listed(staff_client, "zip=80203") == [b.pk]
    assert listed(staff_client, "zip=802") == [b.pk, a.pk]
    assert listed(staff_client, "zip=8") == [c.pk, b.pk, a.pk]
    assert listed(staff_client, "zip=80x") == []
    assert listed(staff_client, urlencode({"zip": "802", "contractor__id__exact": peak.pk})) == [b.pk]
    page = page_of(staff_client.get(CHANGELIST))
    zip_filter = re.search(r'<details data-filter-title="ZIP code".*?</details>', page, re.S).group(0)
    assert '<input type="text" name="zip"' in zip_filter
    assert "80301" not in zip_filter  # no list of the ZIP codes
    assert Lead.objects.count() == 3
