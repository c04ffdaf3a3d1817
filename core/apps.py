from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Plumbing every app may use; an app here only so that its templates (the admin's action page) are found."""

    name = "core"
