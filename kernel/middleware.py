"""HTTP middleware: a request id on every request, in every log line of it and in the response header; a failing
database or shared cache answered as 503 with Retry-After, never as a 500."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from kernel.errors import DependencyUnavailable, error_response, is_dependency_failure
from kernel.logging import request_id_var

logger = logging.getLogger(__name__)

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
HEADER = "X-Request-ID"


def request_id_for(request: HttpRequest) -> str:
    """Use the caller's X-Request-ID when it is sane (length, charset), otherwise generate one."""
    candidate = request.headers.get(HEADER, "")
    return candidate if _VALID_ID.match(candidate) else uuid.uuid4().hex


class RequestIdMiddleware:
    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.is_async:
            return self._acall(request)
        rid = request_id_for(request)
        request.request_id = rid  # type: ignore[attr-defined]
        token = request_id_var.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[HEADER] = rid  # type: ignore[index]
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        rid = request_id_for(request)
        request.request_id = rid  # type: ignore[attr-defined]
        token = request_id_var.set(rid)
        try:
            response = await self.get_response(request)  # type: ignore[misc]
        finally:
            request_id_var.reset(token)
        response[HEADER] = rid
        return response


def dependency_unavailable_response(request: HttpRequest, exception: BaseException) -> HttpResponse:
    """503 + Retry-After for a request that failed because PostgreSQL or Redis is away: JSON for API clients, a short
    page for browsers."""
    logger.warning(
        "request failed: dependency unavailable",
        extra={"path": request.path, "error": f"{type(exception).__name__}: {exception}"},
    )
    error = DependencyUnavailable()
    if "text/html" not in request.headers.get("Accept", ""):
        return error_response(error)
    page = (
        "<!doctype html><meta charset=utf-8><title>Temporarily unavailable</title>"
        "<p>HyperSentry is temporarily unavailable (database or cache restarting). Retry in a few seconds.</p>"
    )
    response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(error.retry_after)
    return response


class DependencyFailureMiddleware(MiddlewareMixin):
    """A view that fails because PostgreSQL or Redis is away (restart, failover, network) answers 503 with
    Retry-After, so clients retry and load balancers see a dependency outage rather than a bug. Anything else still
    propagates as the 500 it is. (Middleware that touch the database themselves answer the same way: Django turns
    their exceptions into 500s before any outer middleware could see them.)"""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        return dependency_unavailable_response(request, exception) if is_dependency_failure(exception) else None


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's session middleware, whose save at the end of a request (login, key rotation) answers 503 instead of
    500 when the database is away."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            return super().process_response(request, response)
        except Exception as exc:
            if is_dependency_failure(exc):
                return dependency_unavailable_response(request, exc)
            raise
