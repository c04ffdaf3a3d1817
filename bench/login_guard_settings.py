"""Settings of bench/login_guard.py's processes (the runner of one guard and its gunicorn): the project's, with
django-axes installed and the guard LOGIN_GUARD names switched on (see bench/login_guard.py)."""

import os
from datetime import timedelta

from leadengine.settings import *  # noqa: F403
from leadengine.settings import ALLOWED_HOSTS, INSTALLED_APPS, MIDDLEWARE

GUARD = os.environ.get("LOGIN_GUARD", "ours")
PER_USER, PER_ADDRESS, MINUTES = 5, 20, 15

INSTALLED_APPS = [*INSTALLED_APPS, "axes"]  # its tables exist for every guard; AXES_ENABLED says if it runs
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]
LOGIN_FAILURES_PER_USER = PER_USER
LOGIN_FAILURES_PER_ADDRESS = PER_ADDRESS
LOGIN_LOCKOUT_MINUTES = MINUTES
AUTHENTICATION_BACKENDS = ["bench.login_guard.CountingBackend"]
AXES_ENABLED = False
SILENCED_SYSTEM_CHECKS = ["axes.W002", "axes.W003"]  # no axes middleware and backend while it is off

if GUARD != "ours":
    AXES_ENABLED = True
    SILENCED_SYSTEM_CHECKS = []
    AXES_HANDLER = {
        "axes_database": "axes.handlers.database.AxesDatabaseHandler",
        "axes_cache": "axes.handlers.cache.AxesCacheHandler",
        "axes_default_ip": "axes.handlers.database.AxesDatabaseHandler",
        "axes_keep_failures": "axes.handlers.database.AxesDatabaseHandler",
    }[GUARD]
    AXES_FAILURE_LIMIT = PER_USER  # one limit for every parameter: axes has no per-parameter limit
    AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each counted apart
    AXES_USERNAME_CALLABLE = "bench.login_guard.axes_username"
    if GUARD != "axes_default_ip":
        AXES_CLIENT_IP_CALLABLE = "bench.login_guard.axes_client_address"
    AXES_COOLOFF_TIME = timedelta(minutes=MINUTES)
    AXES_RESET_ON_SUCCESS = GUARD != "axes_keep_failures"
    AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # refused attempts do not extend the lock, as ours
    AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]
    MIDDLEWARE = [*MIDDLEWARE, "axes.middleware.AxesMiddleware"]
