from django.core.management.base import BaseCommand

from leadengine.flows import waitlist_offers_expire
from territories.services.waitlist import promotions_given


class Command(BaseCommand):
    help = (
        "Expire the waitlist offers that ran out and offer those territories to the next in line, routing the "
        "waiting leads of any given outright (idempotent)."
    )

    def handle(self, *args, **options):
        offers = waitlist_offers_expire()
        self.stdout.write(f"Waitlist offers expired: {offers.result.expired}")
        for promotion in offers.result.promotions:
            self.stdout.write(f"Waitlist: {promotion}.")
        if promotions_given(offers.result.promotions):
            self.stdout.write(f"Their waiting leads: {offers.routing}.")
