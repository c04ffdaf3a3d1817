"""Error reports to Sentry (or a service that speaks its protocol), when SENTRY_DSN is set: exceptions of the
site's requests (DjangoIntegration) and of Celery's tasks (CeleryIntegration), with error lines logged anywhere,
tagged with the request's or task's and job run's ids (core/logs.py) so that an event leads to its lines. No
personal data is sent (send_default_pii off: no cookies, no user, no client address). SENTRY_DSN unset: the SDK
is never initialised. Called once by the settings, so web, workers, beat and commands all report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

from core.logs import exception_context, log_context
from leadengine.config import env_fraction

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint


def _tagged(event: Event, hint: Hint) -> Event:
    """The event with the ids of the request or task it happened in (before_send runs in its thread), and of
    the job run its exception left."""
    raised = hint.get("exc_info")
    context = {**exception_context(raised[1] if raised else None), **log_context()}
    if context:
        event.setdefault("tags", {}).update({name: str(value) for name, value in context.items()})
    return event


def sentry_init(env: Mapping[str, str], *, debug: bool) -> bool:
    """Initialise sentry-sdk from SENTRY_DSN, SENTRY_ENVIRONMENT (default production, or development under
    DEBUG) and SENTRY_TRACES_SAMPLE_RATE (0 to 1, default 0: no performance traces); whether it was.
    ImproperlyConfigured naming the variable for a value that cannot be read."""
    dsn = (env.get("SENTRY_DSN") or "").strip()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(dsn)
    except BadDsn as error:
        raise ImproperlyConfigured(
            f"SENTRY_DSN is not a Sentry DSN ({error}); it looks like https://<public key>@<host>/<project id>"
        ) from None
    sentry_sdk.init(
        dsn=dsn,
        environment=(env.get("SENTRY_ENVIRONMENT") or "").strip() or ("development" if debug else "production"),
        traces_sample_rate=env_fraction(env, "SENTRY_TRACES_SAMPLE_RATE", 0.0),
        send_default_pii=False,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        before_send=_tagged,
    )
    return True
