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
from kernel.contracts.snapshot import FRESHNESS_MS, staleness_dict
from markets import selectors
from markets.hotstate import get_hot_state

CANDLE_INTERVALS = ("1m", "5m", "15m", "1h")


def _page_config(**extra: Any) -> dict[str, Any]:
    return {
        "ws_path": "/ws",
        "freshness_ms": FRESHNESS_MS,
        "venue_is_simulator": settings.VENUE_IS_SIMULATOR,
        **extra,
    }


@require_safe
def markets_overview(request: HttpRequest) -> HttpResponse:
    rows = selectors.overview_rows()
    config = _page_config(symbols=[r["stream_symbol"] for r in rows][: settings.WS_MAX_SUBSCRIPTIONS])
    return render(request, "markets/overview.html", {"rows": rows, "page_config": config})


@require_safe
def terminal(request: HttpRequest, symbol: str) -> HttpResponse:
    name = selectors.venue_symbol(symbol)
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
