from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class LeadEngineConfig(AppConfig):
    default = True  # the app "leadengine" (this module also holds the admin's config)
    name = "leadengine"
    verbose_name = "Operations"


class LeadEngineAdminConfig(admin_apps.AdminConfig):
    """Django's admin with LeadEngine's site (leadengine.sites) as the default `admin.site`."""

    default = False  # named in INSTALLED_APPS in place of django.contrib.admin
    default_site = "leadengine.sites.LeadEngineAdminSite"
