"""Request latency by view, method and status class, for Prometheus (leadengine/metrics/views.py serves it).

The view label is the resolved route's name (namespaced, e.g. "admin:index", "lead-list") or, for a route without
one, its URL pattern from the root ("/" for the root's redirect); never the path, so that the number of series stays
bounded whatever URLs clients ask for. A request no route matched (a 404, a redirect to https) is "<unmatched>", and
a static file (under STATIC_URL, answered by WhiteNoise) "<static>". Methods outside HTTP's own are counted as
"OTHER", for the same reason."""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import Histogram, disable_created_metrics

UNMATCHED = "<unmatched>"
STATIC = "<static>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

# No "_created" series beside each histogram: a per-process start time that only adds series.
disable_created_metrics()

# Not registered in prometheus-client's global registry: the endpoint builds its registry at each scrape (in
# multiprocess mode the figures are read from PROMETHEUS_MULTIPROC_DIR's files instead).
REQUEST_DURATION = Histogram(
    "leadengine_http_request_duration_seconds",
    "Time to answer a request, from the first middleware in to the response out, by view, method and status class",
    ["view", "method", "status"],
    registry=None,
)


def view_label(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        # WhiteNoise answers static files before any URL is resolved.
        return STATIC if request.path.startswith(f"/{settings.STATIC_URL.lstrip('/')}") else UNMATCHED
    if match.url_name:
        return match.view_name
    return f"/{match.route}"


def method_label(request: HttpRequest) -> str:
    method = (request.method or "").upper()
    return method if method in METHODS else "OTHER"


def status_label(response: HttpResponse) -> str:
    return f"{response.status_code // 100}xx"


class RequestMetricsMiddleware:
    """Times every request (the first middleware: all others are inside the time) into REQUEST_DURATION."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_DURATION.labels(view_label(request), method_label(request), status_label(response)).observe(
            time.perf_counter() - started
        )
        return response
