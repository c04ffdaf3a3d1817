"""Logging for every process (web, Celery worker and beat, management commands, gunicorn's master): one
configuration, `logging_config`, read from LOG_FORMAT and LOG_LEVEL, whose only handler is the root logger's, so
that each line is written once; and the context a line is logged in (the request it serves, the task and job run
it belongs to), kept in a context variable and added to every record by ContextFilter.

With LOG_FORMAT=json each line is one JSON object: time (ISO 8601, UTC), level, logger, message, the exception's
text when there is one, the context's fields, and any `extra=` fields the call passed.

Imported by gunicorn's configuration before Django is set up: it reads no setting and imports no app.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import logging.config
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured

LOG_FORMATS = ("plain", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Loggers that come with handlers of their own (Django's console and runserver's, gunicorn's): stripped of them
# and sent to the root's, or their lines would be written twice (Django's "django" console handler writes
# under DEBUG beside the root's) or in another format.
ROOTED_LOGGERS = ("django", "django.server", "gunicorn.error", "gunicorn.access")

# The fields of the current request or task, added to each line logged meanwhile.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039 (never mutated)

# A LogRecord's own attributes: any other attribute was given by `extra=` (or ContextFilter) and is written as a
# field of its JSON line.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Django's extras that say nothing a line does not: the request object (request_id names it) and runserver's
# own clock.
_DROPPED = frozenset({"request", "server_time"})


def log_context() -> Mapping[str, Any]:
    """The fields every line logged now carries."""
    return _context.get()


@contextmanager
def log_context_bound(**fields: Any) -> Iterator[None]:
    """Lines logged inside carry `fields` (besides those already bound); as it was again after. An exception
    that leaves the block keeps the fields of where it was raised (exception_context), for what reports it
    outside: Celery's line of a failed task, Sentry's event."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    except Exception as error:
        # The innermost block's, which holds the outer ones'. An exception without attributes of its own
        # (__slots__) goes on without.
        if _EXCEPTION_CONTEXT not in getattr(error, "__dict__", {_EXCEPTION_CONTEXT: None}):
            setattr(error, _EXCEPTION_CONTEXT, _context.get())
        raise
    finally:
        _context.reset(token)


_EXCEPTION_CONTEXT = "log_context"


def exception_context(error: BaseException | None) -> Mapping[str, Any]:
    """The fields bound where `error` was raised, when it left a log_context_bound block; empty otherwise."""
    return getattr(error, _EXCEPTION_CONTEXT, {}) if error is not None else {}


def log_context_set(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Bind `fields` until log_context_reset(token) (for a start and an end in two callbacks, such as
    Celery's task_prerun and task_postrun signals)."""
    return _context.set({**_context.get(), **fields})


def log_context_reset(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds the bound context's fields (request_id, task_id, job_run_id...) to every record, and those of
    where its exception was raised; a field the call passed itself (`extra=`) wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        raised = exception_context(record.exc_info[1]) if record.exc_info else {}
        for name, value in {**raised, **_context.get()}.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, exception (the traceback's text, newlines
    escaped: still one line), then the context's and the call's extra fields. A value JSON cannot hold is
    written as its str()."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in _DROPPED and name not in line and name[0] != "_":
                line[name] = value
        if "exception" in line and isinstance(line.get("data"), dict) and "traceback" in line["data"]:
            # Celery's task lines repeat their traceback in `data` (for its own formats): written once.
            line["data"] = {key: value for key, value in line["data"].items() if key != "traceback"}
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_configure(config: dict[str, Any]) -> None:
    """Apply `config` (LOGGING), and send Python's warnings (a library's UserWarning) through it as lines of the
    py.warnings logger, rather than to stderr in a format of their own (LOGGING_CONFIG; Celery's set-up)."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


def log_format(env: Mapping[str, str]) -> str:
    value = (env.get("LOG_FORMAT") or "plain").strip().lower()
    if value not in LOG_FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT={env['LOG_FORMAT']!r} is not one of: {', '.join(LOG_FORMATS)}")
    return value


def log_level(env: Mapping[str, str]) -> str:
    value = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if value not in LOG_LEVELS:
        raise ImproperlyConfigured(f"LOG_LEVEL={env['LOG_LEVEL']!r} is not one of: {', '.join(LOG_LEVELS)}")
    return value


def logging_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The dictConfig of every process: one handler, the root's, on stderr, in LOG_FORMAT (plain or json), at
    LOG_LEVEL; ImproperlyConfigured naming the variable for a value it cannot read."""
    formatter = log_format(env)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"plain": {"format": PLAIN_FORMAT}, "json": {"()": JsonFormatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": log_level(env)},
        "loggers": {
            "pgserver": {"level": "WARNING"},
            **{name: {"handlers": [], "propagate": True} for name in ROOTED_LOGGERS},
            # gunicorn writes a line per request once given a logging configuration; it wrote none before, and
            # the platform's router logs requests: it still writes none.
            "gunicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }
