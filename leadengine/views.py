"""Process health endpoints for load balancers and orchestrators (no authentication)."""

import logging
import re
import sys

import redis
from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema, inline_serializer
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

log = logging.getLogger(__name__)

HealthSerializer = inline_serializer(
    "Health", fields={"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField())}
)


class HealthView(APIView):
    """The process is up and serving requests."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # load balancers poll these

    @extend_schema(responses={200: HealthSerializer}, tags=["health"])
    def get(self, request):
        return Response({"status": "ok", "checks": {}})


class ReadyView(APIView):
    """The process can reach PostgreSQL, the Redis cache and the broker, and (production's storage) its static
    files were collected; 503 naming what is down otherwise.
    Redis is asked directly (PING), not through the cache, which goes on without it and would hide an outage."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # load balancers poll these

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, tags=["health"])
    def get(self, request):
        checks = {"database": _database_check(), "redis": _redis_check(), "broker": _broker_check()}
        if _static_manifest_used():
            checks["static"] = _static_check()
        ready = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


def _unavailable(what: str, error: Exception) -> str:
    # The answer names the error's kind only (anyone may ask); the log has the whole error.
    log.warning("readyz: %s unavailable: %s: %s", what, type(error).__name__, error)
    return f"unavailable: {type(error).__name__}"


def _static_manifest_used() -> bool:
    """Production's static files storage names files by their hash from a manifest collectstatic writes."""
    return isinstance(staticfiles_storage, ManifestFilesMixin)


def _static_check() -> str:
    """A process whose release skipped collectstatic would answer every admin page and the API docs 500 (the
    manifest names no file): not ready, so a load balancer keeps sending to the processes that have them."""
    if staticfiles_storage.read_manifest() is None:
        log.warning("readyz: static files not collected into %s: run manage.py collectstatic", settings.STATIC_ROOT)
        return "unavailable: not collected"
    return "ok"


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any failure means not ready; the reason is reported
        return _unavailable("database", error)
    return "ok"


def _redis_check() -> str:
    """PING the cache's Redis (the server it writes to), once, within CACHE_TIMEOUT_SECONDS."""
    location = settings.CACHES["default"]["LOCATION"]
    server = re.split("[;,]", location)[0] if isinstance(location, str) else location[0]
    timeout = settings.CACHE_TIMEOUT_SECONDS
    client = redis.Redis.from_url(
        server, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except Exception as error:
        return _unavailable("Redis cache", error)
    finally:
        client.close()
    return "ok"


def _broker_check() -> str:
    from leadengine.celery import app

    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=5)
    except Exception as error:
        return _unavailable("broker", error)
    return "ok"


def server_error(request, *args, **kwargs):
    """500: JSON for the API (no HTML page, no trace), Django's page elsewhere; but 503 with Retry-After when
    the error was an unreachable database (raised outside a view: by the session saved in its middleware)."""
    from core.api.errors import database_unavailable, error_body
    from leadengine.middleware import database_unavailable_response

    if database_unavailable(sys.exc_info()[1]):  # Django calls this handler inside its `except`
        return database_unavailable_response(request)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "The server failed; the error is logged."), status=500)
    return defaults.server_error(request, *args, **kwargs)


def bad_request(request, exception, *args, **kwargs):
    """400 of a request Django refuses to read (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many parameters, a
    bad Host): JSON for the API, a body too large 413 everywhere, Django's page otherwise."""
    from django.core.exceptions import RequestDataTooBig, SuspiciousOperation

    from core.api.errors import error_body, suspicious_request

    if request.path.startswith("/api/"):
        if isinstance(exception, SuspiciousOperation):
            code, body = suspicious_request(exception)
        else:
            code, body = 400, error_body("bad_request", "The request is malformed.")
        return JsonResponse(body, status=code)
    if isinstance(exception, RequestDataTooBig):
        return HttpResponse(TOO_LARGE_PAGE, status=413)
    return defaults.bad_request(request, exception, *args, **kwargs)


TOO_LARGE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Request too large (413)</title></head>
<body><h1>Request too large</h1><p>The form sent is larger than the server reads; nothing was saved.</p></body>
</html>
"""


def permission_denied(request, exception, *args, **kwargs):
    """403 of a page the user's roles don't open: in the admin, a back-office page naming the user's groups
    with the way back to the dashboard; Django's page elsewhere (the API answers its own 403s)."""
    if request.path.startswith("/admin/") and request.user.is_authenticated:
        context = {
            **admin.site.each_context(request),
            "title": "Not allowed",
            "groups": sorted(request.user.groups.values_list("name", flat=True)),
        }
        return TemplateResponse(request, "admin/403.html", context, status=403)
    return defaults.permission_denied(request, exception, *args, **kwargs)


def page_not_found(request, exception, *args, **kwargs):
    """404 of a URL nothing serves: JSON for the API, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        from core.api.errors import error_body

        return JsonResponse(error_body("not_found", f"Nothing is served at {request.path}."), status=404)
    return defaults.page_not_found(request, exception, *args, **kwargs)
