"""SharedFilterSet (core/api/filters.py) reads a query string as django-filter's own FilterSet does (the same
values, the same errors), with filters shared between requests, also while threads filter at once."""

import threading

import django_filters
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.http import QueryDict

from core.api.filters import SharedFilterSet
from leads.api.filters import LeadFilterSet
from leads.models import Lead
from leads.services.generation import leads_generate
from leads.services.routing import leads_route
from tests.contractors.conftest import trades  # noqa: F401  (fixture)
from tests.leads.conftest import roofing  # noqa: F401  (fixture)
from tests.leads.factories import owner, scored_home

QUERIES = [
    "",
    "state=assigned&state=delivered&min_score=60.5&urgent=true&zip_code=802",
    "trade=roofing&generated_after=2026-11-01T00:00:00Z&generated_before=2026-12-01T00:00:00-07:00",
    "urgent=false&urgent=true&state=",
    # invalid, each in its own way
    "state=sold&min_score=high&generated_after=yesterday",
    "min_score=NaN&generated_before=2026-11-01T00:00:00+15:00",
    "min_score=1e400&generated_after=0001-01-01T00:00:00+01:00",
    "urgent=maybe&zip_code=%00",
]


class FormLeadFilterSet(django_filters.FilterSet):
    """The lead list's filters on django-filter's own FilterSet: a form per request."""

    locals().update(LeadFilterSet.declared_filters)

    class Meta:
        model = Lead
        fields = LeadFilterSet.Meta.fields


def read(filterset_class, query: str):
    filterset = filterset_class(QueryDict(query), queryset=Lead.objects.all())
    valid = filterset.is_valid()
    errors = {name: [(e.message % (e.params or ()), e.code) for e in error_list.as_data()]
              for name, error_list in filterset.errors.items()}  # fmt: skip
    return valid, errors, str(filterset.qs.query) if valid else None


@pytest.mark.parametrize("query", QUERIES)
def test_a_shared_filterset_reads_a_query_as_the_forms_filterset(db, query):
    assert read(LeadFilterSet, query) == read(FormLeadFilterSet, query)


def test_invalid_values_are_named_with_the_forms_messages(db):
    valid, errors, _ = read(LeadFilterSet, QUERIES[4])

    assert not valid
    assert errors == {
        "state": [("Select a valid choice. sold is not one of the available choices.", "invalid_choice")],
        "min_score": [("Enter a number.", "invalid")],
        "generated_after": [("Enter a valid date/time.", "invalid")],
    }


def test_a_filter_that_reads_its_filterset_is_refused_when_the_class_is_made():
    with pytest.raises(ImproperlyConfigured, match="cannot read its FilterSet"):

        class ByMethod(SharedFilterSet):
            mine = django_filters.CharFilter(method="mine_only")

            class Meta:
                model = Lead
                fields = ["mine"]


@pytest.mark.django_db(transaction=True)
def test_threads_filtering_at_once_each_get_their_own_leads(zip_codes, roofing):  # noqa: F811
    acme = owner(roofing, "80202", "80203")
    for score in range(40, 100, 5):
        scored_home(roofing, score=score, zip_code="80202" if score % 2 else "80203")
    leads_generate(trade=roofing)
    leads_route()
    expected = {
        floor: sorted(Lead.objects.filter(contractor=acme, score__gte=floor).values_list("pk", flat=True))
        for floor in range(40, 100, 5)
    }
    found: dict[int, list[list[int]]] = {floor: [] for floor in expected}
    start = threading.Barrier(len(expected))

    def page(floor: int) -> None:
        start.wait()
        try:
            for _ in range(50):
                query = QueryDict(f"min_score={floor}")
                filterset = LeadFilterSet(query, queryset=Lead.objects.filter(contractor=acme))
                found[floor].append(sorted(filterset.qs.values_list("pk", flat=True)) if filterset.is_valid() else [])
        finally:
            connection.close()

    threads = [threading.Thread(target=page, args=(floor,)) for floor in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {floor: {tuple(ids) for ids in pages} for floor, pages in found.items()} == {
        floor: {tuple(ids)} for floor, ids in expected.items()
    }
