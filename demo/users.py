"""Cross-cutting operations that belong to no single domain."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"


@transaction.atomic
def demo_user_ensure() -> tuple[str, bool]:
    """Create (or repair) the demo staff login for a development machine; returns (username, created).

    Refused when DEBUG is off: a login with a published password has no place in production.
    """
    if not settings.DEBUG:
        raise PermissionDenied("refusing to create a login with a published password while DEBUG is off")
    User = get_user_model()
    user, created = User.objects.get_or_create(username=DEMO_USERNAME, defaults={"email": "demo@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.is_active = True
    user.set_password(DEMO_PASSWORD)
    user.save()
    return user.username, created
