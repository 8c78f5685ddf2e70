"""Shared-cache calls that survive the cache going away (Redis restarting under a live order flow).

The money path uses the shared cache for what makes it cheaper or fairer — the venue budget ledger, the backoff
after a 429, rate limits, cached account states, nonce counters — never for what makes it correct (that lives in
the database). So when Redis is unreachable each call falls back to what is safe without it, instead of failing
the request: a budget or rate limit counts nothing and lets the request through, a cached value is a miss (the
venue or the database is asked), a write is skipped. Every fallback is counted (`hs_cache_errors_total{what}`)
and logged at most once per LOG_THROTTLE_SEC per call site.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

from kernel.metrics import Counter

logger = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_ERRORS = Counter("hs_cache_errors_total", "Shared-cache calls that failed and fell back", ["what"])
_last_warned: dict[str, float] = {}
_lock = threading.Lock()


def cache_call(op: Callable[[], T], *, fallback: T, what: str) -> T:
    """`op()`, or `fallback` when the cache backend fails (connection refused, timeout, ...)."""
    try:
        return op()
    except Exception as exc:  # noqa: BLE001 - any backend failure falls back; logged (throttled) and counted
        CACHE_ERRORS.labels(what).inc()
        _warn(what, exc)
        return fallback


def _warn(what: str, exc: BaseException) -> None:
    now = time.monotonic()
    interval = float(getattr(settings, "LOG_THROTTLE_SEC", 10.0)) or 10.0
    with _lock:
        if now - _last_warned.get(what, -1e18) < interval:
            return
        _last_warned[what] = now
    logger.warning(
        "shared cache unavailable: falling back", extra={"what": what, "error": f"{type(exc).__name__}: {exc}"}
    )
