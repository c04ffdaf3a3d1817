from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from leadengine.api.jobs import JobRunViewSet
from leadengine.metrics.views import metrics
from leadengine.views import HealthView, ReadyView

jobs = SimpleRouter()
jobs.register("runs", JobRunViewSet, basename="jobrun")

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", include("leads.api.urls")),
    path("api/v1/", include("contractors.api.urls")),
    path("api/v1/", include("territories.api.urls")),
    path("api/v1/", include("scoring.api.urls")),
    path("api/v1/", include(jobs.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI under the pages' Content-Security-Policy: its start script at /api/docs/?script, its page
    # styles in a static file (leadengine/csp.py).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="leadengine/api_docs.html"),
        name="api-docs",
    ),
]

handler400 = "leadengine.views.bad_request"
handler403 = "leadengine.views.permission_denied"
handler404 = "leadengine.views.page_not_found"
handler500 = "leadengine.views.server_error"
