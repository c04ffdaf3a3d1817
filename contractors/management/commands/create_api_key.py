from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from contractors.errors import ApiKeyOwnerInvalid
from contractors.models import Contractor
from contractors.selectors import contractor_api_access
from contractors.services.api_keys import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a contractor, or with --user a staff user's own key (it acts as that user). "
        "The key is printed once, alone on the last line; only its hash is stored, so it cannot be shown again."
    )

    def add_arguments(self, parser):
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("contractor", metavar="CONTRACTOR_SLUG", nargs="?")
        owner.add_argument("--user", metavar="USERNAME", help="A staff user's own key instead of a contractor's.")
        parser.add_argument("--name", default="", help='What the key is for, e.g. "CRM sync".')

    def handle(self, *args, contractor, user, name, **options):
        if user is not None:
            self._create_for_user(username=user, name=name)
            return
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

    def _create_for_user(self, *, username: str, name: str) -> None:
        User = get_user_model()
        try:
            owner = User.objects.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        try:
            key, raw_key = api_key_create(user=owner, name=name)
        except ApiKeyOwnerInvalid as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"API key {key.prefix} created for staff user {owner.get_username()}; it is shown once:")
        self.stdout.write(raw_key)
