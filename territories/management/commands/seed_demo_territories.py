from django.core.management.base import BaseCommand

from territories.services.demo import territories_demo_seed


class Command(BaseCommand):
    help = (
        "Create demo contractors owning a realistic share of the demo market's ZIPs per trade, some ZIPs left "
        "free, a few waitlist entries. Run after seed_demo; deterministic for a market and seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="Random seed (42).")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any contractor exists.")

    def handle(self, *args, seed, if_empty, **options):
        seeded = territories_demo_seed(seed=seed, only_if_empty=if_empty)
        if seeded["skipped"]:
            self.stdout.write("Demo territories not seeded: the database already holds contractors.")
            return
        self.stdout.write(
            f"Demo territories: {seeded['contractors']} contractors own {seeded['territories']:,} territories; "
            f"{seeded['free']:,} ZIP x trade pairs of the demo market are free; {seeded['waitlist']} waitlist entries."
        )
