"""The business at a glance on the admin index page."""


def dashboard_context(request) -> dict:
    """What the admin index shows above the list of models."""
    return {}
