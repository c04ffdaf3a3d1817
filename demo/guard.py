"""Demo data never goes where real data lives: every demo command refuses with DEBUG off unless given
ALLOW_PRODUCTION_FLAG (`demo_production_check`), and the demo market is seeded only into a database
without properties or one that only the demo market has written (`demo_market_owner_check`)."""

from __future__ import annotations

from django.conf import settings

from core.errors import DomainError
from core.text import counted
from scoring.models import ImportRun, Property


class DemoRefused(DomainError):
    """A demo command declined to write: made-up rows among real ones would pass for real business."""

    code = "demo_refused"


# The demo commands' flag for running with DEBUG off; their refusal names it.
ALLOW_PRODUCTION_FLAG = "--allow-production"
DEMO_ORIGIN = "demo"
# Who wrote the properties that are not the demo's, as the refusal names them (ImportRun.origin).
ORIGIN_NAMES = {"command": "import_data", "admin": "uploads in the admin"}


def demo_production_check(*, doing: str, allow_production: bool) -> None:
    """Refuse a demo write with DEBUG off (production settings) unless the caller asked for it explicitly.

    `doing` says what was refused ("seed the demo market").
    """
    if not settings.DEBUG and not allow_production:
        raise DemoRefused(
            f"refusing to {doing}: DEBUG is off, so this may be a production database; "
            f"pass {ALLOW_PRODUCTION_FLAG} to do it anyway"
        )


def demo_market_owner_check() -> None:
    """Refuse to seed over properties the demo market did not write.

    Demo parcel ids look like county ones ("DEN-000123"), and the import upserts by parcel id, so
    seeding over real data would overwrite real homes. The import runs tell who wrote the data: the
    demo seeds into a database without properties, or one whose every import run is the demo's.
    """
    if not Property.objects.exists():
        return
    origins = set(ImportRun.objects.order_by().values_list("origin", flat=True).distinct())
    if origins == {DEMO_ORIGIN}:
        return
    found = counted(Property.objects.count(), "property", "properties")
    others = sorted(origins - {DEMO_ORIGIN})
    if not others:
        found += " that no import run recorded (not the demo)"
    else:
        found += " imported by " + " and ".join(ORIGIN_NAMES.get(origin, origin) for origin in others)
        found += " as well as the demo" if DEMO_ORIGIN in origins else " (not the demo)"
    raise DemoRefused(
        f"refusing to seed the demo market: the database holds {found}; the demo market goes only into a "
        "database without properties or one that only seed_demo has written"
    )
