from django.core.management.base import BaseCommand

from leads.services.statements import months_close


class Command(BaseCommand):
    help = (
        "Close each contractor's last month once its time zone has reached the 1st: charge its territory fees and "
        "write its statement (what the hourly Month close job does; a month already closed is left alone)."
    )

    def handle(self, *args, **options):
        self.stdout.write(str(months_close()))
