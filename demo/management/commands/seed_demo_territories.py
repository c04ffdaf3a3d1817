from django.core.management.base import BaseCommand, CommandError

from demo.guard import ALLOW_PRODUCTION_FLAG, DemoRefused
from demo.territories import territories_demo_seed


class Command(BaseCommand):
    help = (
        "Create demo contractors owning a realistic share of the demo market's ZIPs per trade, some ZIPs left "
        "free, a few waitlist entries. Run after seed_demo; deterministic for a market and seed. With DEBUG off "
        f"only given {ALLOW_PRODUCTION_FLAG}."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="Random seed (42).")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any contractor exists.")
        parser.add_argument(
            ALLOW_PRODUCTION_FLAG,
            action="store_true",
            help="Seed even with DEBUG off (production settings), into a database meant for the demo.",
        )

    def handle(self, *args, seed, if_empty, allow_production, **options):
        try:
            seeded = territories_demo_seed(seed=seed, only_if_empty=if_empty, allow_production=allow_production)
        except DemoRefused as error:
            raise CommandError(str(error)) from None
        if seeded["skipped"]:
            self.stdout.write("Demo territories not seeded: the database already holds contractors.")
            return
        self.stdout.write(
            f"Demo territories: {seeded['contractors']} contractors own {seeded['territories']:,} territories; "
            f"{seeded['free']:,} ZIP x trade pairs of the demo market are free; {seeded['waitlist']} waitlist entries."
        )
