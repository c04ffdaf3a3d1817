from django.core.management.base import BaseCommand, CommandError

from contractors.models import Contractor
from contractors.selectors import contractor_api_access
from contractors.services.api_keys import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a contractor. The key is printed once, alone on the last line; only its "
        "hash is stored, so it cannot be shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("contractor", metavar="CONTRACTOR_SLUG")
        parser.add_argument("--name", default="", help='What the key is for, e.g. "CRM sync".')

    def handle(self, *args, contractor, name, **options):
        try:
            owner = Contractor.objects.get(slug=contractor)
        except Contractor.DoesNotExist:
            raise CommandError(f"no contractor with slug {contractor!r}") from None
        key, raw_key = api_key_create(contractor=owner, name=name)
        access = contractor_api_access(contractor=owner)
        if not access.allowed:
            self.stderr.write(f"Note: the key is refused until the contractor may use the API again. {access.reason}")
        self.stdout.write(f"API key {key.prefix} created for {owner} ({owner.slug}); it is shown once:")
        self.stdout.write(raw_key)
