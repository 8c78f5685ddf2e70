"""The venue's REST /info under an upstream budget (architecture seed §12).

* Budgets per endpoint class (metadata, orderbook, candles), counted in fixed 10 s windows in the Django cache,
  so every process of a split topology shares them (Redis cache) and one process counts alone (locmem).
* Singleflight: identical concurrent calls in a process share one request.
* TTL caches (TRADING_*_CACHE_SEC) and a per-key floor (AGGREGATOR_ORDERBOOK_UPSTREAM_MIN_SEC for books).
* Exponential cooldown per class on HTTP 429 (capped at AGGREGATOR_UPSTREAM_BACKOFF_SEC); meanwhile callers get
  the last good answer flagged `fresh=False` ("stale with flag"), never an exception while one exists.
* Throttled warnings (AGGREGATOR_WARN_THROTTLE_SEC).

Synchronous on purpose: DRF views call it from threads; ingest calls it through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from django.conf import settings
from django.core.cache import cache

from kernel import clock
from kernel.errors import UpstreamRateLimited, UpstreamUnavailable
from kernel.metrics import Counter
from kernel.singleflight import Singleflight
from kernel.venue import client as vc

logger = logging.getLogger(__name__)

METADATA: Final = "metadata"
ORDERBOOK: Final = "orderbook"
CANDLES: Final = "candles"
ENDPOINT_CLASSES: Final = (METADATA, ORDERBOOK, CANDLES)
CLASS_OF_TYPE: Final = {
    "meta": METADATA,
    "metaAndAssetCtxs": METADATA,
    "allMids": METADATA,
    "l2Book": ORDERBOOK,
    "candleSnapshot": CANDLES,
}
WINDOW_SEC: Final = 10
# Reasons an answer is missing that are about pace (ours or the venue's), not the venue being down.
RATE_REASONS: Final = frozenset({"budget", "cooldown", "floor", "rate_limited"})
LAST_GOOD_TTL_SEC: Final = 3600
HTTP_TIMEOUT: Final = (3.0, 5.0)

UPSTREAM_REQUESTS = Counter(
    "hs_upstream_requests_total", "Venue REST requests by endpoint class and outcome", ["endpoint_class", "outcome"]
)
UPSTREAM_429 = Counter("hs_upstream_429_total", "Venue REST 429 answers by endpoint class", ["endpoint_class"])
UPSTREAM_SUPPRESSED = Counter(
    "hs_upstream_suppressed_total", "Venue REST calls not made (budget, cooldown, floor)", ["endpoint_class", "reason"]
)


@dataclass(frozen=True, slots=True)
class UpstreamResult:
    data: Any
    fetched_at_ms: int
    fresh: bool  # True: fetched now or within the TTL; False: the last good answer served during trouble
    reason: str = ""  # why it is not fresh: cooldown, budget, floor, rate_limited, error


class UpstreamError(Exception):
    """A single request failed (HTTP error, timeout, bad JSON); `rate_limited` for 429."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


def budget_per_window(endpoint_class: str) -> int:
    per_min = {
        METADATA: settings.AGGREGATOR_UPSTREAM_BUDGET_METADATA_PER_MIN,
        ORDERBOOK: settings.AGGREGATOR_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN,
        CANDLES: settings.AGGREGATOR_UPSTREAM_BUDGET_CANDLES_PER_MIN,
    }[endpoint_class]
    return max(1, -(-per_min * WINDOW_SEC // 60))


def cooldown_sec(level: int) -> float:
    """1 s, 2 s, 4 s ... capped at AGGREGATOR_UPSTREAM_BACKOFF_SEC."""
    return float(min(settings.AGGREGATOR_UPSTREAM_BACKOFF_SEC, 2.0 ** max(0, level - 1)))


class _Throttle:
    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warn(self, key: str, message: str, **extra: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e18) < settings.AGGREGATOR_WARN_THROTTLE_SEC:
                return
            self._last[key] = now
        logger.warning(message, extra=extra)


class Upstream:
    """The venue REST client with budget, singleflight, cooldown and caches."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.HYPERSENTRY_VENUE_URL).rstrip("/")
        self._flights = Singleflight()
        self._throttle = _Throttle()

    # --- public
    def info(
        self, body: dict[str, Any], *, ttl_sec: float, floor_key: str = "", floor_sec: float = 0.0
    ) -> UpstreamResult:
        """POST /info `body`: cached (ttl), else upstream within budget, else the last good answer (stale).

        Raises UpstreamUnavailable only when there is no answer at all to serve.
        """
        endpoint_class = CLASS_OF_TYPE.get(str(body.get("type")), METADATA)
        key = self._key(body)
        cached = cache.get(f"upstream:resp:{key}")
        if cached is not None and ttl_sec > 0:
            return UpstreamResult(data=cached[1], fetched_at_ms=cached[0], fresh=True)
        reason = self._blocked(endpoint_class, floor_key=floor_key, floor_sec=floor_sec)
        if reason:
            UPSTREAM_SUPPRESSED.labels(endpoint_class, reason).inc()
            return self._last_good(key, reason, endpoint_class)
        try:
            data = self._flights.do(key, lambda: self._fetch(body, endpoint_class), wait=sum(HTTP_TIMEOUT) + 1)
        except UpstreamError as exc:
            return self._last_good(key, "rate_limited" if exc.rate_limited else "error", endpoint_class)
        except TimeoutError:  # the identical call this one waited for did not finish in time
            return self._last_good(key, "error", endpoint_class)
        now_ms = clock.now_ms()
        if ttl_sec > 0:
            cache.set(f"upstream:resp:{key}", (now_ms, data), ttl_sec)
        cache.set(f"upstream:last:{key}", (now_ms, data), LAST_GOOD_TTL_SEC)
        return UpstreamResult(data=data, fetched_at_ms=now_ms, fresh=True)

    def _retry_after(self, endpoint_class: str) -> float:
        return max(
            1.0, self.cooldown_remaining(endpoint_class), vc.backoff_remaining(), WINDOW_SEC - time.time() % WINDOW_SEC
        )

    def cooldown_remaining(self, endpoint_class: str) -> float:
        state = cache.get(f"upstream:cooldown:{endpoint_class}")
        return 0.0 if state is None else max(0.0, state[0] - time.time())

    def stats(self) -> dict[str, Any]:
        """Per endpoint class: remaining cooldown and 429s seen (all processes sharing the cache)."""
        counts = cache.get_many([f"upstream:429count:{c}" for c in ENDPOINT_CLASSES])
        return {
            c: {
                "cooldown_sec": round(self.cooldown_remaining(c), 1),
                "rate_limited_429": int(counts.get(f"upstream:429count:{c}") or 0),
                "budget_per_10s": budget_per_window(c),
            }
            for c in ENDPOINT_CLASSES
        }

    # --- internals
    @staticmethod
    def _key(body: dict[str, Any]) -> str:
        return hashlib.sha1(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def _blocked(self, endpoint_class: str, *, floor_key: str, floor_sec: float) -> str:
        if self.cooldown_remaining(endpoint_class) > 0:
            return "cooldown"
        if floor_key and floor_sec > 0 and not cache.add(f"upstream:floor:{floor_key}", 1, floor_sec):
            return "floor"
        window = int(time.time() // WINDOW_SEC)
        bkey = f"upstream:budget:{endpoint_class}:{window}"
        cache.add(bkey, 0, WINDOW_SEC * 2)
        try:
            used = cache.incr(bkey)
        except ValueError:  # expired between add and incr
            cache.set(bkey, 1, WINDOW_SEC * 2)
            used = 1
        if used > budget_per_window(endpoint_class):
            self._throttle.warn(f"budget:{endpoint_class}", "upstream budget exhausted", endpoint_class=endpoint_class)
            return "budget"
        return ""

    def _last_good(self, key: str, reason: str, endpoint_class: str) -> UpstreamResult:
        last = cache.get(f"upstream:last:{key}")
        if last is None:
            message = f"venue {endpoint_class} data unavailable ({reason}) and nothing cached to serve"
            if reason in RATE_REASONS:
                # Our budget or the venue's rate limit: a client problem of pace, answered as one (429 + Retry-After).
                raise UpstreamRateLimited(
                    message + "; retry shortly", retry_after=self._retry_after(endpoint_class), extra={"reason": reason}
                )
            raise UpstreamUnavailable(message, extra={"reason": reason})
        return UpstreamResult(data=last[1], fetched_at_ms=last[0], fresh=False, reason=reason)

    def _fetch(self, body: dict[str, Any], endpoint_class: str) -> Any:
        """One request through the venue client: the IP budget every process shares (market data may use its
        share of it), the backoff after a venue 429, a hard timeout."""
        try:
            data = vc.get_client(self.base_url).info(body, priority=vc.MARKET, timeout=HTTP_TIMEOUT[1])
        except vc.VenueError as exc:
            if exc.rate_limited:
                UPSTREAM_REQUESTS.labels(endpoint_class, "429" if exc.kind == "rate_limited" else exc.kind).inc()
                if exc.kind == "rate_limited":
                    UPSTREAM_429.labels(endpoint_class).inc()
                    self._enter_cooldown(endpoint_class)
                raise UpstreamError(str(exc), rate_limited=True) from None
            UPSTREAM_REQUESTS.labels(endpoint_class, "error").inc()
            self._throttle.warn(
                f"error:{endpoint_class}", "venue REST failed", endpoint_class=endpoint_class, error=str(exc)
            )
            raise UpstreamError(str(exc)) from None
        except vc.VenueTimeout as exc:
            UPSTREAM_REQUESTS.labels(endpoint_class, "error").inc()
            self._throttle.warn(
                f"error:{endpoint_class}", "venue REST timed out", endpoint_class=endpoint_class, error=str(exc)
            )
            raise UpstreamError(str(exc)) from None
        UPSTREAM_REQUESTS.labels(endpoint_class, "ok").inc()
        cache.delete(f"upstream:cooldown_level:{endpoint_class}")
        return data

    def _enter_cooldown(self, endpoint_class: str) -> None:
        level_key = f"upstream:cooldown_level:{endpoint_class}"
        level = int(cache.get(level_key) or 0) + 1
        seconds = cooldown_sec(level)
        cache.set(level_key, level, 600)
        count_key = f"upstream:429count:{endpoint_class}"
        cache.add(count_key, 0, 86_400)
        try:
            cache.incr(count_key)
        except ValueError:
            cache.set(count_key, 1, 86_400)
        cache.set(f"upstream:cooldown:{endpoint_class}", (time.time() + seconds, level), seconds)
        self._throttle.warn(
            f"429:{endpoint_class}",
            "venue rate limited: cooling down",
            endpoint_class=endpoint_class,
            cooldown_sec=seconds,
            level=level,
        )


_instance: Upstream | None = None
_lock = threading.Lock()


def get_upstream() -> Upstream:
    global _instance
    with _lock:
        if _instance is None or _instance.base_url != settings.HYPERSENTRY_VENUE_URL.rstrip("/"):
            _instance = Upstream()
        return _instance
