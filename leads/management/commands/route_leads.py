from django.core.management.base import BaseCommand, CommandError

from leads.services.routing import leads_route
from scoring.selectors import trades_named


class Command(BaseCommand):
    help = "Assign the unassigned pool's leads to the owners of their ZIPs, within their caps (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--trade", action="append", default=[], metavar="SLUG", help="A trade (repeatable).")

    def handle(self, *args, trade, **options):
        try:
            trade_ids = [t.pk for t in trades_named(trade)] if trade else None
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(str(leads_route(trade_ids=trade_ids)))
