from django.apps import AppConfig


class ContractorsConfig(AppConfig):
    name = "contractors"

    def ready(self) -> None:
        from contractors.services.api_keys import api_key_changes_watched

        api_key_changes_watched()
