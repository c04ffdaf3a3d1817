from django.core.management.base import BaseCommand, CommandError

from demo.day import leads_demo_day
from demo.guard import ALLOW_PRODUCTION_FLAG, DemoRefused


class Command(BaseCommand):
    help = (
        "Play the demo contractors' day on their assigned leads (read, accept, reject, contact, convert, "
        "return) through the lifecycle services. Run after run_pipeline; deterministic for a seed. Only demo "
        f"contractors' leads are touched; refused without demo contractors, and with DEBUG off unless given "
        f"{ALLOW_PRODUCTION_FLAG}."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="Random seed (42).")
        parser.add_argument("--leads", type=int, default=600, help="Assigned leads the contractors read (600).")
        parser.add_argument(
            "--if-quiet", action="store_true", help="Do nothing once any demo contractor has answered a lead."
        )
        parser.add_argument(
            ALLOW_PRODUCTION_FLAG,
            action="store_true",
            help="Play even with DEBUG off (production settings), in a database meant for the demo.",
        )

    def handle(self, *args, seed, leads, if_quiet, allow_production, **options):
        try:
            day = leads_demo_day(seed=seed, most=leads, only_if_quiet=if_quiet, allow_production=allow_production)
        except DemoRefused as error:
            raise CommandError(str(error)) from None
        if day.skipped:
            self.stdout.write("Demo day not played: the demo contractors have already answered leads.")
            return
        self.stdout.write(
            f"Demo day: {day.delivered:,} leads read, {day.accepted:,} accepted, {day.rejected:,} rejected, "
            f"{day.contacted:,} contacted, {day.converted:,} converted, {day.returned:,} returned."
        )
