"""Health, readiness, metrics and the index page."""

from __future__ import annotations

import time
from dataclasses import asdict

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from hypersentry import components, readiness
from hypersentry.metrics import CONTENT_TYPE_LATEST, render_latest


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: no I/O, answers as long as the process serves requests."""
    return JsonResponse({"status": "ok", "version": settings.VERSION, "time_ms": int(time.time() * 1000)})


@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    results = await readiness.run_checks()
    ok = all(r.ok for r in results.values())
    body = {"status": "ok" if ok else "fail", "checks": {name: asdict(r) for name, r in results.items()}}
    return JsonResponse(body, status=200 if ok else 503)


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(render_latest(), content_type=CONTENT_TYPE_LATEST)


@require_safe
async def index(request: HttpRequest) -> HttpResponse:
    status = await sync_to_async(components.component_status)()
    return render(request, "index.html", {"components": status})
