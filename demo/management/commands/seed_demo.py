import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.progress import no_progress
from demo.guard import ALLOW_PRODUCTION_FLAG, DemoRefused
from demo.market import IMPORT_ORDER, DemoMarketError, demo_market_seed


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Generate a synthetic market of properties, storms, permits and sales over real ZIP codes, write it "
        "as CSV files and import them like real files. The same --properties and --seed give the same files "
        "on the same day. Writes only into a database without properties or one only seed_demo has written, "
        f"and with DEBUG off only given {ALLOW_PRODUCTION_FLAG}. Exit code 0: every row loaded; 1: refused; "
        "otherwise the worst import exit code (3: rows rejected, 2: a file was not loaded)."
    )

    # Given by a caller in the same process (manage.py setup): a core.progress.Progress.
    stealth_options = ("progress",)

    def add_arguments(self, parser):
        parser.add_argument("--properties", type=positive_int, default=50_000, help="Number of properties (50,000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed (42).")
        parser.add_argument("--out", default=None, help="Directory for the CSV files (DATA_DIR/demo).")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the database already holds properties."
        )
        parser.add_argument(
            ALLOW_PRODUCTION_FLAG,
            action="store_true",
            help="Seed even with DEBUG off (production settings), into a database meant for the demo.",
        )

    def handle(self, *args, properties, seed, out, if_empty, allow_production, progress=no_progress, **options):
        out_dir = settings.DATA_DIR / "demo" if out is None else out
        try:
            seeded = demo_market_seed(
                properties=properties,
                seed=seed,
                out_dir=out_dir,
                only_if_empty=if_empty,
                allow_production=allow_production,
                progress=progress,
            )
        except (DemoMarketError, DemoRefused) as error:
            raise CommandError(str(error)) from None
        if seeded["skipped"]:
            self.stdout.write("Demo market not seeded: the database already holds properties.")
            return
        self.stdout.write(
            f"Demo market: {properties:,} properties, seed {seed}: generated in {seeded['generate_seconds']:.1f} s, "
            f"CSV files written to {out_dir} in {seeded['write_seconds']:.1f} s"
        )
        exit_code = 0
        for kind in IMPORT_ORDER:
            result = seeded["results"].get(kind)
            if result is None:
                self.stderr.write(f"{kind}: not imported, because an earlier file failed")
                exit_code = max(exit_code, 2)
                continue
            (self.stdout if result.exit_code == 0 else self.stderr).write(result.summary())
            exit_code = max(exit_code, result.exit_code)
        if seeded["truth_rows"]:
            self.stdout.write(
                f"Hidden truth: {seeded['truth_rows']:,} property x trade rows drawn in {seeded['truth_seconds']:.1f} s"
            )
        if exit_code:
            sys.exit(exit_code)
