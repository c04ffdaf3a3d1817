"""The base of every domain error: a refusal a user is told (staff in the admin or a command, a client of the
API), as opposed to a fault of the code. Apps keep theirs in `<app>/errors.py` (the odd one lives beside the
only service that raises it: JobError, LoginLocked, the demo's refusals), deriving from DomainError with a
stable `code` and an `http_status`; the API renders any of them the same way (core/api/errors.py):
{"code": code, "detail": detail, "fields": {}} plus body_extra(), with http_status.

Errors that say the code is wrong (a ValueError of a pure function, a lost lease) are not domain errors: the
API answers them 500 and they are logged."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused request; the message says why. `code` is stable, for programs; `http_status` is the API's
    answer (409 unless the error says otherwise: the request conflicts with the state of things). Both are
    class attributes that an instance may override, for an error whose code depends on its case."""

    code: str = "domain_error"
    http_status: int = 409

    def __init__(self, *args: object, code: str | None = None, http_status: int | None = None):
        super().__init__(*args)
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status

    @property
    def detail(self) -> str:
        """What an API client is told: the message, unless the error tells outsiders less than staff."""
        return str(self)

    def body_extra(self) -> dict[str, Any]:
        """Fields the API body carries besides code, detail and fields (listed in the schema's Error)."""
        return {}
