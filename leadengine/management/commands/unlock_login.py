from django.core.management.base import BaseCommand, CommandError

from core.cache_backend import CacheUnavailable
from leadengine.security import login_unlock


class Command(BaseCommand):
    help = "Forget the failed admin logins of a username and/or a client address, lifting their lockout."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the username (any case)")
        parser.add_argument("--address", help="a client address (an IPv6 address clears its /64)")

    def handle(self, *args, username=None, address=None, **options):
        if username is None and address is None:
            raise CommandError("give a username, an --address, or both")
        try:
            locked = login_unlock(username=username, address=address)
        except CacheUnavailable as error:
            raise CommandError(f"{error}; try again once Redis answers") from None
        names = {"account": f"username {username!r}", "address": f"address {address}"}
        if locked:
            self.stdout.write("Unlocked: " + ", ".join(names[kind] for kind in locked))
        else:
            self.stdout.write("Not locked out; its failed logins are forgotten.")
