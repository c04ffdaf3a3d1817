from django.core.management.base import BaseCommand, CommandError

from core.text import counted
from leads.services.generation import leads_generate_all
from scoring.selectors import trades_named


class Command(BaseCommand):
    help = "Make today's leads from the current scores, per trade, with its filters (idempotent within a day)."

    def add_arguments(self, parser):
        parser.add_argument("--trade", action="append", default=[], metavar="SLUG", help="A trade (repeatable).")
        parser.add_argument("--limit", type=int, default=None, help="At most this many new leads per trade.")

    def handle(self, *args, trade, limit, **options):
        if limit is not None and limit < 0:
            raise CommandError("--limit must be 0 or more")
        try:
            trades = trades_named(trade) if trade else None
        except ValueError as error:
            raise CommandError(str(error)) from None
        summaries = leads_generate_all(trades=trades, limit=limit)
        for summary in summaries:
            self.stdout.write(str(summary))
        self.stdout.write(f"total: {counted(sum(summary.created for summary in summaries), 'new lead')}")
