from rest_framework.pagination import CursorPagination


class BoundedCursorPagination(CursorPagination):
    """Cursor pages (stable under inserts, no COUNT over the table) of `page_size` rows, at most 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
