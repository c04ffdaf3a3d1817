from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from demo.users import DEMO_PASSWORD, demo_user_ensure


class Command(BaseCommand):
    help = "Create the demo staff login (demo/demo). Development only: refused when DEBUG is off."

    def handle(self, *args, **options):
        try:
            username, created = demo_user_ensure()
        except PermissionDenied as error:
            raise CommandError(str(error)) from None
        state = "created" if created else "ready"
        self.stdout.write(f"Demo staff login {state}: user {username}, password {DEMO_PASSWORD}")
