from django.core.management.base import BaseCommand

from leads.services.lifecycle import leads_expire


class Command(BaseCommand):
    help = (
        "Expire leads left in the pool past LEAD_POOL_DAYS and assigned ones not accepted within LEAD_ACCEPT_SLA_HOURS."
    )

    def handle(self, *args, **options):
        self.stdout.write(str(leads_expire()))
