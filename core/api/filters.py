"""Query-string filters read without building a form per request.

django-filter's FilterSet deep-copies its filters for each request, makes a form class from their fields and a
form from that class (copying the fields again), then validates: about half a millisecond of CPU for the lead
list's seven filters, a sixth of the request. SharedFilterSet validates each value with the filter's own form
field, as the form would (the widget reads the value, the field cleans it), so the values, the messages and
the 400 are the same; its filters and their fields are made once per class and shared between requests and
threads. That needs filters that keep no state per request: none may have a `method` (it reads the FilterSet
it is called from) and none a queryset made from the request, which is checked when the class is made. The
form itself is still there, built when asked for (the browsable API draws it)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import QuerySet
from django.forms.utils import ErrorDict, ErrorList
from django.http import HttpRequest, QueryDict
from django_filters.filters import QuerySetRequestMixin


class SharedFilterSet(django_filters.FilterSet):
    @classmethod
    def get_filters(cls) -> dict[str, django_filters.Filter]:
        """The class's filters, made once (FilterSetMetaclass calls this when the class is made)."""
        filters: dict[str, django_filters.Filter] = super().get_filters()
        for name, filter_ in filters.items():
            if filter_.method is not None or isinstance(filter_, QuerySetRequestMixin):
                raise ImproperlyConfigured(
                    f"{cls.__name__}.{name}: a shared filter cannot read its FilterSet (a method, a request's queryset)"
                )
        return filters

    def __init__(
        self,
        data: QueryDict | None = None,
        queryset: QuerySet[Any] | None = None,
        *,
        request: HttpRequest | None = None,
        prefix: str | None = None,
    ) -> None:
        # FilterSet.__init__ without its deep copy of the filters (and without giving them this instance as
        # their parent, which only a method filter reads).
        if prefix:
            raise ImproperlyConfigured("a SharedFilterSet reads unprefixed parameters")
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = self._meta.model._default_manager.all() if queryset is None else queryset
        self.request = request
        self.form_prefix = None
        self.filters = self.base_filters

    def is_valid(self) -> bool:
        return self.is_bound and not self.errors

    @property
    def errors(self) -> ErrorDict:
        return self.cleaned[1]

    @property
    def cleaned(self) -> tuple[dict[str, Any], ErrorDict]:
        """The values of the filters (as the form's cleaned_data) and the errors (as the form's errors)."""
        if not hasattr(self, "_cleaned"):
            values: dict[str, Any] = {}
            errors = ErrorDict()
            for name, filter_ in self.base_filters.items():
                field = filter_.field
                try:
                    values[name] = field.clean(field.widget.value_from_datadict(self.data, {}, name))
                except ValidationError as error:
                    errors[name] = ErrorList(error.error_list)
            self._cleaned = (values, errors)
        return self._cleaned

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for name, value in self.cleaned[0].items():
            queryset = self.base_filters[name].filter(queryset, value)
        return queryset
