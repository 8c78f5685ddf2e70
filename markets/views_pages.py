"""Server-rendered market pages: the overview at / and the terminal at /terminal/<SYM>.

The first paint comes from hot state; the page's ES modules then take over over /ws. Pages show and link
symbols as the venue names them (`/terminal/kPEPE`, what the order ticket sends); envelopes on /ws carry the
stream key (`KPEPE`), which the pages get alongside (`stream_symbol`, `data-stream`) to match them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from kernel import clock
from kernel.contracts.snapshot import FRESHNESS_MS, SymbolSnapshot, staleness_dict
from kernel.contracts.symbols import SYMBOL_RE
from markets import selectors
from markets.hotstate import get_hot_state

CANDLE_INTERVALS = ("1m", "5m", "15m", "1h")


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
    names = selectors.venue_names(keys=symbols, tokens=selectors.universe_list())
    now_ms = clock.now_ms()
    rows = [_row(snaps[s], names[s], now_ms) for s in symbols if s in snaps]
    rows += [{"symbol": names[s], "stream_symbol": s, "stale": True} for s in symbols if s not in snaps]
    rows.sort(key=lambda r: -(r.get("volume_24h") or 0.0))
    return rows


def _venue_symbol(symbol: str) -> str | None:
    """The venue's name for a symbol in any case, from the universe ingest stored (a page never asks the venue);
    None when the venue does not list it. Before ingest's first fetch every well-formed symbol gets a page that
    fills in over /ws."""
    if not SYMBOL_RE.match(symbol):
        return None
    return selectors.symbol_resolve(symbol=symbol, tokens=selectors.universe_list())


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
    config = _page_config(symbols=[r["stream_symbol"] for r in rows][: settings.WS_MAX_SUBSCRIPTIONS])
    return render(request, "markets/overview.html", {"rows": rows, "page_config": config})


@require_safe
def terminal(request: HttpRequest, symbol: str) -> HttpResponse:
    name = _venue_symbol(symbol)
    if name is None:
        raise Http404("unknown symbol")
    symbol = name
    snap = get_hot_state().get_sync(symbol)
    now_ms = clock.now_ms()
    snapshot = None
    if snap is not None:
        snapshot = snap.as_dict()
        snapshot["staleness"] = staleness_dict(snap, now_ms)
    config = _page_config(
        symbol=symbol, stream_symbol=selectors.stream_key(symbol=symbol), intervals=CANDLE_INTERVALS, snapshot=snapshot
    )
    return render(
        request,
        "markets/terminal.html",
        {"symbol": symbol, "snap": snap, "page_config": config, "intervals": CANDLE_INTERVALS},
    )
