"""Protection of staff logins."""

from django.contrib.admin.forms import AdminAuthenticationForm


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form."""
