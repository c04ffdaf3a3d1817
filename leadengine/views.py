"""Process health endpoints for load balancers and orchestrators (no authentication)."""

from django.contrib import admin
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

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
    """The process can reach PostgreSQL and Redis; 503 naming what is down otherwise."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # load balancers poll these

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, tags=["health"])
    def get(self, request):
        checks = {}
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as error:  # any failure means not ready; the reason is reported
            checks["database"] = f"unavailable: {type(error).__name__}"
        try:
            cache.set("readyz", "1", timeout=5)
            checks["redis"] = "ok" if cache.get("readyz") == "1" else "unavailable: no round trip"
        except Exception as error:
            checks["redis"] = f"unavailable: {type(error).__name__}"
        ready = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


def server_error(request, *args, **kwargs):
    """500: JSON for the API (no HTML page, no trace), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        from leadengine.api.errors import error_body

        return JsonResponse(error_body("server_error", "The server failed; the error is logged."), status=500)
    return defaults.server_error(request, *args, **kwargs)


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
        from leadengine.api.errors import error_body

        return JsonResponse(error_body("not_found", f"Nothing is served at {request.path}."), status=404)
    return defaults.page_not_found(request, exception, *args, **kwargs)
