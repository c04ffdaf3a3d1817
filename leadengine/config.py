"""Parsing of settings from the environment (12-factor).

Every parser raises ImproperlyConfigured with the variable's name when a value cannot be read, so a
typo in a deployment's environment stops the process at start-up instead of misbehaving later.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", "f", ""})
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "pgsql"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})  # redis-py's spellings (the cache)
BROKER_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "unix"})  # kombu's, and redis-py's socket
SOCKET_SCHEMES = frozenset({"unix", "redis+socket"})
REDIS_DATABASES = 16  # a Redis server's databases unless configured otherwise: 0 to 15


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, yes/no, 1/0)")


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


# The data stores' variables, each with the shape of its URL (for the message naming an unset one).
DATA_STORE_VARIABLES = {"DATABASE_URL": "postgres://user:password@host:5432/name", "REDIS_URL": "redis://host:6379/0"}


def embedded_servers(env: Mapping[str, str], *, debug: bool) -> tuple[str, ...]:
    """Which of DATABASE_URL and REDIS_URL the embedded servers stand in for (leadengine/embedded.py): those
    unset, when LEADENGINE_EMBEDDED allows it (by default, DEBUG's value). Otherwise an unset URL stops the
    process naming it, so that a production deployment that lost a variable never quietly serves (and keeps)
    its data in a PostgreSQL of its own on the web server's disk."""
    unset = tuple(name for name in DATA_STORE_VARIABLES if not env.get(name))
    if unset and not env_bool(env, "LEADENGINE_EMBEDDED", debug):
        names = " and ".join(f"{name} ({DATA_STORE_VARIABLES[name]})" for name in unset)
        when = "LEADENGINE_EMBEDDED is false" if debug else "DEBUG is off"
        raise ImproperlyConfigured(
            f"{names} must be set when {when}; LEADENGINE_EMBEDDED=true starts embedded servers under "
            "LEADENGINE_DATA_DIR instead, for a one-box demo"
        )
    return unset


def env_list(env: Mapping[str, str], name: str, default: list[str]) -> list[str]:
    raw = env.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(env: Mapping[str, str], name: str) -> list[str]:
    """A comma-separated list of addresses and CIDR networks (10.0.0.5, 10.0.0.0/8, fd00::/8), each as a network
    (an address is a network of one); bits set beyond a network's prefix are refused, as a sign of a typo."""
    networks = []
    for item in env_list(env, name, []):
        try:
            networks.append(str(ipaddress.ip_network(item)))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an address or a network in CIDR notation (10.0.0.0/8, fd00::/8): {error}"
            ) from None
    return networks


def env_secret(env: Mapping[str, str], name: str, *, minimum_length: int) -> str:
    """A secret such as a bearer token: empty (unset), or at least `minimum_length` characters, printable ASCII
    without spaces (it travels in an HTTP header)."""
    value = env.get(name, "").strip()
    if not value:
        return ""
    if not (value.isascii() and value.isprintable()) or any(character.isspace() for character in value):
        raise ImproperlyConfigured(f"{name} must be printable ASCII without spaces (it is sent in an HTTP header)")
    if len(value) < minimum_length:
        raise ImproperlyConfigured(
            f"{name} is {len(value)} characters long; use at least {minimum_length} random ones "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return value


def env_time_zone(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name}={value!r} is not an IANA time zone such as America/Denver") from None
    return value


def env_currency(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    if not (len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()):
        raise ImproperlyConfigured(f"{name}={value!r} is not an ISO 4217 currency code such as USD")
    return value


def parse_database_url(url: str, *, conn_max_age: int = 60) -> dict:
    """Turn postgres://user:password@host:port/name?option=value into a Django DATABASES entry.

    A host that is a path (postgresql:///db?host=/run/postgresql, or a %2F-encoded host) is a Unix
    socket directory, as libpq reads it. Query options other than host/port go to the driver.
    """
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a PostgreSQL URL (postgres://user:password@host:5432/name); "
            f"got scheme {parts.scheme!r}. LeadEngine runs on PostgreSQL only."
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL names no database (postgres://host:5432/<name>)")
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", None) or unquote(parts.hostname or "")
    try:
        port = options.pop("port", None) or (str(parts.port) if parts.port else "")
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL has an invalid port: {parts.netloc!r}") from None
    return {
        "ENGINE": "core.postgresql",  # Django's, with a health check that costs no round trip
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": port,
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


def env_seconds(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    """A duration in seconds, fractions allowed (0.5)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number of seconds") from None
    if not value >= minimum or value == float("inf"):  # also refuses nan
        raise ImproperlyConfigured(f"{name}={raw.strip()} must be a number of seconds of at least {minimum:g}")
    return value


def env_fraction(env: Mapping[str, str], name: str, default: float) -> float:
    """A number from 0 to 1 (a sampling rate)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number from 0 to 1") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise ImproperlyConfigured(f"{name}={raw.strip()} must be from 0 to 1")
    return value


def _redis_parts(url: str, name: str, schemes: frozenset[str]):
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        spelled = ", ".join(f"{scheme}://" for scheme in sorted(schemes))
        raise ImproperlyConfigured(f"{name} must start with one of {spelled}; got {url!r}")
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port: {parts.netloc!r}") from None
    if parts.scheme in SOCKET_SCHEMES and not parts.path.strip("/"):
        raise ImproperlyConfigured(f"{name} names no socket file ({parts.scheme}:///path/to/redis.sock)")
    return parts


def _database_number(raw: str, name: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} selects database {raw!r}, which is not a whole number") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} selects database {number}, which is below 0")
    return number


def redis_database(url: str, *, name: str = "REDIS_URL") -> int:
    """The database a redis-py URL selects, as redis-py reads it: `?db=N`, else the path
    (redis://host:6379/N), else 0. A Unix socket URL takes only `?db=N`."""
    parts = _redis_parts(url, name, REDIS_SCHEMES)
    query = dict(parse_qsl(parts.query))
    if "db" in query:
        return _database_number(query["db"], name)
    if parts.scheme != "unix" and parts.path.strip("/"):
        return _database_number(unquote(parts.path.strip("/")), name)
    return 0


def check_redis_url(url: str, name: str = "REDIS_URL") -> str:
    """A redis-py URL (redis://, rediss://, unix://) whose database number can be read."""
    redis_database(url, name=name)
    return url


def redis_url_on_database(url: str, database: int) -> str:
    """The same redis-py URL, selecting `database` instead."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"]
    if parts.scheme == "unix":
        # urlunsplit would drop the empty host's "//" (unix:/path), which the clients do not read
        return f"unix://{parts.netloc}{parts.path}?{urlencode([*query, ('db', database)])}"
    return urlunsplit(parts._replace(path=f"/{database}", query=urlencode(query)))


def broker_database(cache_database: int) -> int:
    """The broker's database beside the cache's: the next one, or the one before for the last of Redis's
    16 (0 -> 1, 14 -> 15, 15 -> 14)."""
    return cache_database + 1 if cache_database < REDIS_DATABASES - 1 else cache_database - 1


def broker_url(url: str, *, name: str = "CELERY_BROKER_URL") -> str:
    """A broker URL as Celery's Redis transport (kombu) spells it: redis://host:6379/N, rediss://...,
    and a Unix socket redis+socket:///path/redis.sock?virtual_host=N (a redis-py unix://...?db=N is
    turned into that). Options kombu cannot take are refused here, not at the first task sent."""
    parts = _redis_parts(url, name, BROKER_SCHEMES)
    query = parse_qsl(parts.query)
    if parts.scheme in SOCKET_SCHEMES:
        database = next((value for key, value in query if key in {"db", "virtual_host"}), "0")
        database = _database_number(database, name)
        rest = [(key, value) for key, value in query if key not in {"db", "virtual_host"}]
        return f"redis+socket://{parts.netloc}{parts.path}?{urlencode([*rest, ('virtual_host', database)])}"
    unknown = sorted({key for key, _ in query if not key.startswith("ssl_")})
    if unknown:
        raise ImproperlyConfigured(
            f"{name} has option(s) {', '.join(unknown)} that Celery's broker cannot take: select the database "
            f"in the path (redis://host:6379/N) and keep only ssl_* options"
        )
    database = _database_number(unquote(parts.path.strip("/")) or "0", name)
    return urlunsplit(parts._replace(path=f"/{database}"))


def broker_url_beside(url: str) -> str:
    """The broker URL derived from REDIS_URL: the same server, on the database after the cache's
    (broker_database), so that clearing the cache (FLUSHDB) never empties the task queue."""
    database = broker_database(redis_database(url))
    return broker_url(redis_url_on_database(url, database), name="REDIS_URL")


def redis_location(url: str, *, name: str) -> tuple[str, str, int, int]:
    """Where a cache or broker URL points: (transport, host or socket path, port, database), to tell
    whether two URLs share a database."""
    parts = urlsplit(url)
    if parts.scheme in SOCKET_SCHEMES:
        query = dict(parse_qsl(parts.query))
        database = query.get("db", query.get("virtual_host", "0"))
        return ("socket", unquote(parts.path), 0, _database_number(database, name))
    host = (parts.hostname or "localhost").lower()
    host = "127.0.0.1" if host == "localhost" else host
    return ("tcp", host, parts.port or 6379, redis_database(url, name=name))


def check_apart(cache_url: str, broker: str) -> None:
    """Refuse a cache and a broker on one Redis database: a cache clear (FLUSHDB) would empty the queue."""
    cache_at = redis_location(cache_url, name="CACHE_URL")
    broker_at = redis_location(broker, name="CELERY_BROKER_URL")
    if cache_at == broker_at:
        raise ImproperlyConfigured(
            f"CACHE_URL and CELERY_BROKER_URL are both Redis database {cache_at[3]} of {cache_at[1]}: clearing the "
            "cache would empty the task queue. Give the broker a database of its own."
        )
