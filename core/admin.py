"""What every app's admin shares: change lists of tables that grow to millions of rows, and the page of a
form whose submission calls a service (an action's intermediate page, a claim).

Change lists of tables that grow to millions of rows (properties, scores, leads...):

Django's change list counts its rows exactly on every page load (`SELECT COUNT(*)`), which reads the
whole table or the whole filtered set. Here the count is PostgreSQL's own estimate when the set is big:
the table's row estimate (pg_class.reltuples, kept by ANALYZE and autovacuum) for an unfiltered list,
the planner's row estimate (EXPLAIN) for a filtered or searched one. Below ESTIMATE_THRESHOLD rows the
count is exact, as it is cheap there and a small set is where an exact number matters. The pages say
"about N" when the count is an estimate (templates/admin/pagination.html and search_form.html).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import EmptyResultSet, PermissionDenied
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseBase, HttpResponseNotAllowed, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property

# Sets estimated to hold fewer rows than this are counted exactly.
ESTIMATE_THRESHOLD = 10_000


def table_rows_estimate(queryset: QuerySet[Any]) -> int | None:
    """The table's rows as the planner reckons them: the density its last ANALYZE saw (reltuples per
    page) times the pages the table has now, so rows added since are counted. None when the table was
    never analyzed (reltuples is -1)."""
    connection = connections[queryset.db]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT CASE WHEN reltuples < 0 THEN NULL
                        WHEN relpages = 0 THEN reltuples
                        ELSE reltuples / relpages * (pg_relation_size(oid) / current_setting('block_size')::int)
                   END::bigint
            FROM pg_class WHERE oid = %s::regclass
            """,
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def plan_rows_estimate(queryset: QuerySet[Any]) -> int:
    """The planner's estimate of the rows `queryset` selects (its plan's top node), without running it."""
    connection = connections[queryset.db]
    try:
        sql, params = queryset.order_by().query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing (e.g. `pk__in=[]`): no query to plan
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def is_unfiltered(queryset: QuerySet[Any]) -> bool:
    """Every row of the table: no condition, no DISTINCT, no union (the change list's joins follow foreign
    keys, one row each)."""
    query = queryset.query
    return not query.where and not query.distinct and not query.combinator and query.low_mark == 0


# Paginator and ModelAdmin are generic in the stubs only: Django's classes cannot be subscripted.
class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """A Paginator whose count is PostgreSQL's estimate for big sets (`estimated` says so), exact otherwise."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or connections[queryset.db].vendor != "postgresql":
            return super().count
        estimate = table_rows_estimate(queryset) if is_unfiltered(queryset) else plan_rows_estimate(queryset)
        # An estimate of one page or less is counted: the change list would list such a set whole.
        if estimate is None or estimate < ESTIMATE_THRESHOLD or estimate <= self.per_page:
            return super().count
        self.estimated = True
        return estimate

    def validate_number(self, number: int | float | str) -> int:
        try:
            return super().validate_number(number)
        except EmptyPage:
            if not self.estimated or int(number) < 1:
                raise
            return int(number)  # past an estimate that fell short: the page may still hold rows

    def page(self, number: int | str) -> Page[Any]:
        """The page, without the end Django sets at the count when the count is an estimate. When such a
        page comes short, the set ends on it, so its count is known exactly from here on (an estimate of
        50,000 for a search that finds 3 rows, or of 30 rows for 33)."""
        if not self.estimated:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        page: Page[Any] = self._get_page(  # type: ignore[attr-defined]  # Django's hook, not in the stubs
            self.object_list[bottom : bottom + self.per_page], number, self
        )
        shown = len(page.object_list)  # the rows the change list shows, fetched once
        if shown < self.per_page:
            self.__dict__["count"] = bottom + shown
            self.__dict__.pop("num_pages", None)
            self.estimated = False
        return page

    @property
    def count_text(self) -> str:
        """The count as the pages show it: "about 1,234,000" when estimated."""
        return f"about {self.count:,}" if self.estimated else f"{self.count:,}"


class BigTableAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A ModelAdmin for a table of up to millions of rows: estimated counts, no full count beside a
    filtered one, and no facet counts (each would be a GROUP BY over the whole set per filter)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


def service_form_response(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    *,
    form: forms.Form,
    title: str,
    submit_label: str,
    intro: str = "",
    objects: Iterable[object] = (),
    action: str = "",
) -> TemplateResponse:
    """A page with a form whose submission calls a service: an action's intermediate page (`action` and
    `objects` carry the selection back to the action) or a stand-alone form such as a claim."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "form": form,
        "media": model_admin.media + form.media,
        "intro": intro,
        "objects": list(objects),
        "action": action,
        "submit_label": submit_label,
    }
    return TemplateResponse(request, "admin/service_form.html", context)


def action_form(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    form_class: type[forms.Form],
    action: str,
    title: str,
    intro: str = "",
    submit_label: str = "",
) -> tuple[dict[str, Any] | None, TemplateResponse | None]:
    """An admin action that asks for input first: (the form's cleaned data, None) once its page was
    submitted valid, else (None, the page to show). The page lists the selected `queryset` and carries the
    selection back to `action`."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        return form.cleaned_data, None
    page = service_form_response(
        model_admin,
        request,
        form=form,
        title=title,
        submit_label=submit_label or title.split()[0],
        intro=intro,
        objects=queryset,
        action=action,
    )
    return None, page


class ObjectActionsAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A ModelAdmin whose object pages carry the bulk actions the object's state allows, as buttons.

    `object_actions` names the actions that stand on an object's page, each with the rule that says
    whether the object's state allows it (the same rule the action's service applies, from the model's
    transition table or the service's own checks), so that a button never offers a move the service
    would refuse. A button runs the bulk action itself on a selection of that one object: its
    permission (`get_actions` keeps only those the user may run), its form page where it asks for input,
    and its messages are the bulk action's. Afterwards the object's page is shown again."""

    # action name -> (the button's label, the rule: does the object's state allow the action?)
    object_actions: dict[str, tuple[str, Callable[[Any], bool]]] = {}

    def get_urls(self) -> list[Any]:
        opts = self.opts
        return [
            path(
                "<path:object_id>/act/<str:name>/",
                self.admin_site.admin_view(self.object_action_view),
                name=f"{opts.app_label}_{opts.model_name}_act",
            ),
            *super().get_urls(),
        ]

    def object_actions_offered(self, request: HttpRequest, obj: Any) -> list[tuple[str, str]]:
        """(name, label) of the actions `request`'s user may run on `obj` in its state."""
        permitted = self.get_actions(request)
        return [
            (name, label) for name, (label, allows) in self.object_actions.items() if name in permitted and allows(obj)
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and not add:
            opts = self.opts
            context["object_actions"] = [
                (reverse(f"admin:{opts.app_label}_{opts.model_name}_act", args=[obj.pk, name]), label)
                for name, label in self.object_actions_offered(request, obj)
            ]
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def object_action_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponseBase:
        """Run action `name` on the object: POST only (a move), refused unless offered to this user."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
        action = self.get_actions(request).get(name)  # None when this user may not run it
        if name not in self.object_actions or action is None:
            raise PermissionDenied
        page = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        label, allows = self.object_actions[name]
        if not allows(obj):
            # The state moved since the page was drawn (another user, a job): its buttons were stale.
            self.message_user(
                request, f"Nothing done: {obj} no longer allows “{label}”; see what it allows now.", "error"
            )
            return HttpResponseRedirect(page)
        response = action[0](self, request, self.get_queryset(request).filter(pk=obj.pk))
        if isinstance(response, HttpResponseBase):
            return response  # the action's form page, or a file
        return HttpResponseRedirect(page)


# --- List filters -------------------------------------------------------------------------------------


def form_filter_choice(changelist: Any, parameter_name: str) -> dict[str, Any]:
    """What the sidebar form of a filter whose value is typed in needs: the other filters, the search and the
    ordering, as hidden fields that go along with the value (the page number does not), and the link that
    clears the filter."""
    others = QueryDict(changelist.get_query_string(remove=[parameter_name, "p"]).lstrip("?"))
    return {
        "parameter_name": parameter_name,
        "hidden": [(name, value) for name, values in others.lists() for value in values],
        "clear_query_string": changelist.get_query_string(remove=[parameter_name, "p"]),
    }


class RelatedAutocompleteFilter(admin.FieldListFilter):
    """A foreign key's row chosen by typing (the admin's autocomplete, as in its forms), instead of a link for
    every row of the related table in the sidebar: 90 contractors and growing. Used as
    `("contractor", RelatedAutocompleteFilter)` in `list_filter`. The parameter is the one of Django's own
    filter for the field (`contractor__id__exact=12`), so links made for that one keep working; a value that is
    not an id is refused as Django refuses a bad filter value. The related model's admin needs `search_fields`,
    and staff see choices only with the permission to view it (the autocomplete view checks both)."""

    template = "admin/autocomplete_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):  # type: ignore[no-untyped-def]
        self.parameter_name = f"{field_path}__{field.target_field.name}__exact"
        self.admin_site = model_admin.admin_site
        super().__init__(field, request, params, model, model_admin, field_path)

    def expected_parameters(self) -> list[str | None]:
        return [self.parameter_name]

    def value(self) -> str:
        values = self.used_parameters.get(self.parameter_name)
        return str(values[-1]) if isinstance(values, list) and values else ""

    def choices(self, changelist):  # type: ignore[no-untyped-def]
        widget = AutocompleteSelect(self.field, self.admin_site, attrs={"data-width": "100%"})
        form = forms.Form(initial={self.parameter_name: self.value()})
        form.fields[self.parameter_name] = cast(forms.Field, self.field.formfield(widget=widget, required=False))
        # The page has jQuery already (every change list does): select2 joins it; the page's own copy is
        # kept, not loaded twice (core/static/core/autocomplete_filter.js).
        shared = {"admin/js/vendor/jquery/jquery.js", "admin/js/vendor/jquery/jquery.min.js", "admin/js/jquery.init.js"}
        widget_media: Any = widget.media  # its lists: Media keeps them private, merged only with other Media
        media = forms.Media(
            js=["core/autocomplete_filter.js", *(path for path in widget_media._js if path not in shared)],
            css=widget_media._css,
        )
        yield {
            "value": self.value(),
            "field": form[self.parameter_name],
            "media": media,
            **form_filter_choice(changelist, self.parameter_name),
        }
