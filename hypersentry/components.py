"""Which components run where: heartbeats in the cache (Redis in split topologies, memory in one process)."""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache

# Every component a deployment can run, with what it does; the index page lists their heartbeats.
KNOWN_COMPONENTS: dict[str, str] = {
    "web": "HTTP + WebSocket gateway",
    "hlsim": "Hyperliquid-compatible venue simulator (paper trading)",
    "ingest": "Market ingest: venue WS → normalised events → hot state → publish",
    "alpha": "Conviction engine pipeline",
    "execution": "Venue user feeds → private order/fill/account streams",
    "jobs": "Periodic jobs (Celery beat in split topologies)",
    "celery": "Celery worker",
}
_KEY = "component:heartbeat:{}"
HEARTBEAT_TTL_SEC = 60
_last_write: dict[str, float] = {}


def heartbeat(name: str, *, detail: str = "", min_interval: float = 2.0) -> None:
    """Record that `name` is alive (throttled: at most one cache write per `min_interval`)."""
    now = time.time()
    if now - _last_write.get(name, 0.0) < min_interval:
        return
    _last_write[name] = now
    cache.set(_KEY.format(name), {"ts": now, "detail": detail}, HEARTBEAT_TTL_SEC)


def component_status() -> list[dict[str, Any]]:
    now = time.time()
    rows = []
    for name, description in KNOWN_COMPONENTS.items():
        beat = cache.get(_KEY.format(name))
        age = None if beat is None else round(now - beat["ts"], 1)
        rows.append(
            {
                "name": name,
                "description": description,
                "running": beat is not None and age is not None and age < 30,
                "age_s": age,
                "detail": "" if beat is None else beat.get("detail", ""),
            }
        )
    return rows
