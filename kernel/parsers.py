"""Request body parsing for the REST API: one JSON parser, strict and bounded.

`rest_framework.parsers.JSONParser` (the stdlib `json` module) lets three hostile inputs through to a 500:
JSON nested ~1,000 deep raises RecursionError inside `json`, lone surrogates ("\\ud800") decode into `str`
values that later fail to encode (idempotency hashing, audit rows, logs), and any later recursive walk of a deep
value (repr, serializers, canonical JSON) can overflow the stack. orjson refuses invalid UTF-8 and lone
surrogates, and we refuse nesting beyond MAX_JSON_DEPTH before the data reaches a view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

__all__ = ["MAX_JSON_DEPTH", "BodyTooLarge", "JsonTooDeep", "OrjsonParser", "json_depth_exceeds", "loads_bounded"]

# No request of this API nests deeper than 3; 32 leaves room and stays far below any recursion limit.
MAX_JSON_DEPTH = 32


# DRF exceptions, not kernel.errors.ApplicationError: DRF imports this module while kernel.errors is
# still importing rest_framework.views (APIView reads DEFAULT_PARSER_CLASSES at class creation). The DRF handler
# answers them with their default_code as the error code.
class JsonTooDeep(APIException):
    status_code = 400
    default_code = "json_too_deep"
    default_detail = "JSON nests too deep"


class BodyTooLarge(APIException):
    status_code = 413
    default_code = "body_too_large"
    default_detail = "request body is too large"


def json_depth_exceeds(value: Any, *, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit` (a scalar has depth 0, `[]` depth 1).

    Iterative on purpose: a recursive walk is what overflows on hostile input."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (Mapping, list)))
    return False


def loads_bounded(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse UTF-8 JSON; ParseError on invalid JSON/UTF-8/lone surrogates, JsonTooDeep past `max_depth`.

    orjson parses up to 1024 levels without recursing in Python, so the depth check runs on the parsed value."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON: {exc}") from exc
    if json_depth_exceeds(data, limit=max_depth):
        raise JsonTooDeep(f"JSON nests deeper than {max_depth} levels")
    return data


class OrjsonParser(BaseParser):
    """DRF parser for application/json. The body is always decoded as UTF-8 (RFC 8259 §8.1): a declared
    charset is ignored, and a body that is not UTF-8 is malformed."""

    media_type = "application/json"

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        # DRF hands us the raw request stream, which Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not guard.
        limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
        return loads_bounded(raw)
