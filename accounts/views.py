"""Auth endpoints: plain Django views returning JSON (DRF's SessionAuthentication would skip CSRF for anonymous
users, and the sign-in POST must be CSRF-protected). Views parse, rate-limit, call one service or selector.

Rate limits an anonymous caller can trigger are keyed by its own IP only. Nothing an anonymous request merely
names (an address in a query string or in an unverified message) is counted: that would let anyone lock a
wallet out of sign-in. Sign-in counts per address inside `siwe_sign_in`, once the signature proves the key.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
from django.conf import settings
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_GET

from accounts import selectors, services
from accounts.metrics import AUTH_FAILURES, AUTH_LOGINS
from accounts.models import User
from kernel.errors import ApplicationError, NotAuthenticated, NotFound, error_response
from kernel.http import require_methods
from kernel.ratelimit import Limit, client_ip, hit

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8192
# UserSession.public_id: secrets.token_urlsafe(12) today, at most 32 characters of the URL-safe alphabet.
PUBLIC_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
View = Callable[..., HttpResponse]


def _limit_ip(request: HttpRequest, scope: str) -> None:
    limit = Limit(count=settings.AUTH_RATE_LIMIT_PER_IP, per_sec=settings.AUTH_RATE_LIMIT_WINDOW_SEC)
    hit(scope=scope, key=client_ip(request), limit=limit)


def _limit_user(user: User, scope: str) -> None:
    """Per signed-in user: only the session's own holder can spend this budget."""
    limit = Limit(count=settings.AUTH_RATE_LIMIT_PER_ADDRESS, per_sec=settings.AUTH_RATE_LIMIT_WINDOW_SEC)
    hit(scope=scope, key=user.address.lower(), limit=limit)


def auth_endpoint(*, scope: str, fallback_status: int = 500, per_user: bool = False) -> Callable[[View], View]:
    """Rate-limit by IP before any work (and, with `per_user`, by the signed-in user: sign-in required), map
    ApplicationError to the JSON error body, count failures by code."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                _limit_ip(request, scope)
                if per_user:
                    _limit_user(_user(request), scope)
                return view(request, *args, **kwargs)
            except ApplicationError as exc:
                AUTH_FAILURES.labels(code=exc.code).inc()
                return error_response(exc)
            except Exception:
                logger.exception("auth endpoint failed", extra={"scope": scope})
                AUTH_FAILURES.labels(code="internal_error").inc()
                code = "sign_in_failed" if fallback_status < 500 else "internal_error"
                return JsonResponse(
                    {"type": "error", "code": code, "message": "request failed"}, status=fallback_status
                )

        return wrapper

    return decorate


def _json_body(request: HttpRequest) -> dict[str, Any]:
    """Size-capped before reading (Content-Length) and after (chunked bodies), then parsed."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        raise ApplicationError("request body is too large", code="message_too_large", status=400)
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise ApplicationError("request body is too large", code="message_too_large", status=400)
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApplicationError("body must be a JSON object", code="malformed_body", status=400) from exc
    if not isinstance(data, dict):
        raise ApplicationError("body must be a JSON object", code="malformed_body", status=400)
    return data


def _user(request: HttpRequest) -> User:
    if not request.user.is_authenticated:
        raise NotAuthenticated("sign in with your wallet first")
    return request.user  # type: ignore[return-value]


def _state(request: HttpRequest) -> dict[str, Any]:
    user = request.user if request.user.is_authenticated else None
    return selectors.auth_state(user=user, session_key=request.session.session_key)  # type: ignore[arg-type]


@require_methods("GET")
@ensure_csrf_cookie
@auth_endpoint(scope="auth.nonce")
def nonce(request: HttpRequest) -> HttpResponse:
    # Per IP only (auth_endpoint): a per-address count here would be aimed at the victim by anyone naming
    # its address. No per-session count either: a client that drops its cookie gets a new session per request.
    address = request.GET.get("address", "")
    raw_chain = request.GET.get("chain_id")
    if raw_chain is not None and not raw_chain.isdigit():
        raise ApplicationError("chain_id must be an integer", code="unsupported_chain_id", status=400)
    if not request.session.session_key:
        request.session["siwe_pending"] = True
        request.session.save()
    challenge = services.siwe_challenge_issue(
        session_key=request.session.session_key or "",
        address=address,
        chain_id=None if raw_chain is None else int(raw_chain),
        is_demo=request.GET.get("wallet") == "demo",
    )
    return JsonResponse(
        {
            "message": challenge.message,
            "nonce": challenge.nonce,
            "address": challenge.address,
            "chain_id": challenge.chain_id,
            "domain": challenge.domain,
            "uri": challenge.uri,
            "statement": challenge.statement,
            "issued_at_ms": int(challenge.issued_at.timestamp() * 1000),
            "expires_at_ms": int(challenge.expires_at.timestamp() * 1000),
        }
    )


@require_methods("POST")
@csrf_protect
@auth_endpoint(scope="auth.verify", fallback_status=401)
def verify(request: HttpRequest) -> HttpResponse:
    body = _json_body(request)
    user, is_demo = services.siwe_sign_in(
        session_key=request.session.session_key or "", message=body.get("message"), signature=body.get("signature")
    )
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")  # cycles the session key
    request.session["hs_demo"] = is_demo
    services.session_start(
        user=user,
        session_key=request.session.session_key or "",
        expires_at=request.session.get_expiry_date(),
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        is_demo=is_demo,
    )
    AUTH_LOGINS.labels(kind="demo" if is_demo else "wallet").inc()
    logger.info("signed in", extra={"user_id": user.pk})
    return JsonResponse(_state(request))


@require_methods("POST")
@csrf_protect
@auth_endpoint(scope="auth.logout")
def logout_view(request: HttpRequest) -> HttpResponse:
    key = request.session.session_key
    if request.user.is_authenticated and key:
        services.session_end(session_key=key, reason="logout")
    logout(request)
    return JsonResponse(_state(request))


@require_methods("GET")
@auth_endpoint(scope="auth.session")
def session(request: HttpRequest) -> HttpResponse:
    return JsonResponse(_state(request))


@require_methods("GET")
@auth_endpoint(scope="auth.sessions")
def session_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    rows = selectors.session_list(
        actor=user, everyone=request.GET.get("all") == "1", current_key=request.session.session_key
    )
    return JsonResponse({"sessions": rows})


@require_methods("POST")
@csrf_protect
@auth_endpoint(scope="auth.sessions")
def session_revoke(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    if not PUBLIC_ID_RE.fullmatch(public_id):
        # No session has such an id (and a NUL byte would make PostgreSQL refuse the lookup): answer as for any
        # missing session.
        raise NotFound("no such session", code="session_not_found")
    revoked = services.session_revoke(actor=user, public_id=public_id)
    if revoked.session_key == request.session.session_key:
        logout(request)
    return JsonResponse({"revoked": public_id})


@require_methods("POST")
@csrf_protect
@auth_endpoint(scope="auth.agent", per_user=True)
def agent_prepare(request: HttpRequest) -> HttpResponse:
    row = services.agent_prepare(user=_user(request))
    from accounts.services.agents import typed_data_for

    return JsonResponse(
        {
            "agent_address": row.agent_address,
            "agent_name": row.agent_name,
            "valid_until_ms": int(row.valid_until.timestamp() * 1000),
            "typed_data": typed_data_for(row),
        }
    )


@require_methods("POST")
@csrf_protect
@auth_endpoint(scope="auth.agent", per_user=True)
def agent_approve(request: HttpRequest) -> HttpResponse:
    body = _json_body(request)
    services.agent_approve(user=_user(request), signature=body.get("signature"))  # type: ignore[arg-type]
    return JsonResponse(_state(request))


@require_methods("POST")
@csrf_protect
@auth_endpoint(scope="auth.agent")
def agent_revoke(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    count = services.agent_revoke(user=user)
    return JsonResponse({**_state(request), "revoked": count})


@require_GET
def signin_page(request: HttpRequest) -> HttpResponse:
    """Where LOGIN_URL and the admin's login point: the wallet widget, then on to `next`."""
    target = request.GET.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = "/"
    return render(request, "accounts/signin.html", {"next_url": target})


def admin_login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """Django admin has no password form: it sends people to wallet sign-in."""
    return redirect(f"{settings.LOGIN_URL}?next={quote(request.GET.get('next', '/admin/'))}")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if request.path.startswith("/auth/") or "application/json" in request.headers.get("Accept", ""):
        AUTH_FAILURES.labels(code="csrf_failed").inc()
        return JsonResponse(
            {"type": "error", "code": "csrf_failed", "message": f"CSRF check failed: {reason}"}, status=403
        )
    return django_csrf_failure(request, reason=reason)
