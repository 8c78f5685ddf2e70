"""Pure feature builders over normalised venue data: no I/O, no clock, no Django.

Everything here takes plain values (floats for arithmetic, the venue's decimal strings kept for display) and a
caller-supplied `now_ms`, so ingest, the REST repair path, the benchmark and the tests compute the same numbers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# A book level as kept in the hot state: [px, sz] decimal strings exactly as the venue sent them.
Level = list[str]

HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000
# Hyperliquid pays funding every hour; the quoted rate is per hour.
FUNDING_PERIODS_PER_YEAR: Final = 24 * 365

CANDLE_INTERVALS: Final[dict[str, int]] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
CANDLES_KEPT: Final = 500


# --- Book -----------------------------------------------------------------------------------------------------
def book_stats(
    *, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]], depth_bps: float = 10.0
) -> dict[str, Any]:
    """Spread, mid, depth within `depth_bps` of the mid (notional per side) and imbalance in [-1, 1].

    `bids` best (highest) first, `asks` best (lowest) first, each (px, sz). Empty sides give None values.
    """
    best_bid = bids[0][0] if bids else None
    best_ask = asks[0][0] if asks else None
    if best_bid is None or best_ask is None:
        return {
            "best_bid": best_bid,
            "best_ask": best_ask,
            "mid": None,
            "spread": None,
            "spread_bps": None,
            "depth_bps": depth_bps,
            "bid_depth_usd": None,
            "ask_depth_usd": None,
            "imbalance": None,
        }
    mid = (best_bid + best_ask) / 2.0
    spread = best_ask - best_bid
    lo = mid * (1.0 - depth_bps / 10_000.0)
    hi = mid * (1.0 + depth_bps / 10_000.0)
    bid_depth = sum(px * sz for px, sz in bids if px >= lo)
    ask_depth = sum(px * sz for px, sz in asks if px <= hi)
    total = bid_depth + ask_depth
    return {
        "best_bid": best_bid,
        "best_ask": best_ask,
        "mid": mid,
        "spread": spread,
        "spread_bps": (spread / mid * 10_000.0) if mid > 0 else None,
        "depth_bps": depth_bps,
        "bid_depth_usd": bid_depth,
        "ask_depth_usd": ask_depth,
        "imbalance": ((bid_depth - ask_depth) / total) if total > 0 else 0.0,
    }


def book_stats_sides(
    *, bids: tuple[Sequence[float], Sequence[float]], asks: tuple[Sequence[float], Sequence[float]], depth_bps: float
) -> dict[str, Any]:
    """`book_stats` over sides given as (prices, sizes) columns, best first (ingest's shape)."""
    return book_stats(bids=list(zip(*bids, strict=True)), asks=list(zip(*asks, strict=True)), depth_bps=depth_bps)


# --- Trades and CVD ---------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Trade:
    px: float
    sz: float
    side: str  # aggressor: "B" buy, "A" sell
    time_ms: int
    px_str: str
    sz_str: str
    tid: int | None = None

    def as_wire(self) -> dict[str, Any]:
        return {"px": self.px_str, "sz": self.sz_str, "side": self.side, "time": self.time_ms, "tid": self.tid}


def signed_notional(trade: Trade) -> float:
    """Aggressive buys add, aggressive sells subtract (CVD convention)."""
    notional = trade.px * trade.sz
    return notional if trade.side == "B" else -notional


@dataclass(slots=True)
class CvdState:
    """Running venue CVD plus per-second buckets for the 1 m / 5 m windows, with running window sums.

    Each window keeps its own deque of [second, delta] and its sum; expiry subtracts, so both the add and the
    read are O(1) amortised (a read at every publish over 300 buckets for 80 symbols would not be).
    """

    running: float = 0.0
    w1: deque[list[float]] = field(default_factory=deque)
    w5: deque[list[float]] = field(default_factory=deque)
    sum1: float = 0.0
    sum5: float = 0.0
    last_ms: int = 0
    # The newest second's delta, not yet in the windows: trades add to it with one comparison; it enters both
    # windows when a newer second starts or the windows are read.
    pend_s: int = -1
    pend: float = 0.0


def _bucket_add(window: deque[list[float]], second: float, delta: float) -> None:
    if window and window[-1][0] >= second:
        # Same second, or a late trade (replayed on subscribe): fold into the newest bucket, never reorder.
        window[-1][1] += delta
    else:
        window.append([second, delta])


def _expire(window: deque[list[float]], total: float, horizon: float) -> float:
    while window and window[0][0] <= horizon:
        total -= window.popleft()[1]
    return total


def cvd_add(state: CvdState, trade: Trade) -> None:
    cvd_add_signed(state, time_ms=trade.time_ms, delta=signed_notional(trade))


def cvd_add_signed(state: CvdState, *, time_ms: int, delta: float) -> None:
    """Fold one trade's signed notional (buys +, sells -) into the running CVD and both windows."""
    state.running += delta
    second = time_ms // 1000
    if second > state.pend_s:
        _cvd_push(state)
        state.pend_s, state.pend = second, delta
    else:
        state.pend += delta  # same second, or a late trade: into the newest bucket, never reordered
    if time_ms > state.last_ms:
        state.last_ms = time_ms


def _cvd_push(state: CvdState) -> None:
    if state.pend_s >= 0:
        second, delta = float(state.pend_s), state.pend
        _bucket_add(state.w1, second, delta)
        _bucket_add(state.w5, second, delta)
        state.sum1 += delta
        state.sum5 += delta
        state.pend_s, state.pend = -1, 0.0


def trades_fold(cvd: CvdState, deltas: list[Candle], rows: Iterable[tuple[float, float, str, int, Any]]) -> None:
    """CVD and the pending 1m mini-candles for accepted trades (px, sz, side, time_ms, _), in arrival order.

    The per-trade work of both, in one loop with the state in locals (this runs for every trade).
    """
    running, pend_s, pend, last_ms = cvd.running, cvd.pend_s, cvd.pend, cvd.last_ms
    d = deltas[-1] if deltas else None
    for px, sz, side, t, _ in rows:
        delta = px * sz if side == "B" else -px * sz
        running += delta
        second = t // 1000
        if second > pend_s:
            if pend_s >= 0:
                cvd.pend_s, cvd.pend = pend_s, pend
                _cvd_push(cvd)
            pend_s, pend = second, delta
        else:
            pend += delta
        if t > last_ms:
            last_ms = t
        minute = t - t % MINUTE_MS
        if d is not None and d.t == minute:
            if px > d.h:
                d.h = px
            elif px < d.l:
                d.l = px
            d.c = px
            d.v += sz
            d.n += 1
        else:
            d = Candle(t=minute, o=px, h=px, l=px, c=px, v=sz, n=1)
            deltas.append(d)
    cvd.running, cvd.pend_s, cvd.pend, cvd.last_ms = running, pend_s, pend, last_ms


def cvd_windows(state: CvdState, *, now_ms: int) -> dict[str, float]:
    """Running CVD and the sums over the last 60 s and 300 s before `now_ms` (buckets older are dropped)."""
    now_s = now_ms // 1000
    _cvd_push(state)
    state.sum1 = _expire(state.w1, state.sum1, now_s - 61)
    state.sum5 = _expire(state.w5, state.sum5, now_s - 301)
    if not state.w1:
        state.sum1 = 0.0  # no float drift once a window empties
    if not state.w5:
        state.sum5 = 0.0
    return {"cvd_venue": state.running, "cvd_venue_1m": state.sum1, "cvd_venue_5m": state.sum5}


# --- Composites (architecture seed §8) ---------------------------------------------------------------------------
def composite(values: Mapping[str, float | None], weights: Mapping[str, float]) -> tuple[float | None, list[str]]:
    """Weighted composite over the venues that have a value, renormalised by the weights available.

    Returns (value, venues used). With one venue the composite is that venue's value.
    """
    used = [v for v, x in values.items() if x is not None and weights.get(v, 0.0) > 0 and math.isfinite(x)]
    total_w = sum(weights[v] for v in used)
    if not used or total_w <= 0:
        return None, []
    weighted = [weights[v] * float(values[v] or 0.0) for v in used]
    return sum(weighted) / total_w, used


def oi_composite(*, oi_by_venue: Mapping[str, float | None], weights: Mapping[str, float]) -> dict[str, Any]:
    value, used = composite(oi_by_venue, weights)
    # oi_total is a weighted average of per-venue OI renormalised by available weights; with the one venue it
    # equals that venue's OI and the source says so.
    return {
        "oi_total": value,
        "oi_hl": oi_by_venue.get("hyperliquid"),
        "oi_binance_perp": oi_by_venue.get("binance_perp"),
        "oi_source": "+".join(used) if used else None,
    }


def cvd_spot_composite(*, cvd_by_venue: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    return composite(cvd_by_venue, weights)[0]


def cvd_source_label(*, spot_venues: Iterable[str]) -> str:
    spot = sorted(spot_venues)
    if not spot:
        return "hyperliquid (venue only; no spot venues configured)"
    return "hyperliquid + spot:" + "+".join(spot)


# --- Funding and asset context -------------------------------------------------------------------------------
def funding_annualised(rate_per_hour: float) -> float:
    return rate_per_hour * FUNDING_PERIODS_PER_YEAR


def next_funding_ms(now_ms: int) -> int:
    """Funding is paid on the full hour: the next one strictly after `now_ms`."""
    return (now_ms // HOUR_MS + 1) * HOUR_MS


def change_24h_pct(*, price: float | None, prev_day_px: float | None) -> float | None:
    if price is None or not prev_day_px:
        return None
    return (price - prev_day_px) / prev_day_px * 100.0


def oi_notional(*, oi_coins: float | None, mark_px: float | None) -> float | None:
    """The venue quotes OI in coins; composites add venues in USD notional."""
    if oi_coins is None or mark_px is None:
        return None
    return oi_coins * mark_px


# --- Candles -----------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Candle:
    t: int  # open time ms
    o: float
    h: float
    l: float  # noqa: E741 - the venue's field name
    c: float
    v: float  # base volume
    n: int

    def as_wire(self, *, interval: str, symbol: str) -> dict[str, Any]:
        return {
            "t": self.t,
            "T": self.t + CANDLE_INTERVALS[interval] - 1,
            "s": symbol,
            "i": interval,
            "o": self.o,
            "h": self.h,
            "l": self.l,
            "c": self.c,
            "v": self.v,
            "n": self.n,
        }


def candle_open_time(time_ms: int, interval: str) -> int:
    step = CANDLE_INTERVALS[interval]
    return time_ms - time_ms % step


def candle_add_trade(candles: deque[Candle], trade: Trade, interval: str) -> Candle:
    """Fold one trade into the candle series (newest last); returns the candle it landed in."""
    t = candle_open_time(trade.time_ms, interval)
    if candles and candles[-1].t == t:
        c = candles[-1]
        c.h = max(c.h, trade.px)
        c.l = min(c.l, trade.px)
        c.c = trade.px
        c.v += trade.sz
        c.n += 1
        return c
    if candles and candles[-1].t > t:
        # A late trade for a closed candle: update it in place if we still hold it; never reorder.
        for c in reversed(candles):
            if c.t == t:
                c.h, c.l, c.v, c.n = max(c.h, trade.px), min(c.l, trade.px), c.v + trade.sz, c.n + 1
                return c
        return candles[-1]
    c = Candle(t=t, o=trade.px, h=trade.px, l=trade.px, c=trade.px, v=trade.sz, n=1)
    candles.append(c)
    return c


def candle_fold(candles: deque[Candle], delta: Candle, interval: str) -> None:
    """Apply a 1m mini-candle (trades of one minute, in order) to a series of `interval` (newest last)."""
    t = candle_open_time(delta.t, interval)
    if candles and candles[-1].t == t:
        c = candles[-1]
        c.h = max(c.h, delta.h)
        c.l = min(c.l, delta.l)
        c.c = delta.c
        c.v += delta.v
        c.n += delta.n
        return
    if candles and candles[-1].t > t:
        # Late trades for a closed candle: update it in place if we still hold it (close unchanged); never reorder.
        for c in reversed(candles):
            if c.t == t:
                c.h, c.l, c.v, c.n = max(c.h, delta.h), min(c.l, delta.l), c.v + delta.v, c.n + delta.n
                return
        return
    candles.append(Candle(t=t, o=delta.o, h=delta.h, l=delta.l, c=delta.c, v=delta.v, n=delta.n))


def candle_from_venue(obj: Mapping[str, Any]) -> Candle:
    """A candleSnapshot row ({"t","o","h","l","c","v","n"} with string OHLCV); raises ValueError if malformed."""
    try:
        candle = Candle(
            t=int(obj["t"]),
            o=float(obj["o"]),
            h=float(obj["h"]),
            l=float(obj["l"]),
            c=float(obj["c"]),
            v=float(obj["v"]),
            n=int(obj.get("n", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed candle: {exc}") from None
    if not all(math.isfinite(x) and x >= 0 for x in (candle.o, candle.h, candle.l, candle.c, candle.v)):
        raise ValueError("malformed candle: non-finite or negative value")
    return candle


def candles_merge(existing: deque[Candle], backfill: Iterable[Candle], *, keep: int = CANDLES_KEPT) -> deque[Candle]:
    """Backfilled candles under live ones: live candles win for the same open time."""
    by_t = {c.t: c for c in backfill}
    for c in existing:
        by_t[c.t] = c
    merged = sorted(by_t.values(), key=lambda c: c.t)[-keep:]
    return deque(merged, maxlen=keep)
