from django.apps import AppConfig


class ContractorsConfig(AppConfig):
    name = "contractors"
