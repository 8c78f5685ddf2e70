"""Venue I/O for the relay: cached meta, /info reads under the MASTER address, SDK signing and a hard timeout.

* `meta` / `spotMeta` are fetched once per EXECUTION_META_CACHE_SEC (shared cache + process memo) and passed to
  `Exchange(...)` so constructing a client per order does not burn the REST budget.
* Every venue call runs in a worker thread with a hard timeout: a call that does not answer in time raises
  `VenueTimeout` (the caller decides what an unknown outcome means; an order creation is never re-sent).
* Reads are always for the user's master address (`user.address`), never the agent's.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from django.conf import settings
from django.core.cache import cache

from execution.rounding import AssetSpec

logger = logging.getLogger(__name__)

T = TypeVar("T")
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="venue")
_memo: dict[str, tuple[float, Any]] = {}
_memo_lock = threading.Lock()
_session = threading.local()


class VenueError(Exception):
    """The venue answered with an error we can classify."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind  # rate_limited | client | server | error


class VenueTimeout(Exception):
    """No answer in time (or the connection broke after sending): the outcome is unknown."""


@dataclass(frozen=True, slots=True)
class VenueMeta:
    meta: dict[str, Any]
    spot_meta: dict[str, Any]


def base_url() -> str:
    return str(settings.HYPERSENTRY_VENUE_URL)


def call_with_timeout(fn: Callable[[], T], *, timeout: float | None = None) -> T:
    """Run `fn` in a worker thread; VenueTimeout when it does not finish in time (the thread is abandoned)."""
    limit = settings.EXECUTION_VENUE_TIMEOUT_SEC if timeout is None else timeout
    future = _pool.submit(fn)
    try:
        return future.result(timeout=limit)
    except concurrent.futures.TimeoutError as exc:
        raise VenueTimeout(f"no venue answer within {limit:.1f}s") from exc


def _http() -> requests.Session:
    s = getattr(_session, "s", None)
    if s is None:
        s = requests.Session()
        _session.s = s
    return s


def info(body: dict[str, Any], *, timeout: float | None = None) -> Any:
    """POST /info (blocking, with the relay's timeout); VenueError on 4xx/5xx, VenueTimeout on no answer."""
    limit = settings.EXECUTION_VENUE_TIMEOUT_SEC if timeout is None else timeout
    try:
        resp = _http().post(f"{base_url()}/info", json=body, timeout=limit)
    except requests.Timeout as exc:
        raise VenueTimeout(str(exc)) from exc
    except requests.RequestException as exc:
        raise VenueError(f"venue unreachable: {exc}", kind="server") from exc
    if resp.status_code == 429:
        raise VenueError("venue rate limit (429)", status=429, kind="rate_limited")
    if resp.status_code >= 500:
        raise VenueError(f"venue HTTP {resp.status_code}", status=resp.status_code, kind="server")
    if resp.status_code >= 400:
        raise VenueError(f"venue HTTP {resp.status_code}: {resp.text[:200]}", status=resp.status_code, kind="client")
    return resp.json()


def _cached(name: str, loader: Callable[[], Any]) -> Any:
    now = time.monotonic()
    ttl = settings.EXECUTION_META_CACHE_SEC
    key = f"{name}|{base_url()}"
    with _memo_lock:
        hit = _memo.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
    value = cache.get(f"exec:venue:{key}")
    if value is None:
        value = loader()
        cache.set(f"exec:venue:{key}", value, ttl)
    with _memo_lock:
        _memo[key] = (now, value)
    return value


def venue_meta() -> VenueMeta:
    meta = _cached("meta", lambda: info({"type": "meta", "dex": ""}))
    spot = _cached("spotMeta", lambda: info({"type": "spotMeta"}))
    return VenueMeta(meta=meta, spot_meta=spot)


def clear_meta_cache() -> None:
    with _memo_lock:
        _memo.clear()


def asset_spec(symbol: str) -> AssetSpec | None:
    """Perp asset spec by name (asset id = index in meta.universe); None if the venue does not list it."""
    try:
        meta = venue_meta().meta
    except (VenueError, VenueTimeout):
        return None
    for i, asset in enumerate(meta.get("universe", [])):
        if asset.get("name") == symbol:
            return AssetSpec(
                symbol=symbol,
                asset_id=i,
                sz_decimals=int(asset.get("szDecimals", 0)),
                max_leverage=int(asset.get("maxLeverage", 1)),
                delisted=bool(asset.get("isDelisted", False)),
            )
    return None


def exchange_for(*, wallet: Any, account_address: str) -> Any:
    """An SDK Exchange signing with the agent `wallet` for the master `account_address`, on cached meta."""
    from hyperliquid.exchange import Exchange

    vm = venue_meta()
    return Exchange(
        wallet,
        base_url(),
        meta=vm.meta,  # type: ignore[arg-type]
        spot_meta=vm.spot_meta,  # type: ignore[arg-type]
        account_address=account_address,
        timeout=settings.EXECUTION_VENUE_TIMEOUT_SEC + 1,
    )


def classify_sdk_error(exc: BaseException) -> VenueError | VenueTimeout:
    """Map SDK / requests exceptions to ours. Timeouts, broken connections after sending and 5xx are unknown
    outcomes (VenueTimeout); 429 and other 4xx mean the venue did not take the action."""
    from hyperliquid.utils.error import ClientError, ServerError

    if isinstance(exc, ClientError):
        status = int(getattr(exc, "status_code", 400) or 400)
        kind = "rate_limited" if status == 429 else "client"
        return VenueError(f"venue HTTP {status}: {getattr(exc, 'error_message', '')}", status=status, kind=kind)
    if isinstance(exc, ServerError):
        return VenueTimeout(f"venue HTTP {getattr(exc, 'status_code', 500)} (outcome unknown)")
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return VenueTimeout(f"{type(exc).__name__}: {exc}")
    return VenueError(f"{type(exc).__name__}: {exc}", kind="error")


def post_signed(
    exchange: Any, action: dict[str, Any], signature: dict[str, Any], nonce: int, *, timeout: float | None = None
) -> Any:
    """Post an already-signed action through the SDK client with the hard timeout."""

    def _go() -> Any:
        return exchange._post_action(action, signature, nonce)

    try:
        return call_with_timeout(_go, timeout=timeout)
    except VenueTimeout:
        raise
    except Exception as exc:
        raise classify_sdk_error(exc) from exc


def next_nonce(agent_address: str) -> int:
    """Strictly increasing ms nonces per signer across processes (the venue rejects duplicates)."""
    key = f"exec:nonce:{agent_address.lower()}"
    now = int(time.time() * 1000)
    cache.add(key, now, timeout=None)
    n = int(cache.incr(key))
    if n < now:
        n = int(cache.incr(key, now - n))
    return n
