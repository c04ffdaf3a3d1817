"""A database that cannot be reached answers 503 with Retry-After, on every page: JSON in the API's error shape
under /api/, a plain page elsewhere (the admin's own pages need the database to render). Errors a view raises
come here (process_exception); errors of other middleware (the session saved after the view) reach Django's
500 handler, leadengine.views.server_error, which answers the same."""

from __future__ import annotations

import logging

from django.http import HttpResponse

from core.api.errors import DATABASE_RETRY_AFTER_SECONDS, database_unavailable, database_unavailable_json

log = logging.getLogger(__name__)

UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Service unavailable (503)</title></head>
<body>
  <h1>Service unavailable</h1>
  <p>The database cannot be reached for a moment. Try again in {seconds} seconds.</p>
</body>
</html>
"""


def database_unavailable_response(request) -> HttpResponse:
    """503 for a request that failed because PostgreSQL cannot be reached."""
    if request.path.startswith("/api/"):
        return database_unavailable_json()
    response = HttpResponse(UNAVAILABLE_PAGE.format(seconds=DATABASE_RETRY_AFTER_SECONDS), status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """503 instead of a 500 (or, with DEBUG, a trace page) when a view fails on an unreachable database."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not database_unavailable(exception):
            return None
        # One line, no trace: while PostgreSQL restarts every request would log one.
        log.warning("%s %s answered 503, the database is unavailable: %s", request.method, request.path, exception)
        return database_unavailable_response(request)
