"""manage.py setup: `make setup`'s steps in one process, each numbered and timed, the long ones showing
their progress (a bar on a terminal, a line per milestone in a log); run again it changes nothing; a step
that fails stops it, named, with a non-zero exit code."""

import io
import re

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from contractors.models import Contractor
from core.progress import StepFailed, Steps
from demo.management.commands.setup import STEPS, _stopped
from demo.models import HiddenTruth
from leads.models import Lead
from scoring.models import ImportRun, Property, ScoringRun

pytestmark = pytest.mark.django_db

DONE = re.compile(r"^\[(\d)/9\] (\w+): done in \d+\.\d s$")


def setup(**options) -> list[str]:
    out = io.StringIO()
    call_command("setup", stdout=out, **options)
    return out.getvalue().splitlines()


def test_setup_runs_every_step_once_announced_and_timed_and_again_changes_nothing(zip_codes):
    lines = setup(properties=300, days=2, seed=7)

    # Every step announced with its number and name, then its time, in make setup's order.
    assert [line for line in lines if line.startswith("[") and ":" not in line] == [
        f"[{number}/9] {name}" for number, name in enumerate(STEPS, 1)
    ]
    assert [DONE.match(line).groups() for line in lines if DONE.match(line)] == [
        (str(number), name) for number, name in enumerate(STEPS, 1)
    ]
    assert re.fullmatch(r"Setup done in \d+\.\d s", lines[-1])
    # Not a terminal: the long steps' progress as plain lines, the steps' own messages in between.
    assert "  seed_demo: importing properties: 300 of 300 (100%)" in lines
    assert "  seed_demo: drawing the hidden truth" in lines
    days = [line for line in lines if re.match(r"  simulate_days: \d{4}-\d\d-\d\d: scoring roofing$", line)]
    assert len(days) == 2
    assert "  simulate_days: 2 of 2" not in "\n".join(lines)  # counted in days played: 1 of 2 at most
    assert any(re.match(r"  simulate_days: .*: 1 of 2 \(50%\)$", line) for line in lines)
    assert any(line.startswith("total: ") and "leads made" in line for line in lines)
    assert "Demo staff login created: user demo, password demo" in lines
    # What each step made.
    assert Property.objects.count() == 300
    assert HiddenTruth.objects.exists()
    assert Contractor.objects.filter(is_demo=True).exists()
    scored_days = set(ScoringRun.objects.values_list("as_of", flat=True))
    assert len(scored_days) == 2
    assert Lead.objects.filter(contractor__is_demo=True).exists()
    assert PeriodicTask.objects.filter(name="Nightly run").exists()
    assert set(Group.objects.values_list("name", flat=True)) >= {"Lead manager", "Territory manager", "Ops"}
    assert User.objects.get(username="demo").is_staff
    made = (Property.objects.count(), ImportRun.objects.count(), ScoringRun.objects.count(), Lead.objects.count())

    again = setup(properties=300, days=2, seed=7)

    assert "Demo market not seeded: the database already holds properties." in again
    assert "Demo territories not seeded: the database already holds contractors." in again
    assert "Demo days not played: the demo contractors have already answered leads." in again
    assert "  migrate: no migration to apply" in again
    assert (Property.objects.count(), ImportRun.objects.count(), ScoringRun.objects.count(), Lead.objects.count()) == (
        made
    )


def test_a_failing_step_stops_setup_naming_it_with_a_non_zero_exit(zip_codes, settings):
    settings.DEBUG = False  # the demo steps refuse: this may be a production database
    schedules = PeriodicTask.objects.count()
    out = io.StringIO()

    with pytest.raises(CommandError) as stopped:
        call_command("setup", properties=300, days=2, stdout=out)

    assert str(stopped.value) == (
        "setup stopped at step 3/9 seed_demo: refusing to seed the demo market: DEBUG is off, so this may be a "
        "production database; pass --allow-production to do it anyway"
    )
    assert stopped.value.returncode == 1
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\[3/9\] seed_demo: failed after \d+\.\d s: refusing to seed .*", lines[-1])
    assert not any(line.startswith("[4/9]") for line in lines)
    # Nothing after it ran.
    assert Property.objects.count() == 0
    assert PeriodicTask.objects.count() == schedules
    assert not User.objects.filter(username="demo").exists()


def test_a_step_that_exits_with_a_code_stops_setup_with_that_code():
    steps = Steps(count=2, stream=io.StringIO(), terminal=False)

    with pytest.raises(StepFailed) as failed, steps.step("seed_demo"):
        raise SystemExit(3)  # seed_demo's "rows rejected"

    stopped = _stopped(failed.value)
    assert isinstance(stopped, CommandError)
    assert str(stopped) == "setup stopped at step 1/2 seed_demo: exit code 3"
    assert stopped.returncode == 3


def test_without_a_terminal_progress_is_a_line_per_new_stage_and_per_quarter_of_a_count():
    stream = io.StringIO()
    steps = Steps(count=1, stream=stream, terminal=False)

    with steps.step("simulate_days") as progress:
        progress("reading")
        for done in range(11):
            progress("importing", done, 10)
        progress("day 1: scoring", 0, 4)
        progress("day 1: routing", 0, 4)
        progress("day 2: scoring", 1, 4)
        progress("day 3: scoring", 2, 4)
        print("a message of the step", file=steps.output())

    lines = stream.getvalue().splitlines()
    assert lines[:-1] == [
        "[1/1] simulate_days",
        "  simulate_days: reading",
        "  simulate_days: importing",
        "  simulate_days: importing: 3 of 10 (25%)",
        "  simulate_days: importing: 5 of 10 (50%)",
        "  simulate_days: importing: 8 of 10 (75%)",
        "  simulate_days: importing: 10 of 10 (100%)",
        "  simulate_days: day 1: scoring",
        "  simulate_days: day 1: routing",
        "  simulate_days: day 2: scoring",
        "  simulate_days: day 2: scoring: 1 of 4 (25%)",
        "  simulate_days: day 3: scoring",
        "  simulate_days: day 3: scoring: 2 of 4 (50%)",
        "a message of the step",
    ]
    assert re.fullmatch(r"\[1/1\] simulate_days: done in \d+\.\d s", lines[-1])


def test_on_a_terminal_progress_is_a_bar_redrawn_in_place_and_the_steps_lines_stay():
    stream = io.StringIO()
    steps = Steps(count=1, stream=stream, terminal=True)

    with steps.step("seed_demo") as progress:
        progress("importing properties", 20_000, 50_000)
        steps.output().write("properties: 50,000 rows read\n")
        progress("importing properties", 50_000, 50_000)

    text = stream.getvalue()
    assert "\x1b[" in text  # drawn with the terminal's control sequences
    assert "seed_demo: importing properties" in text
    assert "50000/50000" in text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    kept = [line.strip() for line in re.split(r"[\r\n]", plain) if line.strip()]
    assert kept[0] == "[1/1] seed_demo"
    assert "properties: 50,000 rows read" in kept
    assert re.fullmatch(r"\[1/1\] seed_demo: done in \d+\.\d s", kept[-1])
