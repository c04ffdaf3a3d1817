"""Cross-cutting operations that belong to no single domain."""

from django.contrib.auth import get_user_model
from django.db import transaction

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"


@transaction.atomic
def demo_user_ensure() -> tuple[str, bool]:
    """Create (or repair) the demo staff login for a development machine; returns (username, created)."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=DEMO_USERNAME, defaults={"email": "demo@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.is_active = True
    user.set_password(DEMO_PASSWORD)
    user.save()
    return user.username, created
