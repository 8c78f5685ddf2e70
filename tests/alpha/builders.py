"""Synthetic market histories for the alpha engine tests (pure: no database, no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alpha.engine import AlphaConfig, SymbolHistory, empty_history, update
from alpha.engine.config import DEFAULT_CONFIG

T0 = 1_700_000_000_000


def build_history(
    symbol: str = "ETH",
    *,
    seconds: int = 600,
    step_ms: int = 1000,
    price: Callable[[float], float] = lambda t: 3000.0,
    oi: Callable[[float], float] = lambda t: 1_000_000.0,
    funding: Callable[[float], float] = lambda t: 0.0000125,
    trades: Callable[[float, int, float], list[dict[str, Any]]] | None = None,
    book: Callable[[float, float], dict[str, list[list[str]]]] | None = None,
    liquidations: Callable[[float, int], list[dict[str, Any]]] | None = None,
    config: AlphaConfig = DEFAULT_CONFIG,
) -> tuple[SymbolHistory, int]:
    """Feed one snapshot per step for `seconds` (callables get t in seconds from the start); (history, now)."""
    history = empty_history(symbol)
    ts = T0
    for i in range(int(seconds * 1000 / step_ms) + 1):
        ts = T0 + i * step_ms
        t = i * step_ms / 1000.0
        px = price(t)
        snap: dict[str, Any] = {
            "symbol": symbol,
            "price": str(px),
            "price_ts": ts,
            "oi_total": oi(t),
            "oi_ts": ts,
            "funding_rate": funding(t),
            "funding_ts": ts,
            "trades": trades(t, ts, px) if trades else [],
        }
        if book is not None:
            snap["book"], snap["book_ts"] = book(t, px), ts
        liqs = liquidations(t, ts) if liquidations else None
        history = update(history, snap, liquidations=liqs, config=config)
    return history, ts


def linear(start: float, pct_per_300s: float) -> Callable[[float], float]:
    return lambda t: start * (1 + pct_per_300s / 100.0 * t / 300.0)


def symmetric_book(t: float, px: float, size: str = "5") -> dict[str, list[list[str]]]:
    bids = [[str(px * (1 - 0.0001 * (i + 1))), size, 1] for i in range(10)]
    asks = [[str(px * (1 + 0.0001 * (i + 1))), size, 1] for i in range(10)]
    return {"bids": bids, "asks": asks}
