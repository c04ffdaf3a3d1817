"""Admin change lists of tables that grow to millions of rows (properties, scores, leads...).

Django's change list counts its rows exactly on every page load (`SELECT COUNT(*)`), which reads the
whole table or the whole filtered set. Here the count is PostgreSQL's own estimate when the set is big:
the table's row estimate (pg_class.reltuples, kept by ANALYZE and autovacuum) for an unfiltered list,
the planner's row estimate (EXPLAIN) for a filtered or searched one. Below ESTIMATE_THRESHOLD rows the
count is exact, as it is cheap there and a small set is where an exact number matters. The pages say
"about N" when the count is an estimate (templates/admin/pagination.html and search_form.html).
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Sets estimated to hold fewer rows than this are counted exactly.
ESTIMATE_THRESHOLD = 10_000


def table_rows_estimate(queryset: QuerySet) -> int | None:
    """The table's row estimate from its last ANALYZE; None when never analyzed (reltuples is -1)."""
    connection = connections[queryset.db]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    if row is None or row[0] < 0:
        return None
    return int(row[0])


def plan_rows_estimate(queryset: QuerySet) -> int:
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


def is_unfiltered(queryset: QuerySet) -> bool:
    """Every row of the table, once each: no condition, no DISTINCT, no join that could repeat rows."""
    query = queryset.query
    return not query.where and not query.distinct and not query.combinator and query.low_mark == 0


class EstimatedCountPaginator(Paginator):
    """A Paginator whose count is PostgreSQL's estimate for big sets (`estimated` says so), exact otherwise."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or connections[queryset.db].vendor != "postgresql":
            return super().count
        estimate = table_rows_estimate(queryset) if is_unfiltered(queryset) else plan_rows_estimate(queryset)
        if estimate is None or estimate < ESTIMATE_THRESHOLD:
            return super().count
        self.estimated = True
        return estimate

    @property
    def count_text(self) -> str:
        """The count as the pages show it: "about 1,234,000" when estimated."""
        return f"about {self.count:,}" if self.estimated else str(self.count)


class BigTableAdmin(admin.ModelAdmin):
    """A ModelAdmin for a table of up to millions of rows: estimated counts, no full count beside a
    filtered one, and no facet counts (each would be a GROUP BY over the whole set per filter)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
