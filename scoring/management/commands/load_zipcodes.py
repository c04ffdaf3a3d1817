from django.core.management.base import BaseCommand

from scoring.services.zip_codes import zip_codes_load


class Command(BaseCommand):
    help = "Load or refresh the US ZIP code reference table from the zipcodes package (idempotent)."

    def handle(self, *args, **options):
        counts = zip_codes_load()
        self.stdout.write(
            f"ZIP codes: {counts['total']:,} in the reference, {counts['inserted']:,} inserted, "
            f"{counts['updated']:,} updated"
        )
