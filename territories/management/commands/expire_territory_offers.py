from django.core.management.base import BaseCommand

from territories.services.waitlist import territory_offers_expire


class Command(BaseCommand):
    help = "Expire the waitlist offers that ran out and offer those territories to the next in line (idempotent)."

    def handle(self, *args, **options):
        expired = territory_offers_expire()
        self.stdout.write(f"Waitlist offers expired: {expired}")
