"""The venue's metadata, cached: `meta` / `spotMeta` and the perp asset specs derived from them.

* Fetched once per EXECUTION_META_CACHE_SEC (shared cache + process memo), at order priority (orders need them).
* `asset_spec(symbol)` looks a perp up by its exact venue name (asset id = index in meta.universe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from kernel.cache_safe import cache_call
from kernel.venue import client as vc
from kernel.venue.client import VenueError, VenueTimeout
from kernel.venue.rounding import AssetSpec

_memo: dict[str, tuple[float, Any]] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class VenueMeta:
    meta: dict[str, Any]
    spot_meta: dict[str, Any]


def _cached(name: str, loader: Callable[[], Any]) -> Any:
    now = time.monotonic()
    ttl = settings.EXECUTION_META_CACHE_SEC
    key = f"{name}|{vc.base_url()}"
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
    meta = _cached("meta", lambda: vc.info({"type": "meta", "dex": ""}, priority=vc.ORDER))
    spot = _cached("spotMeta", lambda: vc.info({"type": "spotMeta"}, priority=vc.ORDER))
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
