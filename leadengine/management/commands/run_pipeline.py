import datetime as dt
import sys

from django.core.management.base import BaseCommand, CommandError

from leadengine.flows import daily_run
from scoring.selectors import trades_named


class Command(BaseCommand):
    help = (
        "The nightly run (leadengine/flows.py): score, generate leads, route them, ask for their webhook "
        "delivery, expire overdue leads and waitlist offers. Exit code 1 if a scoring run failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--trade", action="append", default=[], metavar="SLUG", help="A trade (repeatable).")
        parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="Day to score as (YYYY-MM-DD).")

    def handle(self, *args, trade, as_of, **options):
        try:
            trades = trades_named(trade) if trade else None
        except ValueError as error:
            raise CommandError(str(error)) from None
        summary = daily_run(trades=trades, as_of=as_of)
        for line in summary.lines():
            self.stdout.write(line)
        if not summary.ok:
            sys.exit(1)
