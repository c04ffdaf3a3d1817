from django.core.management.base import BaseCommand

from leads.services.demo import leads_demo_day


class Command(BaseCommand):
    help = (
        "Play the demo contractors' day on their assigned leads (read, accept, reject, contact, convert, "
        "return) through the lifecycle services. Run after run_pipeline; deterministic for a seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="Random seed (42).")
        parser.add_argument("--leads", type=int, default=600, help="Assigned leads the contractors read (600).")
        parser.add_argument(
            "--if-quiet", action="store_true", help="Do nothing once any contractor has answered a lead."
        )

    def handle(self, *args, seed, leads, if_quiet, **options):
        day = leads_demo_day(seed=seed, most=leads, only_if_quiet=if_quiet)
        if day.skipped:
            self.stdout.write("Demo day not played: contractors have already answered leads.")
            return
        self.stdout.write(
            f"Demo day: {day.delivered:,} leads read, {day.accepted:,} accepted, {day.rejected:,} rejected, "
            f"{day.contacted:,} contacted, {day.converted:,} converted, {day.returned:,} returned."
        )
