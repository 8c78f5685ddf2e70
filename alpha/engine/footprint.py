"""Order-flow footprint: sweeps, absorption, flow imbalance and impulse, combined to one score in [-1, 1].

All four read the per-second flow buckets and the sweep events that `update()` folds in at ingest, so one
analysis costs O(seconds in the window), not O(trades).

- Sweep: an aggressive order walking the book (same-side fills within `sweep_group_ms` at >=
  `sweep_min_levels` distinct prices, detected at ingest). score = (buy sweep notional - sell sweep
  notional) / all aggressive notional in `sweep_lookback_s`.
- Absorption: heavy one-sided aggression (|delta share| >= absorption_min_delta_share and window notional
  >= absorption_heavy_mult × the average per equal window) that moved price less than
  absorption_max_progress_bps in its own direction: a passive wall is absorbing it, which is read AGAINST
  the aggressor. strength = |delta share| × (1 - max(0, progress) / max_progress).
- Flow imbalance: book notional imbalance within flow_book_bps of mid on the latest fresh book (<= 4 s),
  blended (flow_w_book) with trade-flow imbalance (buy - sell) / total over flow_window_s.
- Impulse: price moved >= impulse_min_bps within impulse_window_s AND the window's volume is
  >= impulse_volume_mult × the average: score = sign × min(1, |move| / impulse_full_bps).

Combined: weighted mean of the detectors that had data (footprint_w_*), clamped to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alpha.engine.config import AlphaConfig
from alpha.engine.inputs import Book, FlowBucket, SymbolHistory
from alpha.engine.signal import ComponentSignal, at_or_before, between, clamp, rounded, sign

BOOK_MAX_AGE_MS = 4_000  # the book freshness threshold of the symbol-state contract (seed §7)


class FlowWindow:
    """Sums over the per-second buckets of the trade horizon, and the average notional per window length."""

    def __init__(self, buckets: Sequence[FlowBucket], now_ms: int, horizon_s: float) -> None:
        self.now_ms = now_ms
        self.buckets = between(buckets, now_ms - int(horizon_s * 1000), now_ms)
        self.total = sum([b.buy_ntl + b.sell_ntl for b in self.buckets])
        self.span_ms = now_ms - self.buckets[0].ts_ms if self.buckets else 0
        self._recent: dict[float, tuple[float, float]] = {}  # several detectors share a window length

    def recent(self, seconds: float) -> tuple[float, float]:
        out = self._recent.get(seconds)
        if out is None:
            window = between(self.buckets, self.now_ms - int(seconds * 1000), self.now_ms)
            out = self._recent[seconds] = (sum([b.buy_ntl for b in window]), sum([b.sell_ntl for b in window]))
        return out

    def average(self, seconds: float) -> float:
        window_ms = int(seconds * 1000)
        return self.total * window_ms / max(window_ms, self.span_ms) if self.buckets else 0.0


def sweep(history: SymbolHistory, flow: FlowWindow, cfg: AlphaConfig) -> ComponentSignal:
    buy, sell = flow.recent(cfg.sweep_lookback_s)
    if buy + sell <= 0:
        return ComponentSignal.no_data()
    events = between(history.sweeps, flow.now_ms - int(cfg.sweep_lookback_s * 1000), flow.now_ms)
    buy_sw = sum([s.ntl for s in events if s.side > 0])
    sell_sw = sum([s.ntl for s in events if s.side < 0])
    inputs = {
        "data": True,
        "sweeps": len(events),
        "buy_notional": rounded(buy_sw, 2),
        "sell_notional": rounded(sell_sw, 2),
    }
    return ComponentSignal(clamp((buy_sw - sell_sw) / (buy + sell)), inputs)


def _move_bps(history: SymbolHistory, now_ms: int, seconds: float) -> float | None:
    last = at_or_before(history.prices, now_ms)  # small enough to repeat (two bisects of a C-keyed series)
    start = at_or_before(history.prices, now_ms - int(seconds * 1000))
    if last is None or start is None or start.value <= 0:
        return None
    return (last.value / start.value - 1.0) * 1e4


def absorption(history: SymbolHistory, flow: FlowWindow, cfg: AlphaConfig) -> ComponentSignal:
    buy, sell = flow.recent(cfg.absorption_window_s)
    move = _move_bps(history, flow.now_ms, cfg.absorption_window_s)
    total = buy + sell
    if total <= 0 or move is None:
        return ComponentSignal.no_data()
    average = flow.average(cfg.absorption_window_s)
    delta_share = (buy - sell) / total
    progress_bps = move * sign(delta_share)
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
    stall = 1.0 - max(0.0, progress_bps) / cfg.absorption_max_progress_bps
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


def flow_imbalance(history: SymbolHistory, flow: FlowWindow, cfg: AlphaConfig) -> ComponentSignal:
    imb = book_imbalance(history.book, flow.now_ms, cfg)
    buy, sell = flow.recent(cfg.flow_window_s)
    trade_imb = (buy - sell) / (buy + sell) if buy + sell > 0 else None
    if imb is None and trade_imb is None:
        return ComponentSignal.no_data()
    if imb is None or trade_imb is None:
        score = imb if imb is not None else trade_imb
    else:
        score = cfg.flow_w_book * imb + (1 - cfg.flow_w_book) * trade_imb
    return ComponentSignal(clamp(score or 0.0), {"data": True, "book": rounded(imb), "trades": rounded(trade_imb)})


def impulse(history: SymbolHistory, flow: FlowWindow, cfg: AlphaConfig) -> ComponentSignal:
    move_bps = _move_bps(history, flow.now_ms, cfg.impulse_window_s)
    if move_bps is None:
        return ComponentSignal.no_data()
    volume = sum(flow.recent(cfg.impulse_window_s))
    average = flow.average(cfg.impulse_window_s)
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
    flow = FlowWindow(history.flow, now_ms, cfg.trades_horizon_s)
    parts = {
        "sweep": (cfg.footprint_w_sweep, sweep(history, flow, cfg)),
        "absorption": (cfg.footprint_w_absorption, absorption(history, flow, cfg)),
        "flow": (cfg.footprint_w_flow, flow_imbalance(history, flow, cfg)),
        "impulse": (cfg.footprint_w_impulse, impulse(history, flow, cfg)),
    }
    active = [(w, s.score) for w, s in parts.values() if s.inputs.get("data") and w > 0]
    total_w = sum([w for w, _ in active])
    details = {k: {**s.inputs, "score": rounded(s.score)} for k, (_, s) in parts.items()}
    if total_w <= 0:
        return ComponentSignal(0.0, {"data": False, **details})
    return ComponentSignal(clamp(sum([w * s for w, s in active]) / total_w), {"data": True, **details})
