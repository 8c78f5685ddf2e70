"""Read-through market data with snapshot repair from the venue's REST (architecture seed §7, §12).

Each read prefers the hot state when it is fresh; otherwise it repairs from POST /info through the upstream
budget (TTL caches, floor, singleflight, 429 cooldown) and, when the venue cannot be asked, answers with the
newest data it has and `stale: true` rather than failing. Only "no data at all" is an error (503).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from kernel import clock
from kernel.contracts.envelope import SequenceCounter
from kernel.contracts.snapshot import FRESHNESS_MS
from kernel.errors import UpstreamUnavailable
from kernel.venue.market_data import get_upstream
from markets import features as ft
from markets import normalize, quality, selectors, universe
from markets.hotstate import get_hot_state
from markets.ingest import current_ingestor

VENUE_CANDLE_INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,
}


def _rest_book(data: Any, coin: str) -> tuple[dict[str, list[list[str]]], int] | None:
    """A venue l2Book answer, checked with the same guards as the stream; None when it fails them."""
    symbols = normalize.SymbolMap([coin])
    out = normalize.Normalized(channel="l2Book")
    normalize.normalize_book(data, recv_ms=clock.now_ms(), symbols=symbols, seq=_SEQ, out=out)
    if not out.envelopes:
        return None
    book = out.envelopes[0].data
    return {"bids": book["bids"], "asks": book["asks"]}, int(book["time"])


_SEQ = SequenceCounter()


def orderbook_read(*, symbol: str, coin: str, depth: int) -> dict[str, Any]:
    now = clock.now_ms()
    snap = get_hot_state().get_sync(symbol)
    fresh_ms = settings.AGGREGATOR_ORDERBOOK_FRESH_SEC * 1000
    candidates: list[tuple[int, str, dict[str, list[list[str]]], str]] = []
    if snap is not None and snap.book_ts is not None and (snap.book["bids"] or snap.book["asks"]):
        if settings.AGGREGATOR_PREFER_HOT_STATE and now - snap.book_ts <= fresh_ms:
            return _book_body("aggregator", snap.book_ts, snap.book, depth, now, reason="")
        candidates.append((snap.book_ts, "aggregator", snap.book, snap.stale_reason or "aggregator book stale"))
    try:
        result = get_upstream().info(
            {"type": "l2Book", "coin": coin},
            ttl_sec=settings.AGGREGATOR_ORDERBOOK_CACHE_SEC,
            floor_key=f"l2Book:{coin}",
            floor_sec=settings.AGGREGATOR_ORDERBOOK_UPSTREAM_MIN_SEC,
        )
        parsed = _rest_book(result.data, coin)
        if parsed is not None:
            candidates.append((parsed[1], "rest", parsed[0], result.reason))
    except UpstreamUnavailable as exc:
        if not candidates:
            raise UpstreamUnavailable(f"no order book for {symbol}: {exc.message}") from None
    if not candidates:
        raise UpstreamUnavailable(f"no order book for {symbol}")
    book_ts, source, book, reason = max(candidates, key=lambda c: c[0])
    return _book_body(source, book_ts, book, depth, now, reason=reason)


def _book_body(
    source: str, book_ts: int, book: dict[str, list[list[str]]], depth: int, now: int, *, reason: str
) -> dict[str, Any]:
    age = max(0, now - book_ts)
    stale = age > FRESHNESS_MS["book"]
    return {
        "source": source,
        "book_ts": book_ts,
        "age_ms": age,
        "stale": stale,
        "stale_reason": (reason or "book older than freshness threshold") if stale else None,
        "book": {"bids": book["bids"][:depth], "asks": book["asks"][:depth]},
    }


def prices_read(*, symbols: list[str] | None = None) -> dict[str, Any]:
    """Mids: from the hot state when fresh, else allMids from the venue (cached AGGREGATOR_PRICES_CACHE_SEC)."""
    now = clock.now_ms()
    hot = get_hot_state()
    wanted = [s.upper() for s in symbols] if symbols else hot.all_symbols_sync()
    snaps = hot.get_many_sync(wanted)
    prices = {s: snap.price for s, snap in snaps.items() if snap.price is not None}
    stamps = [snap.price_ts for snap in snaps.values() if snap.price_ts is not None]
    newest = max(stamps) if stamps else None
    fresh = newest is not None and now - newest <= FRESHNESS_MS["price"]
    if settings.AGGREGATOR_PREFER_HOT_STATE and fresh and (not symbols or len(prices) == len(wanted)):
        return {"source": "aggregator", "ts": newest, "stale": False, "prices": prices}
    try:
        result = get_upstream().info({"type": "allMids"}, ttl_sec=settings.AGGREGATOR_PRICES_CACHE_SEC)
    except UpstreamUnavailable:
        if not prices:
            raise
        return {"source": "aggregator", "ts": newest, "stale": True, "prices": prices}
    mids = result.data if isinstance(result.data, dict) else {}
    rest = {
        coin.upper(): str(px)
        for coin, px in mids.items()
        if not coin.startswith("@") and "/" not in coin and quality.parse_price(px) is not None
    }
    if symbols:
        rest = {s: rest[s] for s in wanted if s in rest}
    rest_stale = not result.fresh and now - result.fetched_at_ms > FRESHNESS_MS["price"]
    return {"source": "rest", "ts": result.fetched_at_ms, "stale": rest_stale, "prices": rest}


def tokens_read(*, limit: int) -> dict[str, Any]:
    """The perp universe: as ingest listed it, else metaAndAssetCtxs (cached AGGREGATOR_TOKENS_CACHE_SEC)."""
    tokens = selectors.universe_list() if settings.AGGREGATOR_PREFER_HOT_STATE else []
    source, stale = "aggregator", False
    if not tokens:
        result = get_upstream().info({"type": "metaAndAssetCtxs"}, ttl_sec=settings.AGGREGATOR_TOKENS_CACHE_SEC)
        tokens = [t.as_dict() for t in universe.parse_universe(result.data)]
        source, stale = "rest", not result.fresh
    tokens = sorted(tokens, key=lambda t: -(t.get("day_ntl_vlm") or 0.0))[:limit]
    return {"source": source, "stale": stale, "count": len(tokens), "tokens": tokens}


def candles_read(*, symbol: str, coin: str, interval: str, start: int, end: int) -> dict[str, Any]:
    """Candles in [start, end]: ingest's when they cover the range, else candleSnapshot from the venue."""
    step = VENUE_CANDLE_INTERVALS_MS[interval]
    if interval in ft.CANDLE_INTERVALS:
        hot = [c for c in get_hot_state().get_candles_sync(symbol, interval) if start <= c["t"] <= end]
        if hot and hot[0]["t"] <= start + step and hot[-1]["t"] >= min(end, clock.now_ms()) - 2 * step:
            return {"source": "aggregator", "stale": False, "interval": interval, "candles": hot}
    body = {"type": "candleSnapshot", "req": {"coin": coin, "interval": interval, "startTime": start, "endTime": end}}
    result = get_upstream().info(body, ttl_sec=settings.AGGREGATOR_CANDLES_CACHE_SEC)
    rows = result.data if isinstance(result.data, list) else []
    candles = []
    for row in rows:
        try:
            c = ft.candle_from_venue(row)
        except ValueError:
            continue
        candles.append({**c.as_wire(interval="1m", symbol=symbol), "i": interval, "T": c.t + step - 1})
    return {"source": "rest", "stale": not result.fresh, "interval": interval, "candles": candles}


async def market_freshness_check() -> tuple[bool, str]:
    """Readiness: fails when ingest should be running but no symbol has a fresh price."""
    hot = get_hot_state()
    status = await hot.get_status()
    if status is None and current_ingestor() is None:
        return True, "ingest not configured here"
    symbols = await hot.all_symbols()
    snaps = await hot.get_many(symbols)
    now = clock.now_ms()
    fresh = [
        s for s, snap in snaps.items() if snap.price_ts is not None and now - snap.price_ts <= FRESHNESS_MS["price"]
    ]
    if not fresh:
        return False, f"no fresh price among {len(snaps)} symbols"
    return True, f"{len(fresh)}/{len(snaps)} symbols with a fresh price"
