from django.core.management.base import BaseCommand

from core.text import counted
from leadengine.services.schedules import schedules_seed


class Command(BaseCommand):
    help = "Create the default job schedules that are missing (by name); never changes an existing one."

    def handle(self, *args, **options):
        created = schedules_seed()
        for name in created:
            self.stdout.write(f"created: {name}")
        self.stdout.write(f"{counted(len(created), 'schedule')} created")
