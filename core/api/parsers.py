"""Request bodies: JSON whatever its shape, without a server error. Python's decoder recurses once per level of
nesting, so a body of 100,000 brackets would exhaust the stack; and how deep it gets before that depends on the
stack already in use. A fixed bound says the same to every request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Far deeper than any body the API takes ({"zip_codes": [...]} is 2), far shallower than the stack allows.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(data: object, limit: int) -> bool:
    """True when `data` (decoded JSON) nests lists and objects deeper than `limit`; walked without recursion."""
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        pending.extend((inner, depth + 1) for inner in value if isinstance(inner, (dict, list)))
    return False


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested deeper than MAX_JSON_DEPTH a 400 parse_error."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        too_deep = ParseError(f"JSON parse error - the body is nested deeper than {MAX_JSON_DEPTH} levels.")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise too_deep
        return data
