"""One error type with stable codes, and the mappings to HTTP JSON and WebSocket error frames."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from django.http import HttpResponseBase, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

logger = logging.getLogger(__name__)

_R = TypeVar("_R", bound=HttpResponseBase)


class ApplicationError(Exception):
    """A domain error with a stable machine-readable `code` (tests and clients match on it)."""

    code = "application_error"
    status = 400

    def __init_subclass__(cls, *, code: str | None = None, status: int | None = None, **kw: Any) -> None:
        """`class NotFound(ApplicationError, code="not_found", status=404)`: a subclass names its code and status."""
        super().__init_subclass__(**kw)
        if code is not None:
            cls.code = code
        if status is not None:
            cls.status = status

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        body.update(self.extra)
        return body


class ValidationFailed(ApplicationError, code="invalid_input", status=400): ...


class NotAuthenticated(ApplicationError, code="authentication_required", status=401): ...


class PermissionDenied(ApplicationError, code="permission_denied", status=403): ...


class NotFound(ApplicationError, code="not_found", status=404): ...


class Conflict(ApplicationError, code="conflict", status=409): ...


class RateLimited(ApplicationError, code="rate_limited", status=429):
    def __init__(self, message: str = "Too many requests.", *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = _whole_seconds(retry_after)


class UpstreamUnavailable(ApplicationError, code="upstream_unavailable", status=503): ...


class DependencyUnavailable(ApplicationError, code="temporarily_unavailable", status=503):
    """Our own database or shared cache failed mid-request (a restart, the network): retry shortly — not a bug."""

    retry_after = 2

    def __init__(self, message: str = "a dependency (database or cache) is unavailable; retry shortly", **kw: Any):
        super().__init__(message, **kw)
        self.extra.setdefault("retry_after_s", self.retry_after)


def is_dependency_failure(exc: BaseException) -> bool:
    """The database or the shared cache failed (restart, network): a 503 to retry, not a 500 bug."""
    from django.db import DatabaseError

    if isinstance(exc, DatabaseError | ConnectionError | TimeoutError | OSError):
        return True
    module = type(exc).__module__
    return module.startswith("redis") or module.startswith("psycopg")


class UpstreamRateLimited(UpstreamUnavailable, code="upstream_rate_limited", status=429):
    """Nothing to serve because of pace — our venue budget or the venue's rate limit — not because the venue is down:
    a 429 with Retry-After, which callers that can serve something older still catch as UpstreamUnavailable."""

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = _whole_seconds(retry_after)


def _whole_seconds(retry_after: float) -> int:
    """Retry-After carries whole seconds: round up, and never tell a client to retry at once."""
    return max(1, int(retry_after + 0.999))


def _with_retry_after(response: _R, error: ApplicationError) -> _R:
    if isinstance(error, RateLimited | UpstreamRateLimited | DependencyUnavailable):
        response["Retry-After"] = str(error.retry_after)
    return response


def error_response(error: ApplicationError) -> JsonResponse:
    return _with_retry_after(JsonResponse(error.as_dict(), status=error.status), error)


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map ApplicationError and DRF's own errors to `{"type":"error","code","message"}` bodies."""
    if isinstance(exc, ApplicationError):
        return _with_retry_after(Response(exc.as_dict(), status=exc.status), exc)
    default = drf_default_handler(exc, context)
    if default is None:
        return None
    response: Response = default
    if isinstance(exc, drf_exceptions.ValidationError):
        code, message = "invalid_input", _first_message(exc.detail)
    elif isinstance(exc, drf_exceptions.ParseError):
        code, message = "malformed_body", str(exc.detail)
    elif isinstance(exc, drf_exceptions.APIException):
        code = str(exc.default_code)
        message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else _first_message(exc.detail)
    else:
        code, message = "error", str(exc)
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if isinstance(exc, drf_exceptions.ValidationError):
        body["fields"] = exc.detail
    response.data = body
    return response


def _first_message(detail: Any, path: str = "") -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return _first_message(value, f"{path}.{key}" if path else str(key))
        return "invalid input"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], path)
    return f"{path}: {detail}" if path else str(detail)
