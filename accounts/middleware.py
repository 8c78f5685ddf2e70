"""Session upkeep on every authenticated request: revoked sessions are logged out, active ones are re-keyed
every SESSION_ROTATE_SEC of activity (login cycles the key too) and their last_seen is refreshed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

from accounts import services
from accounts.models import UserSession
from kernel.errors import is_dependency_failure
from kernel.middleware import dependency_unavailable_response
from kernel.ratelimit import client_ip


class SessionTrackingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            if request.user.is_authenticated and request.session.session_key:
                self._upkeep(request)
        except Exception as exc:
            if is_dependency_failure(exc):  # the session store (database) is away: 503, not a 500
                return dependency_unavailable_response(request, exc)
            raise
        return self.get_response(request)

    def _upkeep(self, request: HttpRequest) -> None:
        key = request.session.session_key or ""
        tracked = UserSession.objects.filter(session_key=key).first()
        if tracked is None:
            # Sessions created outside the wallet flow (force_login in tests, pre-existing sessions) are adopted.
            tracked = services.session_start(
                user=request.user,  # type: ignore[arg-type]
                session_key=key,
                expires_at=request.session.get_expiry_date(),
                ip=client_ip(request),
                user_agent=request.headers.get("User-Agent", ""),
                is_demo=False,
            )
        if tracked.revoked_at is not None or tracked.user_id != request.user.pk:
            logout(request)
            return
        if timezone.now() - tracked.rotated_at >= timedelta(seconds=settings.SESSION_ROTATE_SEC):
            request.session.cycle_key()
            request.session["hs_rotated_at"] = int(timezone.now().timestamp())
            services.session_rotate(
                old_key=key, new_key=request.session.session_key or "", expires_at=request.session.get_expiry_date()
            )
        else:
            services.session_touch(tracked=tracked, expires_at=request.session.get_expiry_date())
