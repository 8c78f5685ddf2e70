"""Health, readiness, metrics and the system page.

`/healthz` and `/readyz` are public (load balancers, orchestrators). `/metrics` and `/system` show internals —
venue URL, host:pid, counters, kill-switch state — so they answer staff only (admin, operator); `/metrics` also
to a Prometheus scraper holding `METRICS_BEARER_TOKEN`.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from kernel import clock, components, readiness
from kernel.errors import ApplicationError, NotAuthenticated, PermissionDenied, error_response
from kernel.http import require_methods
from kernel.metrics import CONTENT_TYPE_LATEST, render_latest
from kernel.schedule import job_rows
from kernel.venue.client import budget_used as venue_budget_used


def is_staff(user: Any) -> bool:
    """Admins and operators (`User.is_staff`); anonymous users (Django's or DRF's None) are not."""
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False))


def bearer_matches(*, authorization: str, expected: str) -> bool:
    """`Authorization: Bearer <expected>`, compared in constant time. An empty `expected` disables bearer access:
    without that check an empty header token would equal the unset setting."""
    scheme, _, token = authorization.strip().partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


@require_methods("GET", "HEAD")
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: no I/O, answers as long as the process serves requests."""
    return JsonResponse({"status": "ok", "version": settings.VERSION, "time_ms": clock.now_ms()})


@require_methods("GET", "HEAD")
async def readyz(request: HttpRequest) -> JsonResponse:
    results = await readiness.run_checks()
    ok = all(r.ok for r in results.values())
    body = {"status": "ok" if ok else "fail", "checks": {name: asdict(r) for name, r in results.items()}}
    return JsonResponse(body, status=200 if ok else 503)


def metrics_refusal(*, user: Any, authorization: str, token: str) -> ApplicationError | None:
    """Why this caller may not read /metrics, or None: a staff session or the bearer token lets it in. Without
    credentials (or with a wrong token) 401; a signed-in non-staff user 403."""
    if is_staff(user) or bearer_matches(authorization=authorization, expected=token):
        return None
    if authorization or not getattr(user, "is_authenticated", False):
        return NotAuthenticated("metrics need a staff session or the metrics bearer token")
    return PermissionDenied("metrics are for admins and operators")


@require_methods("GET", "HEAD")
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = metrics_refusal(
        user=request.user,
        authorization=request.headers.get("Authorization", ""),
        token=settings.METRICS_BEARER_TOKEN,
    )
    if refusal is not None:
        response = error_response(refusal)
        if refusal.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_latest(), content_type=CONTENT_TYPE_LATEST)


@require_safe
async def index(request: HttpRequest) -> HttpResponse:
    """What runs where: every component with each process that beats for it (running, stale or gone), the periodic
    jobs and the venue budget. Staff only: anonymous users go to sign-in (as the admin site does); others get a 403
    page that says why, with the header's wallet widget to switch wallets."""
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not is_staff(user):
        return render(request, "index.html", {"forbidden": True, "user": user}, status=403)
    status = await sync_to_async(components.component_status)()
    jobs = await sync_to_async(job_rows)()
    budget = await sync_to_async(venue_budget_used)()
    # The resolved user goes into the context: a template touching the lazy request.user here would query from
    # the event loop.
    context = {
        "components": status,
        "row_ttl_min": components.ROW_TTL_SEC // 60,
        "jobs": jobs,
        "budget": budget,
        "user": user,
    }
    return render(request, "index.html", context)
