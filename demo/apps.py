from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo market: seeding of properties, contractors, territories and a day of lead activity."""

    name = "demo"
