"""LeadEngine settings, read from the environment (see README, "Configuration")."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from core.logs import logging_config
from leadengine.config import (
    broker_url,
    broker_url_beside,
    check_apart,
    check_redis_url,
    embedded_servers,
    env_bool,
    env_currency,
    env_int,
    env_list,
    env_networks,
    env_seconds,
    env_secret,
    env_time_zone,
    parse_database_url,
)
from leadengine.sentry import sentry_init

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ
DATA_DIR = Path(ENV.get("LEADENGINE_DATA_DIR") or BASE_DIR / ".data")

DEBUG = env_bool(ENV, "DEBUG", False)
SECRET_KEY = ENV.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "development-only-key-never-used-in-production-0123456789abcdef"
ALLOWED_HOSTS = env_list(ENV, "ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list(ENV, "CSRF_TRUSTED_ORIGINS", [])

# Data stores: the URLs when set, otherwise servers embedded under DATA_DIR (leadengine/embedded.py), in
# development (DEBUG) or by choice (LEADENGINE_EMBEDDED) only: production without a URL refuses to start.
EMBEDDED_SERVERS = embedded_servers(ENV, debug=DEBUG)
if "DATABASE_URL" not in EMBEDDED_SERVERS:
    DATABASE_URL = ENV["DATABASE_URL"]
else:
    from leadengine.embedded import postgres_url

    DATABASE_URL = postgres_url(DATA_DIR)
if "REDIS_URL" not in EMBEDDED_SERVERS:
    REDIS_URL = check_redis_url(ENV["REDIS_URL"])
else:
    from leadengine.embedded import redis_url

    REDIS_URL = redis_url(DATA_DIR)

DATABASES = {"default": parse_database_url(DATABASE_URL, conn_max_age=env_int(ENV, "DB_CONN_MAX_AGE", 60))}
# Imports stage a file in a temporary table; room for a million rows in memory instead of the 8 MB
# default (a ceiling per session, allocated only when a session uses temporary tables). No JIT: it
# compiled for 150 ms of every 1.4 s partition read of a scoring run and won nothing back.
_options = DATABASES["default"]["OPTIONS"]
_options["options"] = (
    f"{_options.get('options', '')} -c temp_buffers={ENV.get('DB_TEMP_BUFFERS', '256MB')} -c jit=off".strip()
)
# A server that does not answer fails a connection attempt after this many seconds instead of hanging it.
_options.setdefault("connect_timeout", env_int(ENV, "DB_CONNECT_TIMEOUT", 5, minimum=1))
# A server that vanished without closing the connection (a network partition, a host lost) is noticed within
# about a minute by TCP keepalives, instead of the kernel's two hours, and its work is retried or failed.
_options.setdefault("keepalives", 1)
_options.setdefault("keepalives_idle", 30)
_options.setdefault("keepalives_interval", 10)
_options.setdefault("keepalives_count", 3)
# Work that lost its database connection (a restart, a failover) is tried again, with growing waits, for
# this long before it is recorded as failed (core/retry.py): longer than a server restart takes.
DB_RETRY_SECONDS = env_int(ENV, "DB_RETRY_SECONDS", 60, minimum=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache and Celery's broker on Redis databases apart (by default REDIS_URL's and the next one), so that
# clearing the cache (FLUSHDB) never empties the task queue. While Redis cannot be reached, or does not answer
# within CACHE_TIMEOUT_SECONDS, the cache is a miss and its writes are dropped (core/cache_backend.py).
CACHE_URL = check_redis_url(ENV.get("CACHE_URL") or REDIS_URL, "CACHE_URL" if ENV.get("CACHE_URL") else "REDIS_URL")
CACHE_TIMEOUT_SECONDS = env_seconds(ENV, "CACHE_TIMEOUT_SECONDS", 0.5, minimum=0.05)
CACHES = {
    "default": {
        "BACKEND": "core.cache_backend.FallbackRedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "leadengine",
        "OPTIONS": {"socket_connect_timeout": CACHE_TIMEOUT_SECONDS, "socket_timeout": CACHE_TIMEOUT_SECONDS},
    }
}

INSTALLED_APPS = [
    "leadengine.apps.LeadEngineAdminConfig",  # django.contrib.admin with the site of leadengine.sites
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "core",
    "leadengine",
    "scoring",
    "contractors",
    "territories",
    "leads",
    "demo",
]

MIDDLEWARE = [
    # First, so that a request's time includes every other middleware's (leadengine/metrics).
    "leadengine.metrics.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, the dashboard's, Swagger UI's) from STATIC_ROOT, answered before any other
    # middleware runs: see STORAGES below.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Each request's id (X-Request-ID, taken or made) on the lines logged while serving it, and in its answer.
    "core.request_id.RequestIdMiddleware",
    # An unreachable database answers 503 with Retry-After (JSON under /api/), not a 500 or a trace page.
    "leadengine.middleware.DatabaseUnavailableMiddleware",
    "leadengine.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "leadengine.urls"
WSGI_APPLICATION = "leadengine.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone(ENV, "TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Static files in production: `manage.py collectstatic` (the release step, see Procfile) copies them here under
# names holding a hash of their content (admin/css/base.<hash>.css), each beside a gzip copy, and writes the
# manifest that maps a name to its hashed one. WhiteNoise serves them from here: a hashed name cached for ten
# years (immutable: its content never changes), the gzip copy to a browser that accepts it. Without a
# collectstatic the manifest is missing and a page that names a static file fails. In development (DEBUG) names
# are plain and files are read from the apps' folders.
STATIC_ROOT = Path(ENV.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}


# WhiteNoise's hook for a static file's headers: the Content-Security-Policy the site's other answers get (a
# function of this module because WhiteNoise takes a callable; it imports leadengine/csp.py when WhiteNoise
# starts, once these settings are made).
def _static_file_headers(headers, path: str, url: str) -> None:
    from leadengine.csp import static_file_policy

    static_file_policy(headers, path, url)


WHITENOISE_ADD_HEADERS_FUNCTION = _static_file_headers

# Security: production (DEBUG off) passes `manage.py check --deploy`. Behind a proxy that terminates
# TLS, set SECURE_PROXY_SSL_HEADER_ENABLED=true so Django sees the original scheme.
SECURE_SSL_REDIRECT = env_bool(ENV, "SECURE_SSL_REDIRECT", not DEBUG)
# A load balancer probes the process over plain HTTP behind its TLS: the two health probes answer it there
# instead of a redirect to https (paths without the leading slash, anchored: nothing else is exempt).
# Prometheus scrapes /metrics over plain HTTP inside the network too: a redirect would not protect its bearer
# token (the first request has already carried it) and only break the scrape.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool(ENV, "SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool(ENV, "CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int(ENV, "SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool(ENV, "SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool(ENV, "SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (leadengine/csp.py); report-only sends it without enforcing it.
CSP_REPORT_ONLY = env_bool(ENV, "CSP_REPORT_ONLY", False)
if env_bool(ENV, "SECURE_PROXY_SSL_HEADER_ENABLED", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.ApiSchema",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "contractors.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "core.api.throttling.ClientRateThrottle",
        "core.api.throttling.AddressRateThrottle",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # DRF's JSON, written by orjson (core/api/renderers.py); the browsable API for a browser.
    "DEFAULT_RENDERER_CLASSES": [
        "core.api.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # JSON nested deeper than core.api.parsers.MAX_JSON_DEPTH is a parse error, not a server error.
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "core.api.errors.api_exception_handler",
    # The client's address for throttles and the login guard (leadengine.security.client_address): with no
    # proxy in front, the connection's; behind N proxies, the address the nearest of them saw. Never a
    # client-written X-Forwarded-For beyond that.
    "NUM_PROXIES": env_int(ENV, "TRUSTED_PROXIES", 0, minimum=0),
}
# The largest request body read (uploaded files aside): beyond it 413, `too_large` in the API. An API body is a
# few kilobytes; a claim of 10,000 ZIP codes is 100 kB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(ENV, "REQUEST_BODY_MAX_BYTES", 2_621_440, minimum=1024)
# API throttling, per minute (counters in Redis): per key or staff user, per address without
# credentials, and refused keys per address.
API_RATE = f"{env_int(ENV, 'API_RATE_PER_MINUTE', 600, minimum=1)}/min"
API_ANON_RATE = f"{env_int(ENV, 'API_ANON_RATE_PER_MINUTE', 60, minimum=1)}/min"
API_AUTH_FAILURE_RATE = f"{env_int(ENV, 'API_AUTH_FAILURES_PER_MINUTE', 20, minimum=1)}/min"
SPECTACULAR_SETTINGS = {
    "TITLE": "LeadEngine API",
    "DESCRIPTION": "Purchase-intent leads for home-improvement contractors.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No validator badge: it would load an image from swagger.io (refused by the pages' policy) and tell it
    # where the schema lives.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"ReturnReasonEnum": "leads.models.Lead.ReturnReason"},
    # The docs' groups, in this order. Every /api/v1/ operation is tagged with its path's resource
    # (core/api/schema.py), which must be one of these.
    "TAGS": [
        {
            "name": "leads",
            "description": "A contractor's leads: the list (JSON, or CSV for a CRM), one lead with its history, and "
            "what the contractor does with it (accept, contact, convert, reject, return). Staff also assign by hand.",
        },
        {
            "name": "territories",
            "description": "ZIP x trade territories: those held, the ZIPs nobody owns with their demand, claiming "
            "and releasing.",
        },
        {
            "name": "waitlist",
            "description": "Waiting for a territory someone holds: join, leave, and accept the offer when it frees.",
        },
        {
            "name": "statements",
            "description": "My monthly statements: balances, lead charges and credits, territory fees and payments of "
            "each month, and each as CSV.",
        },
        {
            "name": "claim-requests",
            "description": "Claims that wait for staff (a trade closed to self-service, or past its self-service ZIP "
            "limit): mine, withdrawing one; staff approve (the ZIPs are claimed, all or none) or deny with a reason.",
        },
        {
            "name": "profile",
            "description": "The caller's contractor: trades, caps and their use, delivery settings; pausing and "
            "resuming new leads.",
        },
        {
            "name": "runs",
            "description": "Staff only: background runs (scoring, lead generation, the nightly run...) started and "
            "followed.",
        },
        {
            "name": "storms",
            "description": "Staff only: storm reports stored, and the leads of the homes they reach sent at once.",
        },
        {
            "name": "quality",
            "description": "Staff only: lead quality evaluations per trade and scoring model version.",
        },
        {"name": "health", "description": "Liveness and readiness, for load balancers and monitors; no key."},
    ],
}

# Celery: Redis is the broker, on a database of its own (see CACHES). Kombu spells a Unix socket
# redis+socket://...?virtual_host=N; a redis-py unix://...?db=N is turned into that.
if ENV.get("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = broker_url(ENV["CELERY_BROKER_URL"])
else:
    CELERY_BROKER_URL = broker_url_beside(REDIS_URL)
check_apart(CACHE_URL, CELERY_BROKER_URL)
# Sending a task while the broker is down fails within seconds (kombu's OperationalError) instead of holding
# the web request: each connection attempt gives up after CELERY_BROKER_CONNECTION_TIMEOUT, and a publish
# is tried CELERY_TASK_PUBLISH_RETRY_POLICY's max_retries more times, 0.2 s apart.
CELERY_BROKER_CONNECTION_TIMEOUT = env_seconds(ENV, "BROKER_TIMEOUT_SECONDS", 2.0, minimum=0.1)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task a worker took and never acknowledged (it died) goes back to the queue after this many seconds:
# just longer than any task may run (the jobs' hard time limit is 1,860 s, scoring partitions' 660 s), or a
# long job would get a copy. The recovery sweep takes over a dead worker's run within minutes regardless.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 1_920}
# A broker that hangs (accepts, never answers) fails a connection or a command after this long too (2 s at least:
# workers block on the queue for kombu's brpop_timeout, 1 s, within it).
CELERY_BROKER_TRANSPORT_OPTIONS |= {
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    "socket_timeout": max(CELERY_BROKER_CONNECTION_TIMEOUT, 2.0),
}
# django-celery-beat's DatabaseScheduler that records the scheduled runs it could not send as missed, and
# catches each job up once when the broker is back (leadengine/scheduler.py).
CELERY_BEAT_SCHEDULER = "leadengine.scheduler:JobScheduler"
# A queued job run no worker has started this many minutes after its task was sent (its message was lost) is
# sent again once by the recovery sweep, and failed if it still waits this long after (leadengine/services/
# recovery.py); a new request for the job closes it as failed too.
JOB_QUEUE_TIMEOUT_MINUTES = env_int(ENV, "JOB_QUEUE_TIMEOUT_MINUTES", 3, minimum=1)
# A scheduled job is overdue (flagged in the admin, emailed to OPS_EMAILS) when no run of it has succeeded
# since its schedule's last due time that is at least this many minutes old.
JOB_OVERDUE_GRACE_MINUTES = env_int(ENV, "JOB_OVERDUE_GRACE_MINUTES", 30, minimum=1)
# Where the site is reached from outside (links in emails), without a trailing slash.
SITE_URL = ENV.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Who is emailed when a job run fails (Django's email backend: the console while DEBUG is on, SMTP from
# EMAIL_HOST/EMAIL_PORT otherwise).
OPS_EMAILS = env_list(ENV, "OPS_EMAILS", [])
DEFAULT_FROM_EMAIL = ENV.get("DEFAULT_FROM_EMAIL", "leadengine@localhost")
EMAIL_BACKEND = ENV.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = ENV.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int(ENV, "EMAIL_PORT", 25, minimum=1)

# Imports: rows per chunk read from a CSV (memory stays proportional to this, not to the file).
IMPORT_CHUNK_ROWS = env_int(ENV, "IMPORT_CHUNK_ROWS", 100_000, minimum=1)
# A running import writes a heartbeat (and its rows read so far) every second; a run with none for
# IMPORT_STALE_SECONDS was left by a process that died and is closed as failed. Keep it well above DB_RETRY_SECONDS.
IMPORT_STALE_SECONDS = env_int(ENV, "IMPORT_STALE_SECONDS", 300, minimum=10)
# Files staff upload in the admin (Import runs > Import a file) are written straight into IMPORT_UPLOAD_DIR, one
# uniquely named file per upload, and imported from there by a Celery worker: the site and every worker must see
# the same directory. An upload larger than IMPORT_UPLOAD_MAX_BYTES is refused as it arrives (never written whole).
IMPORT_UPLOAD_DIR = Path(ENV.get("IMPORT_UPLOAD_DIR") or BASE_DIR / "var" / "uploads")
IMPORT_UPLOAD_MAX_BYTES = env_int(ENV, "IMPORT_UPLOAD_MAX_BYTES", 4 * 1024**3, minimum=1)

# Scoring runs: properties per partition (memory follows this), tries for a partition that loses its
# connection (and sendings of a partition no worker takes), and how long a run or a partition's lease may
# go without a heartbeat (beaten every sixth of it) before its process or worker counts as stopped.
SCORING_PARTITION_ROWS = env_int(ENV, "SCORING_PARTITION_ROWS", 100_000, minimum=1)
SCORING_PARTITION_ATTEMPTS = env_int(ENV, "SCORING_PARTITION_ATTEMPTS", 3, minimum=1)
SCORING_RUN_STALE_SECONDS = env_int(ENV, "SCORING_RUN_STALE_SECONDS", 60, minimum=1)
# The storm fast path (leadengine.flows.imports_rescore): an import reaching more properties than this is left to
# the nightly run, which scores them all faster per property than a rescoring would (a county's property file).
RESCORE_MAX_PROPERTIES = env_int(ENV, "RESCORE_MAX_PROPERTIES", 200_000, minimum=1)
# The task a distributed scoring run's close sends by name (scoring imports no operations code): the scoring
# job waiting for the run ends, and its nightly chain moves on (leadengine.tasks.scoring_run_ended).
SCORING_RUN_ENDED_TASK = "leadengine.scoring_run_ended"

# Logs (core/logs.py): each line once, from the root logger, on stderr; LOG_FORMAT=json writes one JSON object per
# line with the request's id (X-Request-ID) or the task's and job run's. Celery's workers and beat keep it too
# (leadengine/celery.py), and gunicorn's own lines follow it (gunicorn.conf.py).
LOGGING = logging_config(ENV)
LOGGING_CONFIG = "core.logs.logging_configure"
# Error reports (leadengine/sentry.py): with SENTRY_DSN set, the site's and the tasks' exceptions go to Sentry.
SENTRY_ENABLED = sentry_init(ENV, debug=DEBUG)

# Territories: when a territory is released, the first eligible contractor on its waitlist gets an offer
# valid this many hours, or, with auto-claim on, the territory itself at once.
TERRITORY_OFFER_HOURS = env_int(ENV, "TERRITORY_OFFER_HOURS", 48, minimum=1)
TERRITORY_WAITLIST_AUTO_CLAIM = env_bool(ENV, "TERRITORY_WAITLIST_AUTO_CLAIM", False)

# Leads: an assigned lead not accepted within LEAD_ACCEPT_SLA_HOURS expires, and so does a lead left in
# the unassigned pool for LEAD_POOL_DAYS. A contractor may return a delivered or accepted lead for
# LEAD_RETURN_WINDOW_DAYS after delivery; returns beyond LEAD_RETURN_RATE_PERCENT of its leads of the
# month (its time zone) wait for staff approval.
LEAD_ACCEPT_SLA_HOURS = env_int(ENV, "LEAD_ACCEPT_SLA_HOURS", 72, minimum=1)
LEAD_POOL_DAYS = env_int(ENV, "LEAD_POOL_DAYS", 14, minimum=1)
LEAD_RETURN_WINDOW_DAYS = env_int(ENV, "LEAD_RETURN_WINDOW_DAYS", 7, minimum=0)
LEAD_RETURN_RATE_PERCENT = env_int(ENV, "LEAD_RETURN_RATE_PERCENT", 15, minimum=0)

# Money: every price, charge, credit, fee and payment is in this one currency (ISO 4217), as Decimal.
CURRENCY = env_currency(ENV, "CURRENCY", "USD")

# Learning (leads/services/learning.py, manage.py learn_model): a trade needs LEARN_MIN_OUTCOMES leads with a
# known outcome to learn a new scoring model version from. A learned draft activates itself only when
# LEARN_AUTO_ACTIVATE is on and its held-out AUC is above the active version's whole 95% interval; otherwise
# staff compare the backtest in the draft's preview and activate it themselves.
LEARN_MIN_OUTCOMES = env_int(ENV, "LEARN_MIN_OUTCOMES", 500, minimum=1)
LEARN_AUTO_ACTIVATE = env_bool(ENV, "LEARN_AUTO_ACTIVATE", False)

# Webhooks: each POST of a lead waits WEBHOOK_TIMEOUT_SECONDS; a failed one is retried after
# WEBHOOK_BACKOFF_SECONDS x 2^(n-1) plus up to a quarter of that at random, up to WEBHOOK_MAX_ATTEMPTS in all.
WEBHOOK_TIMEOUT_SECONDS = env_int(ENV, "WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
WEBHOOK_MAX_ATTEMPTS = env_int(ENV, "WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_BACKOFF_SECONDS = env_int(ENV, "WEBHOOK_BACKOFF_SECONDS", 60, minimum=1)
# POSTs a delivery run has under way at once (threads of its worker; contractors/services/webhook_posts.py).
WEBHOOK_CONCURRENCY = env_int(ENV, "WEBHOOK_CONCURRENCY", 16, minimum=1)
# Webhook targets (contractors/services/webhook_targets.py): https only, unless DEBUG or WEBHOOK_ALLOW_HTTP is on;
# public addresses only, unless WEBHOOK_ALLOW_PRIVATE_TARGETS lets loopback, private and carrier-grade NAT ones
# through for receivers on the premises (cloud metadata, link-local and reserved addresses never).
WEBHOOK_ALLOW_HTTP = env_bool(ENV, "WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool(ENV, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False)

# Admin login (leadengine/security.py): a username with LOGIN_FAILURES_PER_USER failed logins, or a client
# address (see NUM_PROXIES above; an IPv6 address by its /64) with LOGIN_FAILURES_PER_ADDRESS, within
# LOGIN_LOCKOUT_MINUTES of the first, is refused for LOGIN_LOCKOUT_MINUTES without its password being checked.
LOGIN_FAILURES_PER_USER = env_int(ENV, "LOGIN_FAILURES_PER_USER", 5, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = env_int(ENV, "LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int(ENV, "LOGIN_LOCKOUT_MINUTES", 15, minimum=1)

# Prometheus metrics at /metrics (leadengine/metrics): off (404) unless METRICS_TOKEN (a bearer token) or
# METRICS_ALLOWED_ADDRESSES (addresses and CIDR networks, matched against the client address: see NUM_PROXIES
# above) is set; with both, a scrape needs both. With PROMETHEUS_MULTIPROC_DIR set (gunicorn, gunicorn.conf.py),
# every worker process's request figures are added up there.
METRICS_TOKEN = env_secret(ENV, "METRICS_TOKEN", minimum_length=16)
METRICS_ALLOWED_ADDRESSES = env_networks(ENV, "METRICS_ALLOWED_ADDRESSES")
