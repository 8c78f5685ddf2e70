"""Candles derived from trades (1m buckets kept, longer intervals aggregated on demand) plus a seeded backfill."""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from datetime import UTC, datetime

from hlsim.ticks import fmt_float, price_decimals, round_px
from hlsim.universe import CoinSpec

MINUTE = 60_000
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE,
    "3m": 3 * MINUTE,
    "5m": 5 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": 60 * MINUTE,
    "2h": 120 * MINUTE,
    "4h": 240 * MINUTE,
    "8h": 480 * MINUTE,
    "12h": 720 * MINUTE,
    "1d": 1440 * MINUTE,
    "3d": 3 * 1440 * MINUTE,
    "1w": 7 * 1440 * MINUTE,
    "1M": 0,  # calendar month, handled separately
}
MAX_MINUTES_KEPT = 12 * 1440
SNAPSHOT_LIMIT = 5000  # the venue serves only the newest 5000 candles


def bucket_bounds(*, t_ms: int, interval: str) -> tuple[int, int]:
    """[start, end] of the bucket holding `t_ms` (end inclusive, as the venue's `T`)."""
    if interval == "1M":
        dt = datetime.fromtimestamp(t_ms / 1000, tz=UTC)
        start = datetime(dt.year, dt.month, 1, tzinfo=UTC)
        nxt = datetime(dt.year + (dt.month == 12), dt.month % 12 + 1, 1, tzinfo=UTC)
        return int(start.timestamp() * 1000), int(nxt.timestamp() * 1000) - 1
    width = INTERVAL_MS[interval]
    start = t_ms - t_ms % width
    return start, start + width - 1


class CandleStore:
    """1m OHLCV buckets for one coin: [t, o, h, l, c, v, n]."""

    def __init__(self, *, spec: CoinSpec) -> None:
        self.spec = spec
        self.times: list[int] = []
        self.rows: list[list[float]] = []

    def add_trade(self, *, t_ms: int, px: float, sz: float) -> None:
        start = t_ms - t_ms % MINUTE
        if self.times and self.times[-1] == start:
            row = self.rows[-1]
            row[2] = max(row[2], px)
            row[3] = min(row[3], px)
            row[4] = px
            row[5] += sz
            row[6] += 1
            return
        if self.times and start < self.times[-1]:
            return  # late trade for a closed bucket; wall clock never goes back in practice
        self.times.append(start)
        self.rows.append([start, px, px, px, px, sz, 1])
        if len(self.times) > MAX_MINUTES_KEPT:
            del self.times[: len(self.times) - MAX_MINUTES_KEPT]
            del self.rows[: len(self.rows) - MAX_MINUTES_KEPT]

    def _aggregate(self, *, rows: list[list[float]], interval: str) -> list[list[float]]:
        if interval == "1m":
            return [list(r) for r in rows]
        out: list[list[float]] = []
        cur_start = None
        for r in rows:
            start, _ = bucket_bounds(t_ms=int(r[0]), interval=interval)
            if start != cur_start:
                out.append([start, r[1], r[2], r[3], r[4], r[5], r[6]])
                cur_start = start
            else:
                agg = out[-1]
                agg[2] = max(agg[2], r[2])
                agg[3] = min(agg[3], r[3])
                agg[4] = r[4]
                agg[5] += r[5]
                agg[6] += r[6]
        return out

    def candles(self, *, interval: str, start_ms: int, end_ms: int) -> list[dict]:
        first_bucket, _ = bucket_bounds(t_ms=max(start_ms, 0), interval=interval)
        lo = bisect_left(self.times, first_bucket)
        hi = bisect_left(self.times, end_ms + 1)
        agg = self._aggregate(rows=self.rows[lo:hi], interval=interval)
        agg = [r for r in agg if start_ms <= bucket_bounds(t_ms=int(r[0]), interval=interval)[1] and r[0] <= end_ms]
        return [self.wire(row=r, interval=interval) for r in agg[-SNAPSHOT_LIMIT:]]

    def current(self, *, interval: str) -> dict | None:
        if not self.times:
            return None
        start, _ = bucket_bounds(t_ms=self.times[-1], interval=interval)
        lo = bisect_left(self.times, start)
        agg = self._aggregate(rows=self.rows[lo:], interval=interval)
        return self.wire(row=agg[-1], interval=interval) if agg else None

    def wire(self, *, row: list[float], interval: str) -> dict:
        start, end = bucket_bounds(t_ms=int(row[0]), interval=interval)
        d = price_decimals(px=row[4], sz_decimals=self.spec.sz_decimals)
        szd = self.spec.sz_decimals
        return {
            "t": start,
            "T": end,
            "s": self.spec.name,
            "i": interval,
            "o": fmt_float(row[1], d),
            "c": fmt_float(row[4], d),
            "h": fmt_float(row[2], d),
            "l": fmt_float(row[3], d),
            "v": fmt_float(row[5], szd),
            "n": int(row[6]),
        }

    def backfill(self, *, seed: int, end_ms: int, end_px: float, minutes: int) -> None:
        """Deterministic synthetic 1m history ending at `end_px` just before `end_ms` (seeded per coin)."""
        rng = random.Random(f"hlsim-backfill:{seed}:{self.spec.name}")
        sigma_m = self.spec.ann_vol / math.sqrt(365 * 1440)
        closes = [end_px]
        for _ in range(minutes - 1):
            closes.append(closes[-1] * math.exp(-rng.gauss(0.0, sigma_m)))
        closes.reverse()
        last_start = end_ms - end_ms % MINUTE - MINUTE
        szd = self.spec.sz_decimals
        prev = closes[0]
        for i, close in enumerate(closes):
            start = last_start - (minutes - 1 - i) * MINUTE
            o = round_px(px=prev, sz_decimals=szd)
            c = round_px(px=close, sz_decimals=szd)
            wig = abs(rng.gauss(0.0, sigma_m * 0.5))
            h = round_px(px=max(o, c) * (1 + wig), sz_decimals=szd)
            low = round_px(px=min(o, c) * (1 - wig), sz_decimals=szd)
            n = 20 + int(rng.random() * 120)
            vol = round(n * self.spec.liquidity * 0.5 * (0.5 + rng.random()) / c, szd)
            self.times.append(start)
            self.rows.append([start, o, h, low, c, vol, n])
            prev = close
