"""/metrics: the Prometheus text format, for scrapers that show a bearer token (METRICS_TOKEN) and/or come from
an allowed address (METRICS_ALLOWED_ADDRESSES, matched against the client address by the project's rule:
leadengine.security.client_ip). Neither set: the endpoint is off and answers 404 like any unknown URL. A scrape
without the token is 401, one with a wrong token or from another address 403; neither shows a metric."""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from leadengine.metrics.collectors import OperationsCollector
from leadengine.metrics.middleware import REQUEST_DURATION
from leadengine.security import client_ip


def multiprocess_dir() -> str | None:
    """Where prometheus-client's multiprocess mode keeps each process's figures; None: plain mode. It reads the
    variable itself, once, when imported: it must be in the environment the server starts with."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _refused(status: int, text: str) -> HttpResponse:
    response = HttpResponse(f"{text}\n", status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def address_allowed(request: HttpRequest, networks: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network) for network in networks)


def bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read the metrics (a response to send), or None when it may; Http404 while the
    endpoint is off."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_ADDRESSES
    if not token and not networks:
        raise Http404("Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_ADDRESSES")
    if networks and not address_allowed(request, networks):
        return _refused(403, "This address may not read the metrics.")
    if token:
        given = bearer_token(request)
        if given is None:
            return _refused(401, "A bearer token is required (Authorization: Bearer <token>).")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _refused(403, "The bearer token is wrong.")
    return None


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: the request figures (this process's, or every process's from the multiprocess
    directory) and the operations read now."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_DURATION)
    registry.register(OperationsCollector())
    return registry


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if (refused := refusal(request)) is not None:
        return refused
    # The format the scraper asks for (Accept): Prometheus's text format by default, OpenMetrics on request.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encode(scrape_registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
