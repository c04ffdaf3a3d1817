"""Django's PostgreSQL backend, with a health check that costs no round trip.

A connection kept between requests (CONN_MAX_AGE) is checked before a request uses it (CONN_HEALTH_CHECKS), so
that a server restart costs no request an error. Django checks by running SELECT 1: one more round trip per
request, an eighth of an API request's time under load. Here a connection is usable, without a query, when
the server has written nothing to it since its last answer: an idle connection's server says nothing until
asked. A server that restarts, or ends the connection (pg_terminate_backend, idle timeouts), says so and
closes it, which makes the socket readable; only then is SELECT 1 run, and it fails and the connection is
replaced before the request's first query. A server that vanishes without a word (its machine lost) is seen
by neither check until a query times out."""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        poll = select.poll()
        try:
            poll.register(connection.fileno(), select.POLLIN)
            written = poll.poll(0)
        except (OSError, ValueError):
            return False
        return True if not written else super().is_usable()
