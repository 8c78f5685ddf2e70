"""HTTP helpers every app's views use: the JSON 405 and a method guard for plain (non-DRF) JSON views."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, JsonResponse
from django.utils.log import log_response

View = Callable[..., Any]


def method_not_allowed(*, request: HttpRequest, allowed: Sequence[str]) -> JsonResponse:
    """The API's 405 (what DRF answers on its routes): the error body and an Allow header, logged from inside the
    request (as Django's own decorator does) so the line carries the request id."""
    response = JsonResponse(
        {"type": "error", "code": "method_not_allowed", "message": f'Method "{request.method}" not allowed.'},
        status=405,
    )
    response["Allow"] = ", ".join(allowed)
    log_response("Method Not Allowed (%s): %s", request.method, request.path, response=response, request=request)
    return response


def require_methods(*allowed: str) -> Callable[[View], View]:
    """`require_http_methods` for JSON views (sync or async): other methods get the JSON 405, not Django's empty
    text/html one."""

    def decorate(view: View) -> View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                if request.method not in allowed:
                    return method_not_allowed(request=request, allowed=allowed)
                return await view(request, *args, **kwargs)

            return async_guarded

        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.method not in allowed:
                return method_not_allowed(request=request, allowed=allowed)
            return view(request, *args, **kwargs)

        return guarded

    return decorate
