"""A small fixed-window rate limiter on the Django cache (Redis in split topologies, so limits hold fleet-wide).

Usage from any app (auth endpoints today, order endpoints later):

    from kernel.ratelimit import Limit, client_ip, hit

    hit(scope="auth.verify", key=client_ip(request), limit=Limit(count=30, per_sec=60))  # raises RateLimited

`hit` counts one request and raises `kernel.errors.RateLimited` (HTTP 429 with Retry-After through
`error_response` / the DRF handler) once `count` requests were seen in the current window. Several limits on one
request (per IP and per address) are several `hit` calls. Counting uses `cache.add` + `cache.incr`, which are
atomic on Redis; on the in-process cache they are atomic per process (the one-process topology).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from kernel.cache_safe import cache_call
from kernel.errors import RateLimited

__all__ = ["Limit", "client_ip", "hit"]


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    per_sec: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.per_sec < 1:
            raise ValueError("a rate limit needs count >= 1 and per_sec >= 1")


def client_ip(request: HttpRequest) -> str:
    """The peer address. Behind the TLS proxy (BEHIND_TLS_PROXY) the last X-Forwarded-For hop is the client the
    proxy saw; anything further left is client-supplied and not trusted."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return str(request.META.get("REMOTE_ADDR") or "unknown")[:64]


def _cache_key(scope: str, key: str, window: int) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"rl:{scope}:{digest}:{window}"


def hit(*, scope: str, key: str, limit: Limit, now: float | None = None) -> int:
    """Count one request for (scope, key); raise RateLimited when over the limit. Returns the count so far."""
    now = time.time() if now is None else now
    window = int(now // limit.per_sec)
    cache_key = _cache_key(scope, key, window)

    def count_one() -> int:
        if cache.add(cache_key, 1, timeout=limit.per_sec + 1):
            return 1
        try:
            return int(cache.incr(cache_key))
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, timeout=limit.per_sec + 1)
            return 1

    # Without the shared cache nothing can be counted: the request goes through (a limit is protection, not the
    # truth of anything) and the fallback is logged and counted.
    count = cache_call(count_one, fallback=0, what=f"ratelimit:{scope}")
    if count > limit.count:
        retry_after = (window + 1) * limit.per_sec - now
        raise RateLimited(f"Too many requests for {scope}; retry later.", retry_after=retry_after)
    return count
