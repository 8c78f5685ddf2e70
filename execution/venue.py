"""Venue I/O for the execution app, over the one venue client (kernel.venue_client: shared IP budget, backoff
after 429s, hard timeouts): cached meta, /info reads under the MASTER address, signing and signed actions.

* `meta` / `spotMeta` are fetched once per EXECUTION_META_CACHE_SEC (shared cache + process memo).
* Reads are always for the user's master address (`user.address`), never the agent's.
* Signed actions are posted as the SDK would (`{action, nonce, signature, vaultAddress, expiresAfter}`); the
  signature comes from the SDK's `sign_l1_action` with nonces strictly increasing per signer across processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from execution.rounding import AssetSpec
from kernel import clock
from kernel import venue_client as vc
from kernel.cache_safe import cache_call
from kernel.venue_client import VenueError, VenueTimeout

__all__ = [
    "VenueError",
    "VenueTimeout",
    "asset_spec",
    "base_url",
    "clear_meta_cache",
    "info",
    "next_nonce",
    "post_signed",
    "sign_action",
    "venue_meta",
]

_memo: dict[str, tuple[float, Any]] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class VenueMeta:
    meta: dict[str, Any]
    spot_meta: dict[str, Any]


def base_url() -> str:
    return str(settings.HYPERSENTRY_VENUE_URL)


def info(body: dict[str, Any], *, priority: str = vc.ACCOUNT, timeout: float | None = None) -> Any:
    """POST /info through the shared budget; VenueError (4xx/5xx/429, or not sent: budget/backoff), VenueTimeout."""
    return vc.get_client(base_url()).info(body, priority=priority, timeout=timeout)


def _cached(name: str, loader: Callable[[], Any]) -> Any:
    now = time.monotonic()
    ttl = settings.EXECUTION_META_CACHE_SEC
    key = f"{name}|{base_url()}"
    with _memo_lock:
        hit = _memo.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
    value = cache_call(lambda: cache.get(f"exec:venue:{key}"), fallback=None, what="venue_meta")
    if value is None:
        value = loader()
        cache_call(lambda: cache.set(f"exec:venue:{key}", value, ttl), fallback=None, what="venue_meta")
    with _memo_lock:
        _memo[key] = (now, value)
    return value


def venue_meta() -> VenueMeta:
    meta = _cached("meta", lambda: info({"type": "meta", "dex": ""}, priority=vc.ORDER))
    spot = _cached("spotMeta", lambda: info({"type": "spotMeta"}, priority=vc.ORDER))
    return VenueMeta(meta=meta, spot_meta=spot)


def clear_meta_cache() -> None:
    with _memo_lock:
        _memo.clear()


def asset_spec(symbol: str) -> AssetSpec | None:
    """Perp asset spec by its exact venue name (asset id = index in meta.universe); None if not listed."""
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


def is_mainnet() -> bool:
    from hyperliquid.utils.constants import MAINNET_API_URL

    return base_url().rstrip("/") == MAINNET_API_URL


def sign_action(wallet: Any, action: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Sign an L1 action with the agent `wallet` (SDK `sign_l1_action`) under a fresh per-signer nonce."""
    from hyperliquid.utils.signing import sign_l1_action

    nonce = next_nonce(wallet.address)
    sig = sign_l1_action(wallet, action, None, nonce, None, is_mainnet())
    return sig, nonce


def post_signed(
    action: dict[str, Any],
    signature: dict[str, Any],
    nonce: int,
    *,
    priority: str = vc.ORDER,
    timeout: float | None = None,
) -> Any:
    """Post an already-signed action (the agent signs for its master: no vaultAddress)."""
    payload = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None, "expiresAfter": None}
    return vc.get_client(base_url()).exchange(payload, priority=priority, timeout=timeout)


_local_nonces: dict[str, int] = {}
_nonce_lock = threading.Lock()


def next_nonce(agent_address: str) -> int:
    """Strictly increasing ms nonces per signer across processes (the venue rejects duplicates). Without the shared
    cache, strictly increasing within this process: a clash with another process is refused by the venue as a
    duplicate nonce (nothing executes), never accepted twice."""
    key = f"exec:nonce:{agent_address.lower()}"
    now = clock.now_ms()

    def shared() -> int:
        cache.add(key, now, timeout=None)
        n = int(cache.incr(key))
        if n < now:
            n = int(cache.incr(key, now - n))
        return n

    n = cache_call(shared, fallback=-1, what="nonce")
    with _nonce_lock:
        if n < 0:
            n = max(now, _local_nonces.get(key, 0) + 1)
        _local_nonces[key] = max(n, _local_nonces.get(key, 0))
    return n
