"""The admin login's protection against password guessing, measured: ours (leadengine/security.py) beside
django-axes configured as close to it as axes allows, on the same attacks.

    python bench/login_guard.py [--threads 32] [--attempts 40] [--guards ours axes_database ...]

Each guard runs in a process of its own (settings: bench/login_guard_settings.py) against the bench database
(its own, leadengine_bench_login by default, with axes's tables) and the configured Redis, with the production
password hasher, and meets each attack on a clean slate (failures forgotten in Redis and axes's tables).
What is counted is password checks: the calls the password backend (Django's ModelBackend) gets, in any
process, the only thing a guessing attacker wants. Limits: 5 failures per username, 20 per address (ours;
axes has one limit, 5), 15 minutes.

Attacks (the number is password checks unless said):
- live_race_user: gunicorn as in production (2 workers of 4 threads) serves the admin; --threads HTTP
  clients each fetch the login form, then all post a wrong password for one username at the same moment.
- race_user: the same in-process: --threads test clients, each on its own thread and database connection,
  released by a barrier; no server between them, so every guess is in flight at once (as with several
  servers behind a load balancer).
- race_address: as race_user, each thread a different username, from one address.
- address: --attempts wrong passwords one after another, each for a new username, from one address.
- ipv6_walk: the same, each from a new address inside one IPv6 /64 (which one client commonly holds whole).
- owner_between_guesses: someone who holds an account guesses another username's password, logs in to
  their own, and so on, --attempts times from one address (checks of the others' passwords only).
- right_password_after_4_failures: 4 wrong passwords, a success, 4 more wrong, then the right one: logged
  in (true) or refused (false).
- redis_down_right, redis_down_wrong: the HTTP status of the right password (302: logged in) and of a wrong
  one (200: the form again) while Redis cannot be reached.

Guards: ours; axes_database and axes_cache: django-axes 8 with its database (PostgreSQL) or cache (Redis)
handler, AXES_FAILURE_LIMIT=5, AXES_LOCKOUT_PARAMETERS=["username", "ip_address"] (each counted apart), our
client_address as AXES_CLIENT_IP_CALLABLE (NUM_PROXIES, an IPv6 address by its /64), a case-folding
AXES_USERNAME_CALLABLE, AXES_COOLOFF_TIME 15 minutes, AXES_RESET_ON_SUCCESS, refused attempts not extending
the lock; axes_default_ip: axes_database with axes's own client address (django-ipware);
axes_keep_failures: axes_database without AXES_RESET_ON_SUCCESS (a success resets every failure counted for
the username and for the address alike, or none). The last line
printed is one JSON object: {"bench": "login_guard", ..., guard: {attack: figure, ...}, ...}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import unicodedata
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, bench_database, use_bench_database

GUARDS = ["ours", "axes_database", "axes_cache", "axes_default_ip", "axes_keep_failures"]
DATABASE_SUFFIX = "login"
SETTINGS = "bench.login_guard_settings"
LOGIN = "/admin/login/"
PASSWORD = "correct-horse-battery"
OWNER = "owner"
OFFICE = "192.0.2.10"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
CHECKS_KEY = "bench-login-guard:password-checks"  # in Redis, shared by every process of the run
SERVER_WORKERS, SERVER_THREADS = 2, 4  # the Procfile's


def checks_store():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.CACHE_URL)


def _counting_backend():
    from django.contrib.auth.backends import ModelBackend

    class CountingBackend(ModelBackend):
        """Django's password backend, counting in Redis the checks of any password but the owner's."""

        def authenticate(self, request, username=None, password=None, **kwargs):
            if (username or "").strip().casefold() != OWNER:
                checks_store().incr(CHECKS_KEY)
            return super().authenticate(request, username=username, password=password, **kwargs)

    return CountingBackend


def _wsgi_application():
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    admin_login_form_for_guard()
    return application


_lazy: dict = {}


def __getattr__(name: str):
    """CountingBackend (settings name it) and the gunicorn application, made once Django is set up."""
    makers = {"CountingBackend": _counting_backend, "application": _wsgi_application}
    if name not in makers:
        raise AttributeError(name)
    if name not in _lazy:
        _lazy[name] = makers[name]()
    return _lazy[name]


def axes_client_address(request) -> str:
    """Our client address; an IPv6 /64 written as its first address: axes's database handler keeps addresses
    in a GenericIPAddressField (PostgreSQL inet, through Django's Inet adapter), which refuses "2001:db8::/64"."""
    from leadengine.security import client_address

    return client_address(request).removesuffix("/64")


def axes_username(request, credentials) -> str | None:
    username = (credentials or {}).get("username")
    if username is None:
        username = request.POST.get("username")
    return None if username is None else unicodedata.normalize("NFKC", username).strip().casefold()


def admin_login_form_for_guard() -> None:
    """Axes guards check logins in its authentication backend: the admin gets Django's own login form."""
    from django.conf import settings
    from django.contrib.admin.forms import AdminAuthenticationForm

    from leadengine.sites import LeadEngineAdminSite

    if settings.AXES_ENABLED:
        LeadEngineAdminSite.login_form = AdminAuthenticationForm


def forget_everything() -> None:
    """Every failure any guard counted, the check counter and the users, gone: each attack starts clean."""
    from axes.models import AccessAttempt, AccessLog
    from django.contrib.auth import get_user_model
    from django.core.cache import cache

    store = checks_store()
    for pattern in ("login-failures:*", "axes-*"):
        keys = list(store.scan_iter(match=cache.make_key(pattern)))
        if keys:
            store.delete(*keys)
    store.delete(CHECKS_KEY)
    AccessAttempt.objects.all().delete()
    AccessLog.objects.all().delete()
    get_user_model().objects.all().delete()
    get_user_model().objects.create_user("alice", password=PASSWORD, is_staff=True)
    get_user_model().objects.create_user(OWNER, password=PASSWORD, is_staff=True)


def password_checks() -> int:
    return int(checks_store().get(CHECKS_KEY) or 0)


def log_in(username: str, password: str, address: str = OFFICE) -> int:
    from django.db import connection
    from django.test import Client

    try:
        client = Client(raise_request_exception=False)  # a crash is the 500 a user would get
        response = client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)
    finally:
        connection.close()
    return response.status_code


def together(target, arguments: list) -> None:
    """Call target(*each) on a thread apiece (its own database connection), all released at the same moment."""
    start = threading.Barrier(len(arguments))

    def run(each):
        start.wait()
        target(*each)

    threads = [threading.Thread(target=run, args=(each,)) for each in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def checks_during(attack) -> int:
    forget_everything()
    attack()
    return password_checks()


def http_guess(port: int, username: str, start: threading.Barrier) -> None:
    """Fetch the login form (its CSRF cookie and token), wait for the others, post a wrong password."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", LOGIN)
    response = connection.getresponse()
    page = response.read().decode()
    cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie") or "").group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": "wrong"})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookie}"}
    start.wait()
    connection.request("POST", LOGIN, body, headers)
    connection.getresponse().read()
    connection.close()


def live_race_user(threads: int) -> int:
    """Password checks of `threads` wrong passwords for one username posted at once to a production-like
    gunicorn."""
    from django.conf import settings

    from bench.api import free_port, gunicorn_stop, ready_wait, static_collect

    forget_everything()
    port = free_port()
    static_root = Path(tempfile.mkdtemp(prefix="bench-login-guard-static-"))
    env = os.environ | {
        "STATIC_ROOT": str(static_root),
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",  # plain http on the loopback
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "ERROR",
    }
    command = [
        sys.executable, "-m", "gunicorn", "bench.login_guard:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(SERVER_WORKERS), "--worker-class", "gthread", "--threads", str(SERVER_THREADS),
        "--timeout", "120", "--log-level", "warning",
    ]  # fmt: skip
    static_collect(env)  # production's storage: /readyz answers 503 until the static files are collected
    log = Path(tempfile.mkstemp(prefix="bench-login-guard-", suffix=".log")[1])
    with log.open("w") as out:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        ready_wait(port, server, log)
        start = threading.Barrier(threads)
        together(http_guess, [(port, "alice", start) for _ in range(threads)])
    finally:
        gunicorn_stop(server)
        shutil.rmtree(static_root, ignore_errors=True)
    log.unlink()
    return password_checks()


def attacks(threads: int, attempts: int) -> dict:
    def owner_between_guesses():
        for index in range(attempts):
            log_in(f"someone-{index}", "guess")
            log_in(OWNER, PASSWORD)

    def right_password_after_4_failures() -> bool:
        forget_everything()
        for turn in range(2):
            for index in range(4):
                log_in("alice", f"wrong-{turn}-{index}")
            status = log_in("alice", PASSWORD)
        return status == 302

    def redis_down() -> tuple[int, int]:
        from axes.handlers.proxy import AxesProxyHandler
        from django.conf import settings
        from django.test import override_settings

        forget_everything()
        caches = {"default": {**settings.CACHES["default"], "LOCATION": UNREACHABLE_REDIS}}
        with override_settings(CACHES=caches):
            AxesProxyHandler.get_implementation(force=True)  # the cache handler holds its cache
            statuses = log_in("alice", PASSWORD), log_in("alice", "wrong")
        AxesProxyHandler.get_implementation(force=True)
        return statuses

    right, wrong = redis_down()
    return {
        "live_race_user": live_race_user(threads),
        "race_user": checks_during(lambda: together(log_in, [("Alice", f"wrong-{i}") for i in range(threads)])),
        "race_address": checks_during(lambda: together(log_in, [(f"user-{i}", "wrong") for i in range(threads)])),
        "address": checks_during(lambda: [log_in(f"user-{i}", "wrong") for i in range(attempts)]),
        "ipv6_walk": checks_during(
            lambda: [log_in(f"user-{i}", "wrong", f"2001:db8:0:7::{i + 1:x}") for i in range(attempts)]
        ),
        "owner_between_guesses": checks_during(owner_between_guesses),
        "right_password_after_4_failures": right_password_after_4_failures(),
        "redis_down_right": right,
        "redis_down_wrong": wrong,
    }


def guard_run(threads: int, attempts: int) -> dict:
    """In a process whose settings switch on the guard LOGIN_GUARD names: its figures."""
    import logging

    import django

    django.setup()
    for name in ("axes", "leadengine.security", "django.request", "core.cache"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # a warning per failure would drown the figures
    admin_login_form_for_guard()
    return attacks(threads, attempts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=32, help="guesses posted at once in the races")
    parser.add_argument("--attempts", type=int, default=40, help="guesses one after another in the others")
    parser.add_argument("--guards", nargs="+", choices=GUARDS, default=GUARDS)
    parser.add_argument("--guard-run", choices=GUARDS, help=argparse.SUPPRESS)  # a guard's own process
    args = parser.parse_args()

    if args.guard_run:
        print(json.dumps(guard_run(args.threads, args.attempts)))
        return
    use_bench_database(bench_database(DATABASE_SUFFIX))
    env = os.environ | {"DJANGO_SETTINGS_MODULE": SETTINGS}
    manage = [sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity", "0"]
    subprocess.run(manage, cwd=ROOT, env=env, check=True)
    figures: dict = {"bench": "login_guard", "threads": args.threads, "attempts": args.attempts}
    for guard in args.guards:
        command = [sys.executable, __file__, "--guard-run", guard, "--threads", str(args.threads)]
        command += ["--attempts", str(args.attempts)]
        done = subprocess.run(command, cwd=ROOT, env=env | {"LOGIN_GUARD": guard}, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{guard}: exit code {done.returncode}\n{done.stderr[-5000:]}")
        figures[guard] = json.loads(done.stdout.strip().splitlines()[-1])
        print(guard, figures[guard], file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
