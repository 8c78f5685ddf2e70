"""Reads of market data from the hot state (no upstream calls; see services for read-through with repair)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from hypersentry.contracts.snapshot import SymbolSnapshot, staleness_dict
from markets.hotstate import get_hot_state
from markets.ingest import RUNNING_WITHIN_MS
from markets.upstream import get_upstream


def now_ms() -> int:
    return int(time.time() * 1000)


def universe_list() -> list[dict[str, Any]]:
    """Perp tokens as ingest last listed them (empty when ingest never ran)."""
    return get_hot_state().get_universe_sync() or []


def coin_for_symbol(*, symbol: str) -> str | None:
    """The venue coin for our symbol (kPEPE for KPEPE), None when the universe is known and lacks it."""
    symbol = symbol.upper()
    tokens = universe_list()
    if not tokens:
        return symbol
    for token in tokens:
        if token["symbol"] == symbol:
            return str(token["coin"])
    return None


def snapshot_get(*, symbol: str) -> SymbolSnapshot | None:
    return get_hot_state().get_sync(symbol)


def snapshot_payload(*, snapshot: SymbolSnapshot, now: int | None = None) -> dict[str, Any]:
    now = now_ms() if now is None else now
    fresh = staleness_dict(snapshot, now)
    body = snapshot.as_dict()
    body["staleness"] = fresh
    body["stale"] = fresh["price"]["stale"] or fresh["book"]["stale"]
    return body


def aggregator_status_get() -> dict[str, Any]:
    """Ingest's own status (from the hot state) plus whether it is running now and the shared upstream state."""
    status = get_hot_state().get_status_sync()
    now = now_ms()
    if status is None:
        status = {
            "running": False,
            "venue": settings.HYPERSENTRY_VENUE,
            "venue_url": settings.HYPERSENTRY_VENUE_URL,
            "updated_at_ms": None,
            "subscriptions": {"symbols": [], "count": 0, "channels": 0, "on_demand": []},
            "sources": {},
            "freshness": {},
            "reconnects": 0,
            "stalls": 0,
            "rejected": {},
            "messages": {},
        }
    else:
        age = now - int(status.get("updated_at_ms") or 0)
        status["running"] = bool(status.get("running")) and age <= RUNNING_WITHIN_MS
        status["status_age_ms"] = age
        if not status["running"]:
            for source in status.get("sources", {}).values():
                source["state"] = "stopped"
                source["connected"] = False
    upstream = get_upstream().stats()
    status["upstream"] = upstream
    status["rate_limited_429"] = {c: v["rate_limited_429"] for c, v in upstream.items()}
    status["rejected_total"] = sum(status.get("rejected", {}).values())
    return status


def symbol_list(*, mode: str, limit: int) -> list[dict[str, Any]]:
    """Symbols for pickers. default: live ones first then by volume; volume: by volume; live: subscribed only."""
    tokens = universe_list()
    status = get_hot_state().get_status_sync() or {}
    live = set(status.get("subscriptions", {}).get("symbols", []))
    if not tokens:
        tokens = [{"symbol": s, "coin": s, "day_ntl_vlm": None} for s in get_hot_state().all_symbols_sync()]
    if mode == "live":
        tokens = [t for t in tokens if t["symbol"] in live]
    by_volume = sorted(tokens, key=lambda t: -(t.get("day_ntl_vlm") or 0.0))
    if mode == "default":
        by_volume.sort(key=lambda t: t["symbol"] not in live)  # stable: live first, each by volume
    elif mode == "name":
        by_volume.sort(key=lambda t: t["symbol"])
    snaps = get_hot_state().get_many_sync([t["symbol"] for t in by_volume[:limit]])
    now = now_ms()
    rows = []
    for token in by_volume[:limit]:
        snap = snaps.get(token["symbol"])
        rows.append(
            {
                "symbol": token["symbol"],
                "coin": token.get("coin", token["symbol"]),
                "live": token["symbol"] in live,
                "price": snap.price if snap else None,
                "price_age_ms": (now - snap.price_ts) if snap and snap.price_ts else None,
                "change_24h": snap.change_24h if snap else None,
                "volume_24h": (snap.volume_24h if snap and snap.volume_24h is not None else token.get("day_ntl_vlm")),
                "funding_rate": snap.funding_rate if snap else None,
                "oi_total": snap.oi_total if snap else None,
            }
        )
    return rows
