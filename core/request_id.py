"""Every request has an id: the X-Request-ID a proxy or client sent, when it is well formed (at most
REQUEST_ID_MAX_LENGTH letters, digits and . _ - : + = /), or a new one. Each line logged while the request is
served carries it (request_id, core/logs.py), and the response answers it in its X-Request-ID header, so that a
client's report, the proxy's log and the site's lines can be matched. A malformed id (too long, spaces, quotes,
line breaks that would forge log lines) is not refused: it is replaced, as if none had been sent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.logs import log_context_bound

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MAX_LENGTH = 128
WELL_FORMED = re.compile(rf"[A-Za-z0-9._:+=/-]{{1,{REQUEST_ID_MAX_LENGTH}}}")


def request_id_for(sent: str | None) -> str:
    """The id of a request that sent `sent` (None: no header): the same when well formed, a new one
    (32 hexadecimal digits) otherwise."""
    if sent is not None and WELL_FORMED.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Binds the request's id to the lines logged while it is served and answers it in X-Request-ID. Placed
    near the top of MIDDLEWARE, so that what the other middleware log carries it too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]  # for views that quote it
        with log_context_bound(request_id=request_id):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
