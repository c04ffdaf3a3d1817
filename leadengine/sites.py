"""The back office's admin site: Django's, with the business dashboard as its index page and a login
that resists password guessing."""

from django.contrib import admin

from leadengine.dashboard import dashboard_context
from leadengine.security import AdminLoginForm


class LeadEngineAdminSite(admin.AdminSite):
    site_header = "LeadEngine"
    site_title = "LeadEngine admin"
    index_title = "Back office"
    login_form = AdminLoginForm

    def index(self, request, extra_context=None):
        """The admin index, with the dashboard (leadengine.dashboard) above the list of models."""
        return super().index(request, {**dashboard_context(request), **(extra_context or {})})
