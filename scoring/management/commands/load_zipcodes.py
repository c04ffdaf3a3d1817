from django.core.management.base import BaseCommand

from core.progress import no_progress
from scoring.services.zip_codes import zip_codes_load


class Command(BaseCommand):
    help = "Load or refresh the US ZIP code reference table from the zipcodes package (idempotent)."
    # Given by a caller in the same process (manage.py setup): a core.progress.Progress.
    stealth_options = ("progress",)

    def handle(self, *args, progress=no_progress, **options):
        counts = zip_codes_load(progress=progress)
        self.stdout.write(
            f"ZIP codes: {counts['total']:,} in the reference, {counts['inserted']:,} inserted, "
            f"{counts['updated']:,} updated"
        )
