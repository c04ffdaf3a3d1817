from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from leadengine.services import DEMO_PASSWORD, demo_user_ensure


class Command(BaseCommand):
    help = "Create the demo staff login (demo/demo). Development only: refused when DEBUG is off."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("refusing to create a login with a published password while DEBUG is off")
        username, created = demo_user_ensure()
        state = "created" if created else "ready"
        self.stdout.write(f"Demo staff login {state}: user {username}, password {DEMO_PASSWORD}")
