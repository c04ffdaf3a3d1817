from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination


class BoundedCursorPagination(CursorPagination):
    """Cursor pages (stable under inserts, no COUNT over the table) of `page_size` rows, at most 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` as asked, then `-id`: rows that tie on the asked field (equal scores) keep one order,
    which cursor pages need so that no row is repeated or skipped between pages."""

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if ordering and not {"id", "-id", "pk", "-pk"} & set(ordering):
            ordering = [*ordering, "-id"]
        return ordering
