from django.core.management.base import BaseCommand, CommandError

from leadengine.services.roles import UnknownPermission, roles_seed


class Command(BaseCommand):
    help = "Create the staff roles (groups Lead manager, Territory manager, Ops) with exactly their permissions."

    def handle(self, *args, **options):
        try:
            changes = roles_seed()
        except UnknownPermission as error:
            raise CommandError(str(error)) from None
        for role, (added, removed) in changes.items():
            self.stdout.write(f"{role}: {added} permissions added, {removed} removed")
