from django.apps import AppConfig


class LeadEngineConfig(AppConfig):
    name = "leadengine"
    verbose_name = "Operations"
