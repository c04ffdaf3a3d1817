from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from leads.errors import LeadError
from leads.services.suppressions import suppressions_import_csv


class Command(BaseCommand):
    help = "Import do-not-contact entries from a CSV (columns kind,value[,zip][,note]); all rows or none."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file, **options):
        try:
            data = file.read_bytes()
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from None
        try:
            summary = suppressions_import_csv(data=data)
        except LeadError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(str(summary))
