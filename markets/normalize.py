"""Venue frames → canonical envelopes (architecture seed §6), with the stateless quality guards applied.

Sans-I/O: `normalize_frame` takes one decoded venue frame and returns the internal envelopes it yields
(`market.book`, `market.trades`, `market.mids`, `market.ctx`, `market.candle`) plus the rejections.
Stateful guards (price jumps) run where the state is, in ingest. Venue coins may be mixed case (`kPEPE`);
our symbols are their upper-case form and `SymbolMap` keeps the way back for subscriptions and REST.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kernel.contracts import channels as ch
from kernel.contracts.envelope import Envelope, SequenceCounter
from markets import quality
from markets.features import Trade

SOURCE: Final = "hyperliquid"
BOOK_LEVELS: Final = 20


class SymbolMap:
    """Our symbol (upper case) ↔ the venue's coin name (case as listed in meta.universe)."""

    def __init__(self, coins: list[str] | None = None) -> None:
        self.coin_of: dict[str, str] = {}
        self.symbol_of: dict[str, str] = {}
        for coin in coins or []:
            self.add(coin)

    def add(self, coin: str) -> str:
        symbol = coin.upper()
        self.coin_of[symbol] = coin
        self.symbol_of[coin] = symbol
        return symbol

    def symbol(self, coin: str) -> str | None:
        return self.symbol_of.get(coin)

    def coin(self, symbol: str) -> str | None:
        return self.coin_of.get(symbol.upper())

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self.coin_of

    def __len__(self) -> int:
        return len(self.coin_of)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    symbol: str
    detail: str


@dataclass(slots=True)
class Normalized:
    channel: str
    envelopes: list[Envelope] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _envelope(seq: SequenceCounter, event_type: str, symbol: str, ts_ms: int, data: dict[str, Any]) -> Envelope:
    # Built directly: the fields are produced here, so make_envelope's per-field validation (regexes on a hot
    # path at 1,500 msg/s) adds nothing. Symbols come from SymbolMap (upper case) and ts from the venue/clock.
    return Envelope(event_type=event_type, symbol=symbol, ts_ms=ts_ms, source=SOURCE, seq=seq.next(SOURCE), data=data)


# A book side as floats: (prices, sizes), best first. Two flat lists rather than a tuple per level: a book is
# kept until the next one replaces it, and every level object would be one more for the cyclic GC to track.
FloatSide = tuple[list[float], list[float]]


def _levels(raw: object, symbol: str) -> tuple[list[tuple[str, str]], FloatSide] | Rejection:
    """One book side (best first) → wire levels (the venue's strings) + floats, or the first bad level's reason."""
    if raw.__class__ is not list:
        return Rejection(quality.MALFORMED, symbol, "book side is not a list")
    levels = raw[:BOOK_LEVELS]  # type: ignore[index]
    # Fast path: C-level map()s instead of a Python loop per level (this runs for every valid book). Any doubt
    # (an exception, a non-positive, NaN or infinite value) falls back to the level-by-level check that names
    # the first bad value; both accept exactly the same books.
    try:
        pxs_s = list(map(_PX, levels))
        szs_s = list(map(_SZ, levels))
        pxs = list(map(float, pxs_s))
        szs = list(map(float, szs_s))
        # str.join raises TypeError unless every value is a string: the venue sends decimal strings, and a bare
        # JSON number would lose its exact spelling on the wire.
        "".join(pxs_s)
        "".join(szs_s)
    except (TypeError, KeyError, ValueError):
        return _levels_checked(levels, symbol)
    # sum() is NaN if any value is NaN and inf if any is infinite; min() > 0 then rules out zero and negatives.
    if levels and not (min(pxs) > 0.0 and sum(pxs) < _INF and min(szs) > 0.0 and sum(szs) < _INF):
        return _levels_checked(levels, symbol)
    return list(zip(pxs_s, szs_s, strict=True)), (pxs, szs)


def _levels_checked(levels: list[Any], symbol: str) -> tuple[list[tuple[str, str]], FloatSide] | Rejection:
    strs: list[tuple[str, str]] = []
    pxs: list[float] = []
    szs: list[float] = []
    inf = _INF
    for level in levels:
        try:
            px_raw, sz_raw = level["px"], level["sz"]
            px, sz = float(px_raw), float(sz_raw)
        except (TypeError, KeyError, ValueError):
            return _level_rejection(level, symbol)
        if not 0.0 < px < inf or px_raw.__class__ is not str:
            return Rejection(quality.BAD_PRICE, symbol, f"book px {px_raw!r}")
        if not 0.0 < sz < inf or sz_raw.__class__ is not str:
            return Rejection(quality.BAD_SIZE, symbol, f"book sz {sz_raw!r}")
        strs.append((px_raw, sz_raw))
        pxs.append(px)
        szs.append(sz)
    return strs, (pxs, szs)


_INF: Final = float("inf")
_PX: Final = operator.itemgetter("px")
_SZ: Final = operator.itemgetter("sz")


def _level_rejection(level: object, symbol: str) -> Rejection:
    if not isinstance(level, dict) or "px" not in level or "sz" not in level:
        return Rejection(quality.MALFORMED, symbol, "book level without px/sz")
    if quality.parse_price(level["px"]) is None:
        return Rejection(quality.BAD_PRICE, symbol, f"book px {level['px']!r}")
    return Rejection(quality.BAD_SIZE, symbol, f"book sz {level['sz']!r}")


def parse_book(data: Any, *, symbol: str, recv_ms: int) -> dict[str, Any] | Rejection:
    """A venue l2Book payload (coin already resolved to `symbol`) → book dict, or why it is refused.

    The book dict: `bids`/`asks` as wire levels ((px, sz) exact venue strings), `bids_f`/`asks_f` as `FloatSide`,
    `time`.
    """
    levels = data.get("levels") if isinstance(data, dict) else None
    if not isinstance(levels, list) or len(levels) != 2:
        return Rejection(quality.MALFORMED, symbol, "l2Book without two level lists")
    bids = _levels(levels[0], symbol)
    if isinstance(bids, Rejection):
        return bids
    asks = _levels(levels[1], symbol)
    if isinstance(asks, Rejection):
        return asks
    reason = quality.check_book_prices(bids=bids[1][0], asks=asks[1][0])
    if reason:
        return Rejection(reason, symbol, f"bid {bids[1][0][:1]} ask {asks[1][0][:1]}")
    return {
        "bids": bids[0],
        "asks": asks[0],
        "bids_f": bids[1],
        "asks_f": asks[1],
        "time": _ts(data.get("time"), recv_ms),
    }


def normalize_book(data: Any, *, recv_ms: int, symbols: SymbolMap, seq: SequenceCounter, out: Normalized) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("levels"), list) or len(data["levels"]) != 2:
        out.rejections.append(Rejection(quality.MALFORMED, "?", "l2Book without two level lists"))
        return
    symbol = symbols.symbol(str(data.get("coin")))
    if symbol is None:
        out.rejections.append(Rejection(quality.MALFORMED, str(data.get("coin")), "l2Book for an unknown coin"))
        return
    book = parse_book(data, symbol=symbol, recv_ms=recv_ms)
    if isinstance(book, Rejection):
        out.rejections.append(book)
        return
    out.envelopes.append(_envelope(seq, ch.MARKET_BOOK, symbol, book["time"], book))


def _ts(raw: object, recv_ms: int) -> int:
    """Venue time when it is a sane epoch-ms int not in the future, else the receive time."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1_000_000_000_000:
        return min(raw, recv_ms)
    return recv_ms


def normalize_trades(data: Any, *, recv_ms: int, symbols: SymbolMap, seq: SequenceCounter, out: Normalized) -> None:
    if not isinstance(data, list):
        out.rejections.append(Rejection(quality.MALFORMED, "?", "trades is not a list"))
        return
    by_symbol: dict[str, list[Trade]] = {}
    for raw in data:
        trade = _trade(raw, recv_ms=recv_ms, symbols=symbols, out=out)
        if trade is not None:
            by_symbol.setdefault(trade[0], []).append(trade[1])
    for symbol, trades in by_symbol.items():
        ts = max(t.time_ms for t in trades)
        out.envelopes.append(_envelope(seq, ch.MARKET_TRADES, symbol, ts, {"trades": trades}))


def _trade(raw: Any, *, recv_ms: int, symbols: SymbolMap, out: Normalized) -> tuple[str, Trade] | None:
    if not isinstance(raw, dict):
        out.rejections.append(Rejection(quality.MALFORMED, "?", "trade is not an object"))
        return None
    symbol = symbols.symbol(str(raw.get("coin")))
    if symbol is None:
        out.rejections.append(Rejection(quality.MALFORMED, str(raw.get("coin")), "trade for an unknown coin"))
        return None
    px = quality.parse_price(raw.get("px"))
    if px is None:
        out.rejections.append(Rejection(quality.BAD_PRICE, symbol, f"trade px {raw.get('px')!r}"))
        return None
    sz = quality.parse_size(raw.get("sz"))
    if sz is None:
        out.rejections.append(Rejection(quality.BAD_SIZE, symbol, f"trade sz {raw.get('sz')!r}"))
        return None
    side = raw.get("side")
    if side not in ("B", "A"):
        out.rejections.append(Rejection(quality.BAD_SIDE, symbol, f"trade side {side!r}"))
        return None
    tid = raw.get("tid")
    trade = Trade(
        px=px,
        sz=sz,
        side=side,
        time_ms=_ts(raw.get("time"), recv_ms),
        px_str=str(raw["px"]),
        sz_str=str(raw["sz"]),
        tid=tid if isinstance(tid, int) else None,
    )
    return symbol, trade


# A parsed trade on the ingest hot path: (px, sz, side, time_ms, wire dict). A tuple, not a dataclass: this is
# built for every trade, and the wire dict (exact venue strings) is the one shared by the ring, the publish batch
# and every snapshot.
TradeRow = tuple[float, float, str, int, dict[str, Any]]


def parse_trades(
    data: Any, *, recv_ms: int, symbol_of: Mapping[str, str], rejections: list[Rejection]
) -> dict[str, list[TradeRow]]:
    """A venue trades payload → {symbol: rows in arrival order}; refused trades are appended to `rejections`."""
    if data.__class__ is not list:
        rejections.append(Rejection(quality.MALFORMED, "?", "trades is not a list"))
        return {}
    groups: dict[str, list[TradeRow]] = {}
    last_coin: Any = None
    rows: list[TradeRow] = []
    inf = _INF
    for raw in data:
        # Fast path for the venue's usual shape (every field present and well typed, a known coin); anything
        # else goes through `_trade_checked`, which applies the same rules one by one (and names the bad field).
        try:
            coin, px_raw, sz_raw, side, t, tid = raw["coin"], raw["px"], raw["sz"], raw["side"], raw["time"], raw["tid"]
            px, sz = float(px_raw), float(sz_raw)
        except (TypeError, KeyError, ValueError):
            coin = None
        if (
            coin is not None
            and 0.0 < px < inf
            and 0.0 < sz < inf
            and (side == "B" or side == "A")
            and px_raw.__class__ is str
            and sz_raw.__class__ is str
            and t.__class__ is int
            and t >= 1_000_000_000_000
            and tid.__class__ is int
        ):
            if coin != last_coin:
                symbol = symbol_of.get(coin) if coin.__class__ is str else None
                if symbol is None:
                    rejections.append(Rejection(quality.MALFORMED, str(coin), "trade for an unknown coin"))
                    continue
                last_coin = coin
                rows = groups.setdefault(symbol, [])
            if t > recv_ms:
                t = recv_ms  # `_ts`: a venue time ahead of our clock is replaced by the receive time
            rows.append((px, sz, side, t, {"px": px_raw, "sz": sz_raw, "side": side, "time": t, "tid": tid}))
            continue
        checked = _trade_checked(raw, recv_ms=recv_ms, symbol_of=symbol_of)
        if isinstance(checked, Rejection):
            rejections.append(checked)
            continue
        symbol, row = checked
        last_coin = raw["coin"]
        rows = groups.setdefault(symbol, [])
        rows.append(row)
    return groups


def _trade_checked(raw: Any, *, recv_ms: int, symbol_of: Mapping[str, str]) -> tuple[str, TradeRow] | Rejection:
    if raw.__class__ is not dict:
        return Rejection(quality.MALFORMED, "?", "trade is not an object")
    coin = raw.get("coin")
    symbol = symbol_of.get(coin) if coin.__class__ is str else None
    if symbol is None:
        return Rejection(quality.MALFORMED, str(coin), "trade for an unknown coin")
    px_raw, sz_raw, side = raw.get("px"), raw.get("sz"), raw.get("side")
    px = quality.parse_price(px_raw)
    if px is None:
        return Rejection(quality.BAD_PRICE, symbol, f"trade px {px_raw!r}")
    sz = quality.parse_size(sz_raw)
    if sz is None:
        return Rejection(quality.BAD_SIZE, symbol, f"trade sz {sz_raw!r}")
    if side != "B" and side != "A":
        return Rejection(quality.BAD_SIDE, symbol, f"trade side {side!r}")
    t = _ts(raw.get("time"), recv_ms)
    tid = raw.get("tid")
    wire = {
        "px": px_raw if px_raw.__class__ is str else str(px_raw),
        "sz": sz_raw if sz_raw.__class__ is str else str(sz_raw),
        "side": side,
        "time": t,
        "tid": tid if tid.__class__ is int else None,
    }
    return symbol, (px, sz, side, t, wire)


def normalize_mids(data: Any, *, recv_ms: int, symbols: SymbolMap, seq: SequenceCounter, out: Normalized) -> None:
    mids = data.get("mids") if isinstance(data, dict) else None
    if not isinstance(mids, dict):
        out.rejections.append(Rejection(quality.MALFORMED, "*", "allMids without mids"))
        return
    good: dict[str, tuple[str, float]] = {}
    for coin, raw in mids.items():
        symbol = symbols.symbol(coin)
        if symbol is None:
            continue  # spot pairs (@107, PURR/USDC) and coins outside the perp universe
        px = quality.parse_price(raw)
        if px is None:
            out.rejections.append(Rejection(quality.BAD_PRICE, symbol, f"mid {raw!r}"))
            continue
        good[symbol] = (str(raw), px)
    out.envelopes.append(_envelope(seq, ch.MARKET_MIDS, "*", recv_ms, {"mids": good}))


_CTX_NUMBERS: Final = {
    "funding": "funding",
    "openInterest": "oi_coins",
    "dayNtlVlm": "day_ntl_vlm",
    "premium": "premium",
}
_CTX_PRICES: Final = {"markPx": "mark_px", "oraclePx": "oracle_px", "midPx": "mid_px", "prevDayPx": "prev_day_px"}


def normalize_ctx(data: Any, *, recv_ms: int, symbols: SymbolMap, seq: SequenceCounter, out: Normalized) -> None:
    ctx = data.get("ctx") if isinstance(data, dict) else None
    symbol = symbols.symbol(str(data.get("coin"))) if isinstance(data, dict) else None
    if symbol is None or not isinstance(ctx, Mapping):
        out.rejections.append(Rejection(quality.MALFORMED, str(symbol), "activeAssetCtx without coin/ctx"))
        return
    parsed = ctx_fields(ctx)
    if isinstance(parsed, str):
        out.rejections.append(Rejection(quality.BAD_PRICE, symbol, parsed))
        return
    out.envelopes.append(_envelope(seq, ch.MARKET_CTX, symbol, recv_ms, parsed))


def ctx_fields(ctx: Mapping[str, Any]) -> dict[str, Any] | str:
    """Parse an asset context (WS activeAssetCtx.ctx or a metaAndAssetCtxs row); a string names a bad field."""
    out: dict[str, Any] = {}
    for key, name in _CTX_PRICES.items():
        raw = ctx.get(key)
        if raw is None and key in ("midPx", "prevDayPx"):
            out[name] = None
            continue
        px = quality.parse_price(raw)
        if px is None:
            return f"ctx {key} {raw!r}"
        out[name] = px
        out[name + "_str"] = str(raw)
    for key, name in _CTX_NUMBERS.items():
        raw = ctx.get(key)
        if raw is None:
            out[name] = None
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            return f"ctx {key} {raw!r}"
        if value != value or value in (float("inf"), float("-inf")):
            return f"ctx {key} {raw!r}"
        if name in ("oi_coins", "day_ntl_vlm") and value < 0:
            return f"ctx {key} {raw!r}"
        out[name] = value
    return out


def normalize_candle(data: Any, *, recv_ms: int, symbols: SymbolMap, seq: SequenceCounter, out: Normalized) -> None:
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        symbol = symbols.symbol(str(row.get("s"))) if isinstance(row, dict) else None
        if symbol is None:
            out.rejections.append(Rejection(quality.MALFORMED, "?", "candle without a known coin"))
            continue
        out.envelopes.append(_envelope(seq, ch.MARKET_CANDLE, symbol, recv_ms, dict(row)))


_HANDLERS: Final = {
    "l2Book": normalize_book,
    "trades": normalize_trades,
    "allMids": normalize_mids,
    "activeAssetCtx": normalize_ctx,
    "candle": normalize_candle,
}
DATA_CHANNELS: Final = frozenset(_HANDLERS)


def normalize_frame(frame: Any, *, recv_ms: int, symbols: SymbolMap, seq: SequenceCounter) -> Normalized:
    """One decoded venue frame → envelopes + rejections. Control frames (pong, acks, errors) yield neither."""
    channel = frame.get("channel") if isinstance(frame, dict) else None
    out = Normalized(channel=str(channel))
    handler = _HANDLERS.get(channel) if isinstance(channel, str) else None
    if handler is not None:
        handler(frame.get("data"), recv_ms=recv_ms, symbols=symbols, seq=seq, out=out)
    return out
