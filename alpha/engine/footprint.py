"""Order-flow footprint: sweeps, absorption, flow imbalance and impulse, combined to one score in [-1, 1].

- Sweep: an aggressive order walking the book shows up as same-side fills within `sweep_group_ms` at
  >= `sweep_min_levels` distinct prices. score = (buy sweep notional - sell sweep notional) / all notional
  in `sweep_lookback_s`.
- Absorption: heavy one-sided aggression (|delta share| >= absorption_min_delta_share and window notional
  >= absorption_heavy_mult × the average per equal window) that moved price less than
  absorption_max_progress_bps in its own direction: a passive wall is absorbing it, which is read AGAINST
  the aggressor. strength = |delta share| × (1 - progress / max_progress).
- Flow imbalance: book notional imbalance within flow_book_bps of mid on the latest fresh book, blended
  (flow_w_book) with trade-flow imbalance (buy - sell) / total over flow_window_s.
- Impulse: price moved >= impulse_min_bps within impulse_window_s AND the window's volume is
  >= impulse_volume_mult × the average: score = sign × min(1, |move| / impulse_full_bps).

Combined: weighted mean of the detectors that had data (footprint_w_*), clamped to [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from alpha.engine.config import AlphaConfig
from alpha.engine.inputs import Book, SymbolHistory, Trade
from alpha.engine.signal import ComponentSignal, at_or_before, between, clamp, rounded, sign

BOOK_MAX_AGE_MS = 4_000  # the book freshness threshold of the symbol-state contract (seed §7)


def _avg_window_notional(trades: Sequence[Trade], total_ntl: float, now_ms: int, window_ms: int) -> float:
    """Average notional per `window_ms` over `trades` (all at or before now; their total is `total_ntl`)."""
    if not trades:
        return 0.0
    return total_ntl * window_ms / max(window_ms, now_ms - trades[0].ts_ms)


def sweep(trades: Sequence[Trade], cfg: AlphaConfig) -> ComponentSignal:
    if not trades:
        return ComponentSignal.no_data()
    total = buy_sweeps = sell_sweeps = 0.0
    count = 0
    group_side, group_start, group_ntl = 0, 0, 0.0
    group_levels: set[float] = set()

    def close() -> None:
        nonlocal buy_sweeps, sell_sweeps, count
        if group_side and len(group_levels) >= cfg.sweep_min_levels:
            count += 1
            if group_side > 0:
                buy_sweeps += group_ntl
            else:
                sell_sweeps += group_ntl

    for t in trades:
        ntl = t.ntl
        total += ntl
        if t.side == group_side and t.ts_ms - group_start <= cfg.sweep_group_ms:
            group_levels.add(t.px)
            group_ntl += ntl
            continue
        close()
        group_side, group_start, group_ntl, group_levels = t.side, t.ts_ms, ntl, {t.px}
    close()
    if total <= 0:
        return ComponentSignal.no_data()
    score = clamp((buy_sweeps - sell_sweeps) / total)
    inputs = {"data": True, "sweeps": count, "buy_notional": rounded(buy_sweeps, 2)}
    return ComponentSignal(score, {**inputs, "sell_notional": rounded(sell_sweeps, 2)})


def absorption(
    trades: Sequence[Trade], total_ntl: float, window: Sequence[Trade], now_ms: int, cfg: AlphaConfig
) -> ComponentSignal:
    if len(window) < 2:
        return ComponentSignal.no_data()
    buy = sum(t.ntl for t in window if t.side > 0)
    sell = sum(t.ntl for t in window if t.side < 0)
    total = buy + sell
    average = _avg_window_notional(trades, total_ntl, now_ms, int(cfg.absorption_window_s * 1000))
    delta_share = (buy - sell) / total if total > 0 else 0.0
    progress_bps = (window[-1].px / window[0].px - 1.0) * 1e4 * sign(delta_share)
    inputs: dict[str, Any] = {
        "data": True,
        "delta_share": rounded(delta_share),
        "progress_bps": rounded(progress_bps, 2),
        "heavy_ratio": rounded(total / average if average > 0 else None, 3),
    }
    heavy = average > 0 and total >= cfg.absorption_heavy_mult * average
    if not heavy or abs(delta_share) < cfg.absorption_min_delta_share:
        return ComponentSignal(0.0, inputs)
    if progress_bps >= cfg.absorption_max_progress_bps:
        return ComponentSignal(0.0, inputs)
    stall = (
        1.0 - max(0.0, progress_bps) / cfg.absorption_max_progress_bps if cfg.absorption_max_progress_bps > 0 else 1.0
    )
    return ComponentSignal(clamp(-sign(delta_share) * abs(delta_share) * stall), {**inputs, "absorbed": True})


def book_imbalance(book: Book | None, now_ms: int, cfg: AlphaConfig) -> float | None:
    if book is None or now_ms - book.ts_ms > BOOK_MAX_AGE_MS:
        return None
    mid = book.mid()
    if mid is None:
        return None
    lo, hi = mid * (1 - cfg.flow_book_bps / 1e4), mid * (1 + cfg.flow_book_bps / 1e4)
    bids = sum(px * sz for px, sz in book.bids if px >= lo)
    asks = sum(px * sz for px, sz in book.asks if px <= hi)
    return (bids - asks) / (bids + asks) if bids + asks > 0 else None


def flow(window: Sequence[Trade], book: Book | None, now_ms: int, cfg: AlphaConfig) -> ComponentSignal:
    imb = book_imbalance(book, now_ms, cfg)
    buy = sum(t.ntl for t in window if t.side > 0)
    sell = sum(t.ntl for t in window if t.side < 0)
    trade_imb = (buy - sell) / (buy + sell) if buy + sell > 0 else None
    if imb is None and trade_imb is None:
        return ComponentSignal.no_data()
    if imb is None or trade_imb is None:
        score = imb if imb is not None else trade_imb
    else:
        score = cfg.flow_w_book * imb + (1 - cfg.flow_w_book) * trade_imb
    return ComponentSignal(clamp(score or 0.0), {"data": True, "book": rounded(imb), "trades": rounded(trade_imb)})


def impulse(
    history: SymbolHistory,
    trades: Sequence[Trade],
    total_ntl: float,
    window: Sequence[Trade],
    now_ms: int,
    cfg: AlphaConfig,
) -> ComponentSignal:
    window_ms = int(cfg.impulse_window_s * 1000)
    last = at_or_before(history.prices, now_ms)
    start = at_or_before(history.prices, now_ms - window_ms)
    if last is None or start is None or start.value <= 0:
        return ComponentSignal.no_data()
    move_bps = (last.value / start.value - 1.0) * 1e4
    volume = sum(t.ntl for t in window)
    average = _avg_window_notional(trades, total_ntl, now_ms, window_ms)
    confirmed = average > 0 and volume >= cfg.impulse_volume_mult * average
    inputs = {
        "data": True,
        "move_bps": rounded(move_bps, 2),
        "volume_ratio": rounded(volume / average if average else None, 3),
    }
    if abs(move_bps) < cfg.impulse_min_bps or not confirmed:
        return ComponentSignal(0.0, inputs)
    return ComponentSignal(clamp(sign(move_bps) * min(1.0, abs(move_bps) / cfg.impulse_full_bps)), inputs)


def footprint(*, history: SymbolHistory, now_ms: int, config: AlphaConfig) -> ComponentSignal:
    cfg = config
    trades = between(history.trades, now_ms - int(cfg.trades_horizon_s * 1000), now_ms)
    total_ntl = math.fsum(t.ntl for t in trades)

    def recent(seconds: float) -> Sequence[Trade]:
        return between(trades, now_ms - int(seconds * 1000), now_ms)

    parts = {
        "sweep": (cfg.footprint_w_sweep, sweep(recent(cfg.sweep_lookback_s), cfg)),
        "absorption": (
            cfg.footprint_w_absorption,
            absorption(trades, total_ntl, recent(cfg.absorption_window_s), now_ms, cfg),
        ),
        "flow": (cfg.footprint_w_flow, flow(recent(cfg.flow_window_s), history.book, now_ms, cfg)),
        "impulse": (
            cfg.footprint_w_impulse,
            impulse(history, trades, total_ntl, recent(cfg.impulse_window_s), now_ms, cfg),
        ),
    }
    active = [(w, s.score) for w, s in parts.values() if s.inputs.get("data") and w > 0]
    total_w = sum(w for w, _ in active)
    if total_w <= 0:
        return ComponentSignal(0.0, {"data": False, **{k: s.inputs | {"score": 0.0} for k, (_, s) in parts.items()}})
    score = clamp(sum(w * s for w, s in active) / total_w)
    return ComponentSignal(
        score, {"data": True, **{k: s.inputs | {"score": rounded(s.score)} for k, (_, s) in parts.items()}}
    )
