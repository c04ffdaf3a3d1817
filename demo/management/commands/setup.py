import time

from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError
from django.core.management.commands import migrate
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from core.progress import Progress, StepFailed, Steps
from demo.management.commands.seed_demo import positive_int

# What `make setup` runs, in order. Each step is the command of that name, run in this process (with the
# options `handle` gives it, and a Progress when it takes one), so that each keeps its own messages, refusals
# and idempotence, and still runs on its own.
STEPS = ("migrate", "load_zipcodes", "seed_demo", "seed_demo_territories", "simulate_days", "refresh_dashboard",
         "seed_schedules", "seed_roles", "ensure_demo_user")  # fmt: skip


class Command(BaseCommand):
    help = (
        "Set up a development machine in one process: migrate, load the ZIP reference, seed the demo market "
        "and its contractors (once), play its last --days days (once), compute the dashboard's figures, create the "
        "missing job schedules, the "
        "staff roles and the demo login. Each step is announced with its number and its time; long steps show "
        "a progress bar on a terminal, a line per milestone otherwise. A failing step stops setup, naming it "
        "(exit code 1, or the step's own). Every step is also a command of its own."
    )

    def add_arguments(self, parser):
        parser.add_argument("--properties", type=positive_int, default=50_000, help="Demo market size (50,000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed of the market and the days (42).")
        parser.add_argument("--days", type=positive_int, default=30, help="Days of the demo market to play (30).")

    def handle(self, *args, properties, seed, days, **options):
        options_of = {
            "seed_demo": {"properties": properties, "seed": seed, "if_empty": True},
            "seed_demo_territories": {"if_empty": True},
            "simulate_days": {"days": days, "seed": seed, "if_quiet": True},
        }
        steps = Steps(count=len(STEPS), stream=getattr(self.stdout, "_out", self.stdout))
        started = time.monotonic()
        for name in STEPS:
            try:
                with steps.step(name) as progress:
                    output = steps.output()
                    if name == "migrate":
                        command = MigrateShowingProgress(progress, stdout=output, stderr=output)
                        call_command(command, interactive=False, verbosity=0)
                    else:
                        command = load_command_class(get_commands()[name], name)
                        shown = {"progress": progress} if "progress" in command.stealth_options else {}
                        call_command(command, stdout=output, stderr=output, **shown, **options_of.get(name, {}))
                    output.close()
            except StepFailed as failed:
                raise _stopped(failed) from None
        self.stdout.write(f"Setup done in {time.monotonic() - started:.1f} s")


def _stopped(failed: StepFailed) -> BaseException:
    """What stops setup: a CommandError naming the step that failed, with the step's exit code (1 unless it
    exited with another); a fault of the code is raised as it is (its traceback), the step named above it."""
    error = failed.error
    if isinstance(error, CommandError):
        return CommandError(f"setup stopped at step {failed.step}: {error}", returncode=error.returncode)
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) and error.code else 1
        return CommandError(f"setup stopped at step {failed.step}: exit code {error.code}", returncode=code)
    return error


class MigrateShowingProgress(migrate.Command):
    """Django's migrate, telling each migration applied to a Progress (counted against the plan) instead of
    printing it."""

    def __init__(self, progress: Progress, **kwargs):
        super().__init__(**kwargs)
        self.progress = progress
        self.planned = 0
        self.applied = 0

    def handle(self, *args, **options):
        executor = MigrationExecutor(connections[options["database"]])
        self.planned = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        self.progress("applying migrations" if self.planned else "no migration to apply", 0, self.planned or None)
        return super().handle(*args, **options)

    def migration_progress_callback(self, action, migration=None, fake=False):
        if action == "apply_success":
            self.applied += 1
            self.progress("applying migrations", self.applied, self.planned)
