"""Riding out a lost database connection. A unit of work that failed because PostgreSQL went away (a
restart, a failover, a dropped connection) is tried again after a growing wait, until DB_RETRY_SECONDS
have passed since its first failure; then the error is raised to the caller, which records the failure.

Only a whole unit of work is retried, one that is safe to run twice (its own transaction, an upsert, a
claim), and never inside a transaction: the transaction it belonged to is lost with the connection.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

FIRST_WAIT_SECONDS = 0.5
LONGEST_WAIT_SECONDS = 5.0
# SQLSTATE classes and codes that say the server, not the statement, is at fault: connection exceptions
# (08), shutting down or starting up (57P01-57P03), and a transaction that lost a race (40001, 40P01).
TRANSIENT_CLASSES = ("08",)
TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
# Django's classes, and psycopg's own for work that bypasses Django's wrapping of errors (a raw cursor).
CONNECTION_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def is_transient(error: BaseException) -> bool:
    """True when `error` is a lost or refused database connection (or a lost race) that a second try
    may not meet: InterfaceError (the connection is already closed), an OperationalError without an
    SQLSTATE (the server went away mid-statement, the connection was refused) or with one of the
    codes above. A statement timeout, an out-of-range value or a broken constraint is not."""
    if isinstance(error, (InterfaceError, psycopg.InterfaceError)):
        return True
    if not isinstance(error, (OperationalError, psycopg.OperationalError)):
        return False
    cause = error.__cause__ or error
    code = getattr(cause, "sqlstate", None)
    if code is None:
        return True
    return code.startswith(TRANSIENT_CLASSES) or code in TRANSIENT_CODES


def first_line(error: BaseException) -> str:
    """The error's first line: PostgreSQL's messages go on with hints and the statement, which a log line
    about a lost connection does not need."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def connection_reset() -> None:
    """Forget this thread's broken connection, so the next query opens a new one."""
    try:
        connection.close()
    except Exception:  # closing a connection the server already dropped may fail too: it is gone either way
        connection.connection = None


def db_retry(work: Callable[[], T], *, what: str, seconds: float | None = None) -> T:
    """work(), tried again while it fails on a transient database error (is_transient) and fewer than
    `seconds` (DB_RETRY_SECONDS) have passed since the first failure, waiting 0.5 s, 1 s, 2 s, 4 s,
    then 5 s between tries. `what` names the work in the warnings logged."""
    if connection.in_atomic_block:
        return work()  # the caller's transaction is lost with the connection: only it can start again
    budget = settings.DB_RETRY_SECONDS if seconds is None else seconds
    deadline: float | None = None
    wait = FIRST_WAIT_SECONDS
    while True:
        try:
            return work()
        except CONNECTION_ERRORS as error:
            if not is_transient(error):
                raise
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + budget
            if now + wait > deadline:
                log.warning(
                    "%s: the database stayed unreachable for %.0f s; giving up: %s", what, budget, first_line(error)
                )
                raise
            log.warning("%s: the database is unreachable (%s); trying again in %.1f s", what, first_line(error), wait)
            connection_reset()
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)


def db_retrying(what: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of db_retry: the decorated function is the unit of work."""

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return db_retry(lambda: function(*args, **kwargs), what=what)

        return wrapper

    return decorate
