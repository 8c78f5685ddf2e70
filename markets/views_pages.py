"""Server-rendered market pages: the overview at / and the terminal at /terminal/<SYM>.

The first paint comes from hot state; the page's ES modules then take over over /ws.
"""

from __future__ import annotations

import re
import time
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from hypersentry.contracts.snapshot import FRESHNESS_MS, SymbolSnapshot, staleness_dict
from markets.hotstate import get_hot_state

_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_\-@.]{0,31}$")
CANDLE_INTERVALS = ("1m", "5m", "15m", "1h")


def _live_symbols() -> list[str]:
    state = get_hot_state()
    status = state.get_status_sync() or {}
    live = list(status.get("subscriptions", {}).get("symbols", []))
    return live or state.all_symbols_sync()


def _row(snap: SymbolSnapshot, now_ms: int) -> dict[str, Any]:
    fresh = staleness_dict(snap, now_ms)
    return {
        "symbol": snap.symbol,
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
    """Every live symbol's overview row, by 24 h volume."""
    symbols = _live_symbols()
    snaps = get_hot_state().get_many_sync(symbols)
    now_ms = int(time.time() * 1000)
    rows = [_row(snaps[s], now_ms) for s in symbols if s in snaps]
    rows += [{"symbol": s, "stale": True} for s in symbols if s not in snaps]
    rows.sort(key=lambda r: -(r.get("volume_24h") or 0.0))
    return rows


def _is_listed(symbol: str) -> bool:
    """The venue lists `symbol` (the universe ingest stored) or it is live; True while no universe is known yet
    (before ingest's first fetch every well-formed symbol gets a page that fills in over /ws)."""
    state = get_hot_state()
    universe = state.get_universe_sync()
    if not universe:
        return True
    if any(str(t.get("symbol", "")).upper() == symbol or str(t.get("coin", "")).upper() == symbol for t in universe):
        return True
    return symbol in {s.upper() for s in _live_symbols()}


def _page_config(**extra: Any) -> dict[str, Any]:
    return {
        "ws_path": "/ws",
        "freshness_ms": FRESHNESS_MS,
        "venue_is_simulator": settings.VENUE_IS_SIMULATOR,
        **extra,
    }


@require_safe
def markets_overview(request: HttpRequest) -> HttpResponse:
    rows = overview_rows()
    config = _page_config(symbols=[r["symbol"] for r in rows][: settings.WS_MAX_SUBSCRIPTIONS])
    return render(request, "markets/overview.html", {"rows": rows, "page_config": config})


@require_safe
def terminal(request: HttpRequest, symbol: str) -> HttpResponse:
    if not _SYMBOL_RE.match(symbol):
        raise Http404("unknown symbol")
    symbol = symbol.upper()
    state = get_hot_state()
    snap = state.get_sync(symbol)
    if snap is None and not _is_listed(symbol):
        raise Http404("unknown symbol")
    now_ms = int(time.time() * 1000)
    snapshot = None
    if snap is not None:
        snapshot = snap.as_dict()
        snapshot["staleness"] = staleness_dict(snap, now_ms)
    config = _page_config(symbol=symbol, intervals=CANDLE_INTERVALS, snapshot=snapshot)
    return render(
        request,
        "markets/terminal.html",
        {"symbol": symbol, "snap": snap, "page_config": config, "intervals": CANDLE_INTERVALS},
    )
