"""The one HTTP client for every venue call (/info and /exchange) and the venue's per-IP budget.

Hyperliquid limits REST per IP: 1200 weight per minute, shared by everything this deployment sends (market data,
account reads, reconciliation, orders, cancels). A 429 from the venue hits every user at once, so the budget is
kept here, for every caller:

* Weights per request (venue docs, rate limits): `info_weight(body)`, `exchange_weight(action)`.
* The ledger lives in the Django cache — Redis in split topologies, so every process spends from one budget — as
  a sliding minute of 10 s buckets holding at most VENUE_WEIGHT_PER_MIN, counted per priority. Each priority may
  fill the minute up to its ceiling minus what the others' reserves still hold unused, so a burst of one kind can
  never starve another: orders keep 15 % for themselves, reconciliation 15 %, account reads 5 %, market data
  nothing (ceilings: orders 100 %, account and background 95 %, market data 85 %); cancels are counted but never
  refused (cancelling is how risk goes down). Per-item extras (userFills, candles) are charged once the answer tells how
  many items came back.
* Per-user quotas (`user_quota_take`) cap the account reads one user may cause.
* A venue 429 starts a shared backoff (0.5 s, doubling per further 429 up to VENUE_BACKOFF_MAX_SEC): nothing but
  cancels is sent meanwhile. Refusals raise `VenueError` with kind `budget` / `backoff` — the request was NOT sent,
  so callers serve their last known answer (reads) or refuse cleanly (orders) instead of failing.
* Every call has a hard timeout; `VenueTimeout` means the outcome is unknown (an order creation is never re-sent).

No app imports: markets (ingest, market REST), accounts (approveAgent) and execution (orders, account reads) all
call through here (the rest of the package: `exchange` signs, `meta` caches the universe, `market_data` serves
market reads with caches, `streams` holds the WebSocket side).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import requests
from django.conf import settings
from django.core.cache import cache

from kernel.cache_safe import cache_call
from kernel.metrics import Counter

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Priorities (share of a budget window each may fill).
CANCEL: Final = "cancel"
ORDER: Final = "order"
ACCOUNT: Final = "account"
MARKET: Final = "market"
BACKGROUND: Final = "background"
# How full the minute may be when a request of each priority asks (its ceiling), and what each priority always
# keeps for itself. A request may fill the minute up to its ceiling minus what the OTHER priorities' reserves still
# hold unused, and may always spend its own unused reserve (never past the whole budget). Lower priorities stop
# lower, so the room above them is the higher ones': a candle backfill (market data) or reconciliation can never
# starve orders, and orders flooding the minute cannot take reconciliation's reserve. Market data keeps no reserve
# (the WebSocket feed carries the live data).
SHARE: Final[dict[str, float]] = {CANCEL: float("inf"), ORDER: 1.0, ACCOUNT: 0.95, BACKGROUND: 0.85, MARKET: 0.75}
RESERVE: Final[dict[str, float]] = {CANCEL: 0.0, ORDER: 0.15, ACCOUNT: 0.05, BACKGROUND: 0.15, MARKET: 0.0}
PRIORITIES: Final = (CANCEL, ORDER, ACCOUNT, BACKGROUND, MARKET)

WINDOW_SEC: Final = 10
BUCKETS: Final = 6  # a sliding minute
_BACKOFF_KEY: Final = "venue:backoff:until"
_BACKOFF_LEVEL_KEY: Final = "venue:backoff:level"

# Venue docs: /info weight 2 for these, 60 for userRole, 20 for everything else, plus per-item extras.
_INFO_WEIGHT_2: Final = frozenset(
    {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}
)
# Extra weight per N items returned (charged after the answer, when the count is known).
_PER_ITEMS: Final[dict[str, int]] = {
    "userFills": 20,
    "userFillsByTime": 20,
    "historicalOrders": 20,
    "fundingHistory": 20,
    "userFunding": 20,
    "recentTrades": 20,
    "candleSnapshot": 60,
}

VENUE_REQUESTS = Counter(
    "hs_venue_requests_total", "Venue REST calls by endpoint, priority and outcome", ["endpoint", "priority", "outcome"]
)
VENUE_REFUSED = Counter(
    "hs_venue_not_sent_total", "Venue calls not sent (our budget, or backoff after a 429)", ["priority", "reason"]
)


class VenueError(Exception):
    """The venue answered with an error we can classify, or the call was not sent (`budget`, `backoff`).

    kind: rate_limited (venue 429: not processed) | budget | backoff (not sent) | client (4xx) | server (5xx,
    unreachable) | error (unparseable answer)."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = "error", retry_after: float = 0.0):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.retry_after = retry_after

    @property
    def not_sent(self) -> bool:
        return self.kind in ("budget", "backoff")

    @property
    def rate_limited(self) -> bool:
        """Refused for rate (the venue's 429, our budget or the backoff): nothing was processed."""
        return self.kind in ("rate_limited", "budget", "backoff")


class VenueTimeout(Exception):
    """No answer in time (or the connection broke after sending): the outcome is unknown."""


# --- weights ------------------------------------------------------------------------------------------------
def info_weight(body: dict[str, Any]) -> int:
    kind = str(body.get("type"))
    if kind in _INFO_WEIGHT_2:
        return 2
    if kind == "userRole":
        return 60
    return 20


def info_extra_weight(body: dict[str, Any], answer: Any) -> int:
    per = _PER_ITEMS.get(str(body.get("type")))
    return len(answer) // per if per and isinstance(answer, list) else 0


def exchange_weight(action: dict[str, Any]) -> int:
    """1 + floor(batch / 40) per the venue docs."""
    batch = 1
    for field in ("orders", "cancels", "modifies"):
        items = action.get(field)
        if isinstance(items, list):
            batch = max(batch, len(items))
    return 1 + batch // 40


# --- the shared ledger ----------------------------------------------------------------------------------------
def counter_add(key: str, delta: int, ttl: int | None) -> int:
    """Atomic add on the shared cache (Redis INCRBY; per process on locmem), creating the key when missing."""
    cache.add(key, 0, ttl)
    try:
        return int(cache.incr(key, delta))
    except ValueError:  # expired between add and incr
        cache.set(key, delta, ttl)
        return delta


def _bucket_key(priority: str, bucket: int) -> str:
    return f"venue:ipw:{priority}:{bucket}"


def used_by_priority(now: float | None = None) -> dict[str, int]:
    """Weight each priority spent over the last minute (the current 10 s bucket and the five before it), all
    processes. With the shared cache unreachable nothing is known: zeros (requests go through; the venue's own
    429 still protects)."""
    now = time.time() if now is None else now
    current = int(now // WINDOW_SEC)
    keys = {_bucket_key(p, b): p for p in PRIORITIES for b in range(current - BUCKETS + 1, current + 1)}
    empty: dict[str, Any] = {}
    found: dict[str, Any] = cache_call(lambda: cache.get_many(list(keys)), fallback=empty, what="venue_budget")
    used = dict.fromkeys(PRIORITIES, 0)
    for key, value in found.items():
        used[keys[key]] += int(value)
    return used


def room_for(priority: str, used: dict[str, int], capacity: float) -> float:
    """Pure: the weight `priority` may still spend this minute — up to its ceiling minus what the OTHER priorities'
    reserves still hold unused, or at least its own unused reserve; never past the whole budget, never negative."""
    total = sum(used.values())
    held = sum(max(0.0, RESERVE[q] * capacity - used.get(q, 0)) for q in PRIORITIES if q != priority)
    by_ceiling = SHARE[priority] * capacity - held - total
    own_reserve = RESERVE[priority] * capacity - used.get(priority, 0)
    return max(0.0, min(capacity - total, max(by_ceiling, own_reserve)))


def budget_take(weight: int, *, priority: str, now: float | None = None) -> None:
    """Spend `weight` from the shared IP budget or raise VenueError(kind="budget") — nothing spent then.

    A sliding minute of six 10 s buckets: bursts are allowed (like the venue's own bucket) while any true minute
    sees at most 7/6 of VENUE_WEIGHT_PER_MIN (1000 by default: 1167 < the venue's 1200). Check-then-add is not
    atomic across processes; the overshoot is bounded by the requests in flight and the headroom absorbs it."""
    now = time.time() if now is None else now
    capacity = float(settings.VENUE_WEIGHT_PER_MIN)
    used = used_by_priority(now) if priority != CANCEL else {}
    if priority != CANCEL and weight > room_for(priority, used, capacity):
        VENUE_REFUSED.labels(priority, "budget").inc()
        raise VenueError(
            f"venue request budget for {priority} used up for this minute (last minute by priority: {used})",
            kind="budget",
            retry_after=WINDOW_SEC - now % WINDOW_SEC,
        )
    budget_charge(weight, priority=priority, now=now)


def budget_charge(weight: int, *, priority: str, now: float | None = None) -> None:
    """Count weight without asking (cancels; the per-item extra of an answer, known only after it arrived)."""
    now = time.time() if now is None else now
    if weight > 0:
        key = _bucket_key(priority, int(now // WINDOW_SEC))
        cache_call(lambda: counter_add(key, weight, WINDOW_SEC * (BUCKETS + 1)), fallback=0, what="venue_budget")


def user_quota_take(user_id: int, weight: int, *, now: float | None = None) -> None:
    """Per-user account-read quota (VENUE_USER_WEIGHT_PER_MIN): one user's polling cannot spend everyone's budget."""
    now = time.time() if now is None else now
    window = int(now // 60)
    key = f"venue:user:{user_id}:{window}"
    used = cache_call(lambda: counter_add(key, weight, 120), fallback=0, what="venue_user_quota")
    if used > settings.VENUE_USER_WEIGHT_PER_MIN:
        cache_call(lambda: cache.decr(key, weight), fallback=0, what="venue_user_quota")
        VENUE_REFUSED.labels(ACCOUNT, "user_quota").inc()
        raise VenueError(
            "your share of the venue's read budget is used up for this minute",
            kind="budget",
            retry_after=(window + 1) * 60 - now,
        )


def budget_used(now: float | None = None) -> dict[str, Any]:
    used = used_by_priority(now)
    return {
        "per_min": settings.VENUE_WEIGHT_PER_MIN,
        "used_last_min": sum(used.values()),
        "by_priority": used,
        "backoff_s": round(backoff_remaining(now), 2),
    }


def backoff_remaining(now: float | None = None) -> float:
    until = cache_call(lambda: cache.get(_BACKOFF_KEY), fallback=None, what="venue_backoff")
    if until is None:
        return 0.0
    return max(0.0, float(until) - (time.time() if now is None else now))


def backoff_start() -> float:
    """A venue 429: back off 0.5 s, doubling per further 429 while in trouble, capped at VENUE_BACKOFF_MAX_SEC."""
    level = min(cache_call(lambda: counter_add(_BACKOFF_LEVEL_KEY, 1, 120), fallback=1, what="venue_backoff"), 16)
    seconds = min(float(settings.VENUE_BACKOFF_MAX_SEC), 0.5 * 2 ** (level - 1))
    until = time.time() + seconds

    def store() -> None:
        current = cache.get(_BACKOFF_KEY)
        if current is None or float(current) < until:
            cache.set(_BACKOFF_KEY, until, int(seconds) + 2)

    cache_call(store, fallback=None, what="venue_backoff")
    return seconds


def _backoff_clear_level() -> None:
    cache_call(lambda: cache.delete(_BACKOFF_LEVEL_KEY), fallback=False, what="venue_backoff")


# --- transport ------------------------------------------------------------------------------------------------
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="venue")
_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.headers.update({"Content-Type": "application/json"})
    return session


def call_with_timeout(fn: Callable[[], T], *, timeout: float) -> T:
    """Run `fn` in a worker thread; VenueTimeout when it does not finish in time (the thread is abandoned — its
    own socket timeout ends it shortly after)."""
    future = _pool.submit(fn)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError as exc:
        raise VenueTimeout(f"no venue answer within {timeout:.1f}s") from exc


class VenueClient:
    """POST /info and /exchange for one base URL, through the shared budget and backoff."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def info(self, body: dict[str, Any], *, priority: str = ACCOUNT, timeout: float | None = None) -> Any:
        answer = self._call("/info", body, weight=info_weight(body), priority=priority, timeout=timeout)
        budget_charge(info_extra_weight(body, answer), priority=priority)
        return answer

    def exchange(self, payload: dict[str, Any], *, priority: str = ORDER, timeout: float | None = None) -> Any:
        raw = payload.get("action")
        action: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return self._call("/exchange", payload, weight=exchange_weight(action), priority=priority, timeout=timeout)

    def _call(self, path: str, body: dict[str, Any], *, weight: int, priority: str, timeout: float | None) -> Any:
        endpoint = path.strip("/")
        if priority != CANCEL:
            left = backoff_remaining()
            if left > 0:
                VENUE_REFUSED.labels(priority, "backoff").inc()
                raise VenueError(f"venue rate limited: backing off {left:.1f}s", kind="backoff", retry_after=left)
        budget_take(weight, priority=priority)
        limit = float(settings.EXECUTION_VENUE_TIMEOUT_SEC if timeout is None else timeout)
        try:
            response = call_with_timeout(lambda: self._post(path, body, limit), timeout=limit)
        except VenueTimeout:
            VENUE_REQUESTS.labels(endpoint, priority, "timeout").inc()
            raise
        except requests.Timeout as exc:
            VENUE_REQUESTS.labels(endpoint, priority, "timeout").inc()
            raise VenueTimeout(f"{type(exc).__name__}: {exc}") from exc
        except requests.ConnectionError as exc:
            VENUE_REQUESTS.labels(endpoint, priority, "unreachable").inc()
            if path == "/exchange":
                # The request may have left before the connection broke: the outcome is unknown.
                raise VenueTimeout(f"connection broke: {exc}") from exc
            raise VenueError(f"venue unreachable: {exc}", kind="server") from exc
        except requests.RequestException as exc:
            VENUE_REQUESTS.labels(endpoint, priority, "error").inc()
            raise VenueError(f"venue request failed: {exc}", kind="server") from exc
        return self._answer(response, endpoint=endpoint, priority=priority)

    def _post(self, path: str, body: dict[str, Any], limit: float) -> requests.Response:
        # json= like the SDK (the action dict's key order is what was signed; json.dumps keeps it).
        return _session().post(self.base_url + path, json=body, timeout=(min(3.0, limit), limit + 1.0))

    @staticmethod
    def _answer(response: requests.Response, *, endpoint: str, priority: str) -> Any:
        status = response.status_code
        if status == 429:
            VENUE_REQUESTS.labels(endpoint, priority, "429").inc()
            seconds = backoff_start()
            logger.warning(
                "venue answered 429: backing off",
                extra={"endpoint": endpoint, "priority": priority, "backoff_s": seconds},
            )
            raise VenueError("venue rate limit (429)", status=429, kind="rate_limited", retry_after=seconds)
        if status >= 500:
            VENUE_REQUESTS.labels(endpoint, priority, "5xx").inc()
            if endpoint == "exchange":
                raise VenueTimeout(f"venue HTTP {status} (outcome unknown)")
            raise VenueError(f"venue HTTP {status}", status=status, kind="server")
        if status >= 400:
            VENUE_REQUESTS.labels(endpoint, priority, "4xx").inc()
            raise VenueError(f"venue HTTP {status}: {response.text[:200]}", status=status, kind="client")
        _backoff_clear_level()
        try:
            data = response.json()
        except ValueError as exc:
            VENUE_REQUESTS.labels(endpoint, priority, "bad_json").inc()
            raise VenueError(f"venue answered non-JSON: {response.text[:200]!r}", kind="error") from exc
        VENUE_REQUESTS.labels(endpoint, priority, "ok").inc()
        return data


_clients: dict[str, VenueClient] = {}
_clients_lock = threading.Lock()


def base_url() -> str:
    """The configured venue (HYPERSENTRY_VENUE_URL: the simulator, testnet or mainnet)."""
    return str(settings.HYPERSENTRY_VENUE_URL).rstrip("/")


def get_client(url: str | None = None) -> VenueClient:
    url = (url or base_url()).rstrip("/")
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = VenueClient(url)
        return client


def info(body: dict[str, Any], *, priority: str = ACCOUNT, timeout: float | None = None) -> Any:
    """POST /info to the configured venue through the shared budget; VenueError (4xx/5xx/429, or not sent:
    budget/backoff), VenueTimeout."""
    return get_client().info(body, priority=priority, timeout=timeout)
