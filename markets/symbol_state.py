"""Per-symbol accumulated market state and the pure transitions over it (no I/O, no clock).

Ingest applies normalised envelopes with the `apply_*` functions and, once per publish interval, turns the
state into a snapshot's fields with `snapshot_fields`. The stateful quality guard (price jumps) lives here
because it needs the previous accepted price.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from markets import features as ft
from markets import normalize, quality

TRADES_KEPT: Final = 50
TRADES_BATCH_MAX: Final = 200  # per publish interval; beyond it the batch carries a gap marker


@dataclass(frozen=True, slots=True)
class Weights:
    oi: Mapping[str, float]
    cvd_spot: Mapping[str, float]
    depth_bps: float = 10.0


@dataclass(slots=True)
class SymbolState:
    symbol: str
    coin: str
    sigma: float
    price: str | None = None
    price_f: float | None = None
    price_ts: int | None = None
    bids: list[tuple[str, str]] = field(default_factory=list)  # wire levels, exact venue strings
    asks: list[tuple[str, str]] = field(default_factory=list)
    bids_f: normalize.FloatSide = field(default_factory=lambda: ([], []))  # (prices, sizes) best first
    asks_f: normalize.FloatSide = field(default_factory=lambda: ([], []))
    book_ts: int | None = None
    # Wire dicts, built once per trade and shared by the ring, the publish batch and every snapshot.
    trades: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRADES_KEPT))
    trades_ts: int | None = None
    batch: list[dict[str, Any]] = field(default_factory=list)
    batch_dropped: int = 0
    cvd: ft.CvdState = field(default_factory=ft.CvdState)
    ctx: dict[str, Any] | None = None
    ctx_ts: int | None = None
    candles: dict[str, deque[ft.Candle]] = field(default_factory=dict)
    # Trades since the last flush as 1m mini-candles; `fold_candles` applies them to the four series.
    candle_deltas: list[ft.Candle] = field(default_factory=list)
    candles_dirty: bool = False
    # The newest l2Book payload not parsed yet (books are full snapshots and conflated per publish interval, so
    # only the one a flush uses is parsed and guarded) and its receive time.
    pending_book: Any = None
    pending_book_ms: int = 0
    book_stats: dict[str, Any] | None = None  # of the current book; None = not computed yet
    ctx_cache: tuple[Any, Any, dict[str, Any]] | None = None  # (ctx, weights, snapshot fields derived from them)
    candles_wire: dict[str, dict[str, Any]] | None = None  # current candles as sent; None = rebuild
    # Pre-encoded wire parts (orjson.Fragment) reused by every envelope until their input changes: the newest
    # PUBLISHED trades of the ring (None = re-encode), and (input object, fragment) for the book and candles.
    trades_frag: Any = None
    trades_list: list[dict[str, Any]] | None = None  # the ring newest first, shared by snapshots until it changes
    book_frag: tuple[Any, Any, Any] | None = None
    candles_frag: tuple[Any, Any] | None = None
    price_guard: quality.JumpGuard | None = None
    trade_guard: quality.JumpGuard | None = None
    dirty: bool = False
    dirty_since: float = 0.0  # monotonic time of the first unpublished change (publish latency)

    def __post_init__(self) -> None:
        self.price_guard = quality.JumpGuard(sigma=self.sigma)
        self.trade_guard = quality.JumpGuard(sigma=self.sigma)
        for interval in ft.CANDLE_INTERVALS:
            self.candles[interval] = deque(maxlen=ft.CANDLES_KEPT)


def _touch(state: SymbolState, mono: float) -> None:
    if not state.dirty:
        state.dirty = True
        state.dirty_since = mono


def apply_price(state: SymbolState, *, px_str: str, px: float, ts: int, mono: float = 0.0) -> str | None:
    """A new mid; returns a rejection reason if the jump guard refuses it."""
    if state.price_ts is not None and ts < state.price_ts:
        return None  # older than what we have (allMids vs book race): keep the newer one, not an error
    assert state.price_guard is not None
    reason = state.price_guard.check(px)
    if reason:
        return reason
    if state.price != px_str or state.price_ts != ts:
        state.price, state.price_f, state.price_ts = px_str, px, ts
        _touch(state, mono)
    return None


def apply_book(state: SymbolState, data: Mapping[str, Any], *, mono: float = 0.0) -> str | None:
    bids_f, asks_f = data["bids_f"], data["asks_f"]
    if bids_f[0] and asks_f[0]:
        assert state.price_guard is not None
        # Checked against the mid anchor without advancing it (allMids/trades advance the guards).
        reason = state.price_guard.peek((bids_f[0][0] + asks_f[0][0]) / 2.0)
        if reason:
            return reason
    state.bids, state.asks, state.bids_f, state.asks_f = data["bids"], data["asks"], bids_f, asks_f
    state.book_ts = data["time"]
    state.book_stats = None
    _touch(state, mono)
    return None


def stage_book(state: SymbolState, data: Any, *, recv_ms: int, mono: float = 0.0) -> None:
    """Keep a raw l2Book payload for the next flush; a newer one replaces it unparsed (latest wins)."""
    state.pending_book = data
    state.pending_book_ms = recv_ms
    _touch(state, mono)


def apply_pending_book(state: SymbolState) -> normalize.Rejection | None:
    """Parse, guard and apply the staged book, if any. A refused book leaves the last valid one in place."""
    data = state.pending_book
    if data is None:
        return None
    state.pending_book = None
    book = normalize.parse_book(data, symbol=state.symbol, recv_ms=state.pending_book_ms)
    if isinstance(book, normalize.Rejection):
        return book
    reason = apply_book(state, book)
    return normalize.Rejection(reason, state.symbol, "book mid") if reason else None


def apply_trades(state: SymbolState, trades: list[ft.Trade], *, mono: float = 0.0) -> list[str]:
    """`apply_trade_rows` for `Trade` objects (the normalised envelope's shape)."""
    rows = [(t.px, t.sz, t.side, t.time_ms, t.as_wire()) for t in trades]
    return apply_trade_rows(state, rows, mono=mono)


_PX: Final = operator.itemgetter(0)
_TIME: Final = operator.itemgetter(3)
_WIRE: Final = operator.itemgetter(4)


def apply_trade_rows(state: SymbolState, rows: list[normalize.TradeRow], *, mono: float = 0.0) -> list[str]:
    """Fold trades into ring, CVD, pending candles and the publish batch; returns one reason per rejected trade."""
    assert state.trade_guard is not None
    # The jump guard is sequential (each accepted price moves its anchor); everything after it works on the
    # accepted rows as a whole: C-level extends, one loop for CVD + candles.
    # C-level column extraction (itemgetter maps): this runs for every trades frame.
    reasons = list(map(state.trade_guard.check, map(_PX, rows)))
    rejected = list(filter(None, reasons))
    accepted = [row for row, r in zip(rows, reasons, strict=True) if not r] if rejected else rows
    if not accepted:
        return rejected
    wires = list(map(_WIRE, accepted))
    state.trades.extend(wires)
    state.trades_frag = state.trades_list = None
    batch = state.batch
    room = TRADES_BATCH_MAX - len(batch)
    if room >= len(wires):
        batch.extend(wires)
    else:
        batch.extend(wires[: max(room, 0)])
        state.batch_dropped += len(wires) - max(room, 0)
    ft.trades_fold(state.cvd, state.candle_deltas, accepted)
    newest = accepted[0][3] if len(accepted) == 1 else max(map(_TIME, accepted))
    if state.trades_ts is None or newest > state.trades_ts:
        state.trades_ts = newest
    state.candles_dirty = True
    _touch(state, mono)
    return rejected


def apply_ctx(state: SymbolState, ctx: dict[str, Any], *, ts: int, mono: float = 0.0) -> None:
    state.ctx, state.ctx_ts = ctx, ts
    _touch(state, mono)


def take_batch(state: SymbolState) -> tuple[list[dict[str, Any]], int]:
    batch, dropped = state.batch, state.batch_dropped
    state.batch, state.batch_dropped = [], 0
    return batch, dropped


def fold_candles(state: SymbolState) -> None:
    """Apply the trades' pending 1m mini-candles to the 1m/5m/15m/1h series (once per flush, not per trade)."""
    deltas = state.candle_deltas
    if not deltas:
        return
    for interval, series in state.candles.items():
        for delta in deltas:
            ft.candle_fold(series, delta, interval)
    deltas.clear()
    state.candles_wire = None


def current_candles(state: SymbolState) -> dict[str, dict[str, Any]]:
    """The newest candle per interval in wire shape (rebuilt only when trades or a backfill changed them)."""
    fold_candles(state)
    if state.candles_wire is None:
        state.candles_wire = {i: s[-1].as_wire(interval=i, symbol=state.symbol) for i, s in state.candles.items() if s}
    return state.candles_wire


def snapshot_fields(
    state: SymbolState,
    *,
    now_ms: int,
    weights: Weights,
    spot_cvd: Mapping[str, float | None] | None = None,
    stale_reason: str | None = None,
) -> dict[str, Any]:
    """The hot snapshot's fields at `now_ms` (the CVD windows are relative to it) as a new dict: ingest builds the
    `SymbolSnapshot` and the wire envelope from one dict."""
    stats = state.book_stats
    if stats is None or stats["depth_bps"] != weights.depth_bps:
        stats = state.book_stats = ft.book_stats_sides(
            bids=state.bids_f, asks=state.asks_f, depth_bps=weights.depth_bps
        )
    trades = state.trades_list
    if trades is None:
        trades = state.trades_list = list(reversed(state.trades))  # nothing mutates a snapshot's list
    cvd = ft.cvd_windows(state.cvd, now_ms=now_ms)
    spot = {k: v for k, v in spot_cvd.items() if v is not None} if spot_cvd else None
    ctx = state.ctx or {}
    price_f = state.price_f if state.price_f is not None else ctx.get("mid_px") or stats["mid"]
    stamps = [t for t in (state.price_ts, state.book_ts, state.trades_ts, state.ctx_ts) if t is not None]
    fields: dict[str, Any] = {
        "symbol": state.symbol,
        "price": state.price,
        "price_ts": state.price_ts,
        "book": {"bids": state.bids, "asks": state.asks},
        "book_ts": state.book_ts,
        "book_stats": stats,
        "trades": trades,
        "trades_ts": state.trades_ts,
        "cvd_venue": cvd["cvd_venue"],
        "cvd_venue_1m": cvd["cvd_venue_1m"],
        "cvd_venue_5m": cvd["cvd_venue_5m"],
        "cvd_spot_1m": ft.cvd_spot_composite(cvd_by_venue=spot, weights=weights.cvd_spot) if spot else None,
        "cvd_spot_5m": None,
        "cvd_source": ft.cvd_source_label(spot_venues=spot) if spot else _VENUE_ONLY_CVD,
        "cvd_ts": state.trades_ts,
    }
    fields.update(_ctx_fields(state, weights))  # shared per ctx: the values are immutable
    fields["next_funding_ms"] = ft.next_funding_ms(now_ms)
    fields["change_24h"] = ft.change_24h_pct(price=price_f, prev_day_px=ctx.get("prev_day_px"))
    fields["intel"] = {}
    fields["intel_ts"] = None
    fields["stale_reason"] = stale_reason
    fields["updated_at"] = max(stamps) if stamps else None
    return fields


_VENUE_ONLY_CVD: Final = ft.cvd_source_label(spot_venues=[])


def _ctx_fields(state: SymbolState, weights: Weights) -> dict[str, Any]:
    """The snapshot fields that only change with the asset context (~1/s), computed once per context."""
    cached = state.ctx_cache
    if cached is not None and cached[0] is state.ctx and cached[1] is weights:
        return cached[2]
    ctx = state.ctx or {}
    oi_hl = ft.oi_notional(oi_coins=ctx.get("oi_coins"), mark_px=ctx.get("mark_px"))
    oi = ft.oi_composite(oi_by_venue={"hyperliquid": oi_hl, "binance_perp": None}, weights=weights.oi)
    funding = ctx.get("funding")
    fields = {
        "oi_total": oi["oi_total"],
        "oi_hl": oi["oi_hl"],
        "oi_binance_perp": oi["oi_binance_perp"],
        "oi_source": oi["oi_source"],
        "oi_ts": state.ctx_ts if oi_hl is not None else None,
        "funding_rate": funding,
        "funding_annualized": ft.funding_annualised(funding) if funding is not None else None,
        "funding_ts": state.ctx_ts if funding is not None else None,
        "mark_px": ctx.get("mark_px_str"),
        "oracle_px": ctx.get("oracle_px_str"),
        "premium": ctx.get("premium"),
        "volume_24h": ctx.get("day_ntl_vlm"),
    }
    state.ctx_cache = (state.ctx, weights, fields)
    return fields
