"""Sanitised inputs: number parsing that treats garbage as "no data", and the per-symbol rolling history.

`SymbolHistory` is immutable: `update(history, snapshot)` returns a new one with bounded series (time horizon
plus a hard point cap), so the pipeline worker can keep one per symbol, feed it every ~200 ms and hand it to
another thread without copying or locking. Every value that enters it has been parsed here; downstream
components therefore only see finite floats, and "absent" is always `None` or an empty tuple.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from itertools import repeat
from operator import itemgetter, sub
from typing import Any, NamedTuple

from alpha.engine.config import DEFAULT_CONFIG, AlphaConfig

MAX_TS_MS = 2**53
_INF = math.inf
_TS = itemgetter(0)  # the timestamp of a series item; a C-level key for bisect
_VALUE = itemgetter(1)


def finite(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for anything else (None, nan, inf, "abc", bool)."""
    kind = type(value)
    if kind is float:  # fast paths first: this runs for every book level and trade
        return value if math.isfinite(value) else None
    if kind is str:
        if len(value) > 64:
            return None
        try:
            out = float(value)
        except ValueError:
            return None
    elif kind is int or isinstance(value, float | int | Decimal) and not isinstance(value, bool):
        try:
            out = float(value)
        except (OverflowError, ValueError):  # Decimal sNaN / huge ints
            return None
    else:
        return None
    return out if math.isfinite(out) else None


def positive(value: Any) -> float | None:
    """A finite float > 0, else None (negative sizes and zero prices are garbage)."""
    out = finite(value)
    return out if out is not None and out > 0 else None


def timestamp(value: Any) -> int | None:
    """Epoch milliseconds as int within (0, 2**53), else None (fits a JS number and a 64-bit int on the wire)."""
    out = finite(value)
    return int(out) if out is not None and 0 < out < MAX_TS_MS else None


class Point(NamedTuple):
    ts_ms: int
    value: float


class Trade(NamedTuple):
    ts_ms: int
    side: int  # +1 aggressive buy ("B"), -1 aggressive sell ("A")
    px: float
    sz: float
    ntl: float  # px × sz, computed once at ingest


class FlowBucket(NamedTuple):
    ts_ms: int  # start of the second
    buy_ntl: float
    sell_ntl: float


class Sweep(NamedTuple):
    ts_ms: int
    side: int
    ntl: float
    levels: int


class Liquidation(NamedTuple):
    ts_ms: int
    side: int  # +1 a LONG position was liquidated (forced sell), -1 a SHORT (forced buy)
    notional: float


class Book(NamedTuple):
    ts_ms: int
    bids: tuple[tuple[float, float], ...]  # best first
    asks: tuple[tuple[float, float], ...]

    def mid(self) -> float | None:
        if self.bids and self.asks:
            return (self.bids[0][0] + self.asks[0][0]) / 2.0
        return None


@dataclass(frozen=True, slots=True)
class SymbolHistory:
    symbol: str
    prices: tuple[Point, ...] = ()
    oi: tuple[Point, ...] = ()
    funding: tuple[Point, ...] = ()
    trades: tuple[Trade, ...] = ()
    # Per-second aggressive buy/sell notional and the detected sweeps, folded in at ingest so analyze() never
    # rescans the raw trade ring.
    flow: tuple[FlowBucket, ...] = ()
    sweeps: tuple[Sweep, ...] = ()
    books: tuple[Book, ...] = ()
    liquidations: tuple[Liquidation, ...] = ()
    # Realised volatility per completed bucket (RMS of per-second-normalised log returns, i.e. per sqrt(s)),
    # maintained incrementally so analyze() never rescans the whole price series.
    rv_buckets: tuple[float, ...] = ()
    bucket_start_ms: int | None = None
    bucket_sum_sq: float = 0.0
    bucket_n: int = 0
    last_trade_ms: int | None = None
    last_trade_keys: frozenset[tuple[Any, ...]] = frozenset()
    updated_ms: int | None = None  # newest venue timestamp seen in any field
    # (series, mean, std) over every funding point, recomputed by update() only when the funding series changes
    # (at most once per asset-context update), so analyze() does not rescan up to 8 h of points per reading.
    # Valid only while `series is funding`; funding_z() recomputes otherwise.
    funding_stats: tuple[tuple[Point, ...], float, float] | None = field(default=None, repr=False, compare=False)

    @property
    def last_price(self) -> float | None:
        return self.prices[-1].value if self.prices else None

    @property
    def book(self) -> Book | None:
        return self.books[-1] if self.books else None


def mean_std(values: list[float]) -> tuple[float, float]:
    """Population mean and standard deviation (fsum-exact sums); one definition for update() and funding_z()."""
    mean = math.fsum(values) / len(values)
    # fsum((v - mean) ** 2 for v in values), iterated in C: pow(x, 2) is the same float operation as x ** 2.
    return mean, math.sqrt(math.fsum(map(pow, map(sub, values, repeat(mean)), repeat(2))) / len(values))


def empty_history(symbol: str) -> SymbolHistory:
    return SymbolHistory(symbol=str(symbol).upper())


def _getter(snapshot: Any) -> Callable[[str], Any]:
    """Field access for a snapshot dataclass or its dict (decided once per update, not per field)."""
    if isinstance(snapshot, Mapping):
        return snapshot.get
    return lambda name: getattr(snapshot, name, None)


def _trim(series: tuple[Any, ...], cutoff_ms: int, max_len: int) -> tuple[Any, ...]:
    if series and series[0][0] < cutoff_ms:
        series = series[bisect_left(series, cutoff_ms, key=_TS) :]
    if len(series) > max_len:
        series = series[-max_len:]
    return series


def _append_point(
    series: tuple[Point, ...],
    ts_ms: int | None,
    value: float | None,
    cfg: AlphaConfig,
    *,
    spacing_ms: int | None = None,
    horizon_s: float | None = None,
) -> tuple[Point, ...]:
    """One point per `series_spacing_ms` slot (the newest value in a slot wins); out-of-order points are dropped.

    A point identical to the newest one returns `series` itself (no copy): snapshots repeat a field until the venue
    sends a new value, and an unchanged series object lets update() skip work that depends on it.
    """
    if ts_ms is None or value is None:
        return series
    point = Point(ts_ms, value)
    if series:
        last = series[-1]
        if ts_ms < last.ts_ms:
            return series
        if ts_ms == last.ts_ms and value == last.value and (value or str(value) == str(last.value)):
            return series  # same point (the str() check keeps a change of sign of zero)
        spacing = spacing_ms or cfg.series_spacing_ms
        if ts_ms // spacing == last.ts_ms // spacing:
            return series[:-1] + (point,)
    cutoff = ts_ms - int((horizon_s or cfg.history_horizon_s) * 1000)
    return _trim(series + (point,), cutoff, cfg.series_max_points)


_BUY = frozenset(("B", "b", "buy", "BUY"))
_SELL = frozenset(("A", "a", "S", "sell", "SELL"))


def parse_trade(raw: Any) -> Trade | None:
    if type(raw) is dict:  # the wire shape, inline: this runs for every new trade
        side_raw, t, a, b = raw.get("side"), raw.get("time"), raw.get("px"), raw.get("sz")
        if type(side_raw) is str and type(t) is int and type(a) is str and type(b) is str:
            side = 1 if side_raw in _BUY else -1 if side_raw in _SELL else 0
            if not side or not 0 < t < MAX_TS_MS or len(a) > 64 or len(b) > 64:
                return None
            try:
                fpx, fsz = float(a), float(b)
            except ValueError:
                return None
            if 0.0 < fpx < _INF and 0.0 < fsz < _INF:
                return Trade(t, side, fpx, fsz, fpx * fsz)
            return None
    if not isinstance(raw, Mapping):
        return None
    side_raw = raw.get("side")
    side = 1 if side_raw in ("B", "b", "buy", "BUY") else -1 if side_raw in ("A", "a", "S", "sell", "SELL") else 0
    ts, px, sz = timestamp(raw.get("time")), positive(raw.get("px")), positive(raw.get("sz"))
    if not side or ts is None or px is None or sz is None:
        return None
    return Trade(ts, side, px, sz, px * sz)


def _trade_key(raw: Mapping[str, Any]) -> tuple[Any, ...]:
    return (raw.get("tid"), raw.get("hash"), raw.get("side"), str(raw.get("px")), str(raw.get("sz")))


def _seen(raw: Any, last_ms: int, last_keys: frozenset[Any]) -> bool:
    """True when `raw` is certainly already folded in (or older than the watermark), without parsing it.

    Snapshots repeat the latest trades ring, so most trades of every snapshot were seen before. Only a dict with
    an int/float `time` is judged here; anything else goes through the full parse. Exact: a trade skipped here
    would also be skipped after parsing (a time below the watermark is either older or unparseable, and a
    boundary-ms key already seen is skipped whatever its other fields parse to).
    """
    if type(raw) is not dict:
        return False
    t = raw.get("time")
    if type(t) is int:
        return t < last_ms or (t == last_ms and _trade_key(raw) in last_keys)
    return type(t) is float and t < last_ms


def _new_trades(history: SymbolHistory, raw_trades: Any) -> tuple[list[Trade], int | None, frozenset[Any]]:
    """Trades not seen before. Snapshots repeat recent trades, so dedupe on time, and on a key within the ms."""
    last_ms, last_keys = history.last_trade_ms, history.last_trade_keys
    if not isinstance(raw_trades, list | tuple):
        return [], last_ms, last_keys
    batch = raw_trades[-5000:]
    if last_ms is not None:
        batch = [raw for raw in batch if not _seen(raw, last_ms, last_keys)]
        if not batch:
            return [], last_ms, last_keys
    fresh: list[Trade] = []
    boundary_keys = set(last_keys)
    newest = last_ms
    for raw in batch:
        trade = parse_trade(raw)
        if trade is None:
            continue
        if last_ms is not None and trade.ts_ms < last_ms:
            continue
        key = _trade_key(raw)
        if last_ms is not None and trade.ts_ms == last_ms and key in last_keys:
            continue
        fresh.append(trade)
        if newest is None or trade.ts_ms > newest:
            newest, boundary_keys = trade.ts_ms, {key}
        elif trade.ts_ms == newest:
            boundary_keys.add(key)
    if not fresh:
        return [], last_ms, last_keys
    fresh.sort(key=lambda t: t.ts_ms)
    return fresh, newest, frozenset(boundary_keys)


def _fold_flow(buckets: tuple[FlowBucket, ...], fresh: list[Trade]) -> tuple[FlowBucket, ...]:
    out = list(buckets[-1:])
    for t in fresh:
        sec = t.ts_ms - t.ts_ms % 1000
        buy, sell = (t.ntl, 0.0) if t.side > 0 else (0.0, t.ntl)
        if out and out[-1].ts_ms == sec:
            last = out[-1]
            out[-1] = FlowBucket(sec, last.buy_ntl + buy, last.sell_ntl + sell)
        elif not out or sec > out[-1].ts_ms:
            out.append(FlowBucket(sec, buy, sell))
    return buckets[:-1] + tuple(out)


def _detect_sweeps(fresh: list[Trade], cfg: AlphaConfig) -> list[Sweep]:
    """Same-side fills within sweep_group_ms at >= sweep_min_levels distinct prices = one aggressive sweep.

    Grouped within one ingest batch: the fills of one aggressive order share a block (one timestamp), so they
    arrive together.
    """
    found: list[Sweep] = []
    side, start, ntl, levels = 0, 0, 0.0, set()
    for t in (*fresh, None):
        if t is not None and t.side == side and t.ts_ms - start <= cfg.sweep_group_ms:
            levels.add(t.px)
            ntl += t.ntl
            continue
        if side and len(levels) >= cfg.sweep_min_levels:
            found.append(Sweep(start, side, ntl, len(levels)))
        if t is not None:
            side, start, ntl, levels = t.side, t.ts_ms, t.ntl, {t.px}
    return found


def _parse_levels(rows: Any, levels: int) -> tuple[tuple[float, float], ...]:
    """Up to `levels` valid (px, sz) rows. The all-string row (the wire shape) is parsed inline: this runs for
    every level of every new book; it accepts exactly what `positive()` accepts."""
    parsed: list[tuple[float, float]] = []
    if not isinstance(rows, list | tuple):
        return ()
    for row in rows[:levels]:
        if not isinstance(row, list | tuple) or len(row) < 2:
            continue
        a, b = row[0], row[1]
        if type(a) is str and type(b) is str and len(a) <= 64 and len(b) <= 64:
            try:
                px, sz = float(a), float(b)
            except ValueError:
                continue
            if 0.0 < px < _INF and 0.0 < sz < _INF:  # finite and positive (NaN fails both comparisons)
                parsed.append((px, sz))
            continue
        pxo, szo = positive(a), positive(b)
        if pxo is not None and szo is not None:
            parsed.append((pxo, szo))
    return tuple(parsed)


def parse_book(raw: Any, ts_ms: int | None, levels: int) -> Book | None:
    if not isinstance(raw, Mapping) or ts_ms is None:
        return None
    bids, asks = _parse_levels(raw.get("bids"), levels), _parse_levels(raw.get("asks"), levels)
    if not bids and not asks:
        return None
    if bids and asks and bids[0][0] >= asks[0][0]:
        return None  # crossed book: garbage, keep the previous one
    return Book(ts_ms, bids, asks)


def parse_liquidation(raw: Any) -> Liquidation | None:
    """{"side": "long"|"short" (the liquidated position), "time", "notional" or "px"+"sz"}."""
    if isinstance(raw, Liquidation):
        return raw
    if not isinstance(raw, Mapping):
        return None
    side_raw = str(raw.get("side", "")).lower()
    side = 1 if side_raw in ("long", "l", "sell", "a") else -1 if side_raw in ("short", "s", "buy", "b") else 0
    ts = timestamp(raw.get("time"))
    notional = positive(raw.get("notional"))
    if notional is None:
        px, sz = positive(raw.get("px")), positive(raw.get("sz"))
        notional = px * sz if px is not None and sz is not None else None
    if not side or ts is None or notional is None or not math.isfinite(notional):
        return None
    return Liquidation(ts, side, notional)


def _roll_volatility(history: SymbolHistory, prices: tuple[Point, ...], cfg: AlphaConfig) -> dict[str, Any]:
    """Fold the newest *final* log return into the current RV bucket and close buckets that have ended.

    A slot is final once a point in a later slot arrives, so the return folded is history.prices[-2] ->
    history.prices[-1] at the moment a new slot opens; the in-progress slot never counts.
    """
    old = history.prices
    if len(old) < 2 or len(prices) < 2 or prices[-2] != old[-1]:
        return {}
    prev, last = old[-2], old[-1]
    # Variance per second: a return across a feed gap is scaled down by its length, not counted as a spike.
    dt_s = max(1e-3, (last.ts_ms - prev.ts_ms) / 1000.0)
    ret_sq = math.log(last.value / prev.value) ** 2 / dt_s
    bucket_ms = int(cfg.vol_bucket_s * 1000)
    start, sum_sq, n, buckets = history.bucket_start_ms, history.bucket_sum_sq, history.bucket_n, history.rv_buckets
    if start is None:
        start = prev.ts_ms
    elif last.ts_ms - start > bucket_ms:
        if n >= 2:
            keep = max(1, int(cfg.history_horizon_s / cfg.vol_bucket_s))
            buckets = (*buckets, math.sqrt(sum_sq / n))[-keep:]
        start, sum_sq, n = prev.ts_ms, 0.0, 0
    return {"bucket_start_ms": start, "bucket_sum_sq": sum_sq + ret_sq, "bucket_n": n + 1, "rv_buckets": buckets}


def update(
    history: SymbolHistory,
    snapshot: Any,
    *,
    liquidations: Iterable[Any] | None = None,
    config: AlphaConfig = DEFAULT_CONFIG,
) -> SymbolHistory:
    """A new history with `snapshot` (a SymbolSnapshot or its dict) and optional liquidation events folded in."""
    cfg = config
    get = _getter(snapshot)
    price_ts = timestamp(get("price_ts"))
    price = positive(get("price")) or positive(get("mark_px"))
    prices = _append_point(history.prices, price_ts, price, cfg)
    oi_ts = timestamp(get("oi_ts"))
    oi = _append_point(history.oi, oi_ts, positive(get("oi_total")) or positive(get("oi_hl")), cfg)
    funding_ts = timestamp(get("funding_ts"))
    funding = _append_point(
        history.funding,
        funding_ts,
        finite(get("funding_rate")),
        cfg,
        spacing_ms=cfg.funding_spacing_ms,
        horizon_s=cfg.funding_horizon_s,
    )
    changes: dict[str, Any] = {"prices": prices, "oi": oi, "funding": funding}
    if funding is not history.funding:
        changes["funding_stats"] = (funding, *mean_std(list(map(_VALUE, funding)))) if funding else None
    changes.update(_roll_volatility(history, prices, cfg))

    fresh, last_ms, last_keys = _new_trades(history, get("trades"))
    if fresh:
        newest = fresh[-1].ts_ms
        # `fresh` is sorted and never older than the newest stored trade, so appending keeps time order.
        cutoff = newest - int(cfg.trades_horizon_s * 1000)
        changes["trades"] = _trim(history.trades + tuple(fresh), cutoff, cfg.trades_max)
        changes["last_trade_ms"], changes["last_trade_keys"] = last_ms, last_keys
        changes["flow"] = _trim(_fold_flow(history.flow, fresh), cutoff, int(cfg.trades_horizon_s) + 2)
        sweeps = _detect_sweeps(fresh, cfg)
        if sweeps:
            changes["sweeps"] = _trim(history.sweeps + tuple(sweeps), cutoff, cfg.trades_max)

    book_ts = timestamp(get("book_ts"))
    last_book = history.book
    if book_ts is not None and (last_book is None or book_ts > last_book.ts_ms):
        book = parse_book(get("book"), book_ts, cfg.book_levels)
        if book is not None:
            changes["books"] = (*history.books, book)[-cfg.books_max :]

    if liquidations is not None:
        liqs = [liq for liq in map(parse_liquidation, _iter_limited(liquidations)) if liq is not None]
        if liqs:
            merged = tuple(sorted((*history.liquidations, *liqs), key=lambda x: x.ts_ms))
            cutoff = merged[-1].ts_ms - int(cfg.liquidations_horizon_s * 1000)
            changes["liquidations"] = _trim(merged, cutoff, cfg.liquidations_max)

    stamps = [ts for ts in (history.updated_ms, price_ts, oi_ts, funding_ts, book_ts, last_ms) if ts is not None]
    changes["updated_ms"] = max(stamps) if stamps else None
    return _with(history, changes)


_HISTORY_FIELDS = tuple(f.name for f in fields(SymbolHistory))


def _with(history: SymbolHistory, changes: dict[str, Any]) -> SymbolHistory:
    """`dataclasses.replace` without its per-call field introspection (SymbolHistory has no __post_init__)."""
    out = object.__new__(SymbolHistory)
    for name in _HISTORY_FIELDS:
        object.__setattr__(out, name, changes[name] if name in changes else getattr(history, name))
    return out


def _iter_limited(items: Iterable[Any], limit: int = 10_000) -> Iterable[Any]:
    if isinstance(items, str | bytes | Mapping):
        return ()
    try:
        iterator = iter(items)
    except TypeError:
        return ()
    return (item for _, item in zip(range(limit), iterator, strict=False))
