"""Reads of market data from the hot state (no upstream calls; see services for read-through with repair).

Symbols: at every edge (REST, pages, orders) a market is named exactly as the venue lists it in meta.universe,
case included (`kPEPE`) — the name execution's `asset_spec` matches. Inside, hot-state keys, envelopes and WS
groups use that name upper-cased (`KPEPE`); `normalize.SymbolMap` is the one mapping between the two.
"""

from __future__ import annotations

from typing import Any, Final

from django.conf import settings

from kernel import clock
from kernel.contracts.snapshot import SymbolSnapshot, staleness_dict
from kernel.contracts.symbols import symbol_valid
from kernel.venue.market_data import get_upstream
from markets.hotstate import get_hot_state
from markets.ingest import RUNNING_WITHIN_MS
from markets.normalize import SymbolMap


def universe_list() -> list[dict[str, Any]]:
    """Perp tokens as ingest last listed them (empty when ingest never ran)."""
    return get_hot_state().get_universe_sync() or []


def symbol_map(*, tokens: list[dict[str, Any]]) -> SymbolMap:
    """Stream key (upper case) ↔ venue name, for a universe as ingest or the venue's REST listed it."""
    return SymbolMap([str(t["coin"]) for t in tokens])


def symbol_resolve(*, symbol: str, tokens: list[dict[str, Any]]) -> str | None:
    """The venue's exact name for `symbol` written in any case (kpepe, KPEPE → kPEPE); None when the venue does
    not list it. With no universe known at all the symbol is taken as written: the venue is the judge."""
    if not tokens:
        return symbol
    return symbol_map(tokens=tokens).coin(symbol)


def stream_key(*, symbol: str) -> str:
    """The key hot state, envelopes and WS groups use for a venue name (`normalize.SymbolMap`'s rule)."""
    return SymbolMap([symbol]).symbol(symbol) or symbol


def venue_names(*, keys: list[str], tokens: list[dict[str, Any]]) -> dict[str, str]:
    """Stream keys (hot-state / envelope symbols) → venue names; a key the universe lacks stays as it is."""
    smap = symbol_map(tokens=tokens)
    return {key: smap.coin(key) or key for key in keys}


def token_row(*, token: dict[str, Any]) -> dict[str, Any]:
    """A universe entry as the API lists it: `symbol` is the venue's name, what POST /trading/order accepts."""
    return {**token, "symbol": str(token["coin"])}


def snapshot_get(*, symbol: str) -> SymbolSnapshot | None:
    return get_hot_state().get_sync(symbol)


def snapshot_payload(*, snapshot: SymbolSnapshot, symbol: str, now: int | None = None) -> dict[str, Any]:
    """The snapshot under `symbol`, the venue's name for it (the stored snapshot carries the stream key)."""
    now = clock.now_ms() if now is None else now
    fresh = staleness_dict(snapshot, now)
    body = snapshot.as_dict()
    body["symbol"] = symbol
    body["staleness"] = fresh
    body["stale"] = fresh["price"]["stale"] or fresh["book"]["stale"]
    return body


def aggregator_status_get() -> dict[str, Any]:
    """Ingest's full status (from the hot state) plus whether it is running now and the shared upstream state.

    For staff: it names the venue URL, the ingest host:pid, errors and counters. Symbols are venue names.
    """
    status = get_hot_state().get_status_sync()
    now = clock.now_ms()
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
    return _status_with_venue_names(status, universe_list())


def _status_with_venue_names(status: dict[str, Any], tokens: list[dict[str, Any]]) -> dict[str, Any]:
    """Ingest reports stream keys (KPEPE); callers of the API see venue names (kPEPE)."""
    subs = status.get("subscriptions", {})
    keys = [*subs.get("symbols", []), *subs.get("on_demand", []), *status.get("freshness", {})]
    for source in status.get("sources", {}).values():
        keys += source.get("degraded_symbols", [])
    names = venue_names(keys=keys, tokens=tokens)
    for field in ("symbols", "on_demand"):
        if field in subs:
            subs[field] = [names[k] for k in subs[field]]
    status["freshness"] = {names[k]: ages for k, ages in status.get("freshness", {}).items()}
    for source in status.get("sources", {}).values():
        if "degraded_symbols" in source:
            source["degraded_symbols"] = [names[k] for k in source["degraded_symbols"]]
    return status


PUBLIC_SOURCE_FIELDS: Final = ("state", "connected", "last_message_age_ms")


def aggregator_status_public(*, status: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see: is ingest running, is the venue connected, which symbols are live and how fresh each
    is. No venue URL, host:pid, last error, counters or upstream budgets (they map the deployment for an
    attacker and the pages do not use them)."""
    subs = status.get("subscriptions", {})
    return {
        "detail": "public",
        "running": bool(status.get("running")),
        "venue": status.get("venue"),
        "status_age_ms": status.get("status_age_ms"),
        "sources": {
            name: {field: source.get(field) for field in PUBLIC_SOURCE_FIELDS}
            for name, source in status.get("sources", {}).items()
        },
        "subscriptions": {"symbols": list(subs.get("symbols", [])), "count": subs.get("count", 0)},
        "freshness": status.get("freshness", {}),
    }


def symbol_list(*, mode: str, limit: int) -> list[dict[str, Any]]:
    """Symbols for pickers. default: live ones first then by volume; volume: by volume; live: subscribed only.

    Matching against ingest's status and snapshots uses the stream key (`token["symbol"]`); rows name the venue's.
    """
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
        by_volume.sort(key=lambda t: t["symbol"])  # the key: case-insensitive order of the names
    snaps = get_hot_state().get_many_sync([t["symbol"] for t in by_volume[:limit]])
    now = clock.now_ms()
    rows = []
    for token in by_volume[:limit]:
        snap = snaps.get(token["symbol"])
        rows.append(
            {
                "symbol": str(token.get("coin", token["symbol"])),
                "coin": str(token.get("coin", token["symbol"])),
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


# --- pages ------------------------------------------------------------------------------------------------------
def _live_symbols() -> list[str]:
    state = get_hot_state()
    status = state.get_status_sync() or {}
    live = list(status.get("subscriptions", {}).get("symbols", []))
    return live or state.all_symbols_sync()


def _row(snap: SymbolSnapshot, name: str, now_ms: int) -> dict[str, Any]:
    fresh = staleness_dict(snap, now_ms)
    return {
        "symbol": name,
        "stream_symbol": snap.symbol,
        "price": snap.price,
        "change_24h": snap.change_24h,
        "volume_24h": snap.volume_24h,
        "funding_annualized": snap.funding_annualized,
        "oi_total": snap.oi_total,
        "cvd_5m": snap.cvd_spot_5m if snap.cvd_spot_5m is not None else snap.cvd_venue_5m,
        "price_ts": snap.price_ts,
        "stale": fresh["price"]["stale"],
    }


def overview_rows() -> list[dict[str, Any]]:
    """Every live symbol's overview row (venue name + stream key), by 24 h volume."""
    symbols = _live_symbols()
    snaps = get_hot_state().get_many_sync(symbols)
    names = venue_names(keys=symbols, tokens=universe_list())
    now_ms = clock.now_ms()
    rows = [_row(snaps[s], names[s], now_ms) for s in symbols if s in snaps]
    rows += [{"symbol": names[s], "stream_symbol": s, "stale": True} for s in symbols if s not in snaps]
    rows.sort(key=lambda r: -(r.get("volume_24h") or 0.0))
    return rows


def venue_symbol(symbol: str) -> str | None:
    """The venue's name for a symbol in any case, from the universe ingest stored (a page never asks the venue);
    None when the venue does not list it. Before ingest's first fetch every well-formed symbol gets a page that
    fills in over /ws."""
    if not symbol_valid(symbol):
        return None
    return symbol_resolve(symbol=symbol, tokens=universe_list())
