from django.core.management.base import BaseCommand, CommandError

from core.progress import no_progress
from demo.guard import ALLOW_PRODUCTION_FLAG, DemoRefused
from demo.management.commands.seed_demo import positive_int
from demo.simulation import days_simulate


class Command(BaseCommand):
    help = (
        "Play N days of the demo market ending today: each day the nightly run as of that day (scoring, leads "
        "generated, routed, expired), then the demo contractors read, answer and close their leads on that day's "
        "clock, outcomes drawn from the market's hidden truth. Deterministic for a seed; only demo contractors' "
        f"leads are touched. Refused without demo contractors or hidden truth, and with DEBUG off unless given "
        f"{ALLOW_PRODUCTION_FLAG}."
    )

    # Given by a caller in the same process (manage.py setup): a core.progress.Progress.
    stealth_options = ("progress",)

    def add_arguments(self, parser):
        parser.add_argument("--days", type=positive_int, required=True, help="Days to play, ending today.")
        parser.add_argument("--seed", type=int, default=42, help="Random seed of the contractors' moves (42).")
        parser.add_argument(
            "--trades", default="", help="Comma-separated trade slugs (default: every trade with an active model)."
        )
        parser.add_argument(
            "--if-quiet", action="store_true", help="Do nothing once any demo contractor has answered a lead."
        )
        parser.add_argument(
            ALLOW_PRODUCTION_FLAG,
            action="store_true",
            help="Play even with DEBUG off (production settings), in a database meant for the demo.",
        )

    def handle(self, *args, days, seed, trades, if_quiet, allow_production, progress=no_progress, **options):
        slugs = [slug.strip() for slug in trades.split(",") if slug.strip()]
        try:
            simulation = days_simulate(
                days=days,
                seed=seed,
                trades=slugs or None,
                only_if_quiet=if_quiet,
                allow_production=allow_production,
                on_day=lambda day: self.stdout.write(str(day)),
                progress=progress,
            )
        except (DemoRefused, ValueError) as error:
            raise CommandError(str(error)) from None
        if simulation.skipped:
            self.stdout.write("Demo days not played: the demo contractors have already answered leads.")
            return
        self.stdout.write(f"{simulation.total} in {simulation.seconds:.1f} s")
