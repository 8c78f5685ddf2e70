"""Market ingest: venue WS → normalise + guard → per-symbol state → hot state → conflated `agg_update` publish.

One `Ingestor` per process runs four loops on one event loop:

* connection: universe from REST, one venue socket (`websockets`), allMids plus l2Book/trades/activeAssetCtx per
  live symbol, keep-alive pings, a stall watchdog; on any loss it reconnects with exponential back-off + jitter
  and resubscribes everything on the new socket (subscriptions are per socket, so never twice).
* flush (every AGGREGATOR_PUBLISH_INTERVAL_MS): snapshots of changed symbols to the hot state in one batch, one
  encoded envelope per (symbol, kind) to the broadcaster — latest value wins, trades batched with a gap marker.
* housekeeping (1 s): status, on-demand symbols from the gateway, freshness gauges, degraded detection.
* backfill: candleSnapshot for newly live symbols, under the upstream budget.

`handle_raw` is the synchronous hot path (decode → normalise → apply); it never awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import websockets
from django.conf import settings

from kernel import clock, components
from kernel.contracts import channels as ch
from kernel.contracts.envelope import SequenceCounter, dumps_text
from kernel.contracts.snapshot import FRESHNESS_MS, SymbolSnapshot
from kernel.errors import UpstreamUnavailable
from kernel.realtime import get_broadcaster
from kernel.venue import streams
from kernel.venue.market_data import Upstream, get_upstream
from markets import features as ft
from markets import metrics as m
from markets import normalize, quality, universe
from markets.hotstate import HotState, get_hot_state
from markets.symbol_state import (
    SymbolState,
    Weights,
    apply_ctx,
    apply_pending_book,
    apply_price,
    apply_trade_rows,
    current_candles,
    fold_candles,
    snapshot_fields,
    stage_book,
    take_batch,
)

logger = logging.getLogger(__name__)

SOURCE = normalize.SOURCE
STATUS_TTL_SEC = 86_400.0  # the status outlives the process: readers judge `running` by its age
RUNNING_WITHIN_MS = 10_000
HEARTBEAT_REPUBLISH_SEC = 1.0
IDLE_SYMBOL_FLUSH_SEC = 1.0
CANDLE_PUBLISH_SEC = 1.0
CANDLE_CONFLATION_KEY = f"{ch.AGG_UPDATE}:candle"  # publish(event_type=...) of candle frames
PUBLISHED_TRADES = 20  # recent trades in each published snapshot (the hot state keeps 50)
UNIVERSE_REFRESH_SEC = 60.0
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}"


class Publisher(Protocol):
    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None: ...

    async def publish_many(self, frames: Sequence[tuple[str, str, str, str]]) -> None: ...


class StallDetected(Exception):
    pass


@dataclass(frozen=True, slots=True)
class IngestConfig:
    venue_url: str
    venue_name: str
    top_n: int
    max_symbols: int
    batch_size: int
    batch_pause_sec: float
    publish_interval_ms: int
    stall_sec: float
    ping_sec: float
    reconnect_max_sec: float
    sigma: float
    weights: Weights
    tokens_ttl_sec: float
    candles_ttl_sec: float
    warn_throttle_sec: float
    backfill_candles: bool = True

    @classmethod
    def from_settings(cls, **overrides: Any) -> IngestConfig:
        s = settings
        values: dict[str, Any] = {
            "venue_url": s.HYPERSENTRY_VENUE_URL,
            "venue_name": s.HYPERSENTRY_VENUE,
            "top_n": s.AGGREGATOR_AUTO_SUBSCRIBE_TOP_N,
            "max_symbols": s.AGGREGATOR_MAX_SUBSCRIPTIONS,
            "batch_size": s.AGGREGATOR_SUBSCRIBE_BATCH_SIZE,
            "batch_pause_sec": s.AGGREGATOR_SUBSCRIBE_BATCH_PAUSE_SEC,
            "publish_interval_ms": s.AGGREGATOR_PUBLISH_INTERVAL_MS,
            "stall_sec": s.AGGREGATOR_STALL_SEC,
            "ping_sec": s.AGGREGATOR_PING_SEC,
            "reconnect_max_sec": s.AGGREGATOR_RECONNECT_MAX_SEC,
            "sigma": s.AGGREGATOR_PRICE_JUMP_SIGMA,
            "weights": Weights(
                oi={"hyperliquid": s.AGGREGATOR_OI_HL_WEIGHT, "binance_perp": s.AGGREGATOR_OI_BINANCE_WEIGHT},
                cvd_spot={"binance": s.AGGREGATOR_CVD_BINANCE_WEIGHT, "coinbase": s.AGGREGATOR_CVD_COINBASE_WEIGHT},
                depth_bps=s.AGGREGATOR_BOOK_DEPTH_BPS,
            ),
            "tokens_ttl_sec": s.AGGREGATOR_TOKENS_CACHE_SEC,
            "candles_ttl_sec": s.AGGREGATOR_CANDLES_CACHE_SEC,
            "warn_throttle_sec": s.AGGREGATOR_WARN_THROTTLE_SEC,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class SourceHealth:
    state: str = "starting"  # starting | connecting | connected | disconnected
    connected_since_ms: int | None = None
    disconnected_since_ms: int | None = None
    last_message_ms: int | None = None
    last_error: str = ""
    reconnects: int = 0
    stalls: int = 0
    degraded_symbols: list[str] = field(default_factory=list)


class Ingestor:
    def __init__(
        self,
        *,
        config: IngestConfig,
        hot_state: HotState | None = None,
        publisher: Publisher | None = None,
        upstream: Upstream | None = None,
    ) -> None:
        self.config = config
        self.hot = hot_state or get_hot_state()
        self.publisher = publisher or get_broadcaster()
        self.upstream = upstream or (Upstream(config.venue_url) if config.venue_url else get_upstream())
        self.seq = SequenceCounter()
        self.symbols = normalize.SymbolMap()
        self.tokens: list[universe.Token] = []
        self.states: dict[str, SymbolState] = {}
        self.subscribed: set[str] = set()  # symbols subscribed on the current socket
        self.live: set[str] = set()  # symbols that should be live (survives disconnects: they go stale, visibly)
        self.ever_live: set[str] = set()
        self.demand: dict[str, int] = {}
        self.health = SourceHealth()
        self.messages: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.rejection_log = quality.RejectionLog(every_sec=config.warn_throttle_sec)
        self.started_ms = clock.now_ms()
        self.last_frame_mono = 0.0
        self.last_mids_mono = 0.0
        self._ws: Any = None
        self._wake_subscriber = asyncio.Event()
        self._last_republish = 0.0
        self._last_universe = 0.0
        self._backfill: deque[tuple[str, str, float]] = deque()
        self._candles_sent: dict[str, float] = {}
        self._messages_exported: Counter[str] = Counter()
        self._handlers = {
            "l2Book": self._on_book,
            "trades": self._on_trades,
            "activeAssetCtx": self._on_ctx,
            "allMids": self._on_mids,
        }

    # --- universe and desired subscriptions ------------------------------------------------------------------
    async def load_universe(self) -> None:
        tokens = await asyncio.to_thread(universe.fetch_universe, self.upstream, ttl_sec=self.config.tokens_ttl_sec)
        if not tokens:
            raise UpstreamUnavailable("the venue listed no perps")
        self.tokens = tokens
        for token in tokens:
            symbol = self.symbols.add(token.coin)
            if symbol not in self.states:
                self.states[symbol] = SymbolState(symbol=symbol, coin=token.coin, sigma=self.config.sigma)
        self._last_universe = time.monotonic()
        self.live = set(self.desired())
        await self.hot.set_universe([t.as_dict() for t in tokens])

    def desired(self) -> list[str]:
        """Top N by day volume, then symbols browsers ask for (most watched first), capped."""
        wanted = universe.top_by_volume(self.tokens, self.config.top_n)
        extra = sorted((s for s in self.demand if s in self.symbols and s not in wanted), key=lambda s: -self.demand[s])
        return (wanted + extra)[: self.config.max_symbols]

    # --- the hot path --------------------------------------------------------------------------------------------
    def handle_raw(self, raw: str | bytes, *, recv_ms: int | None = None, mono: float | None = None) -> None:
        """Decode one venue frame and fold it into the state. Never raises for bad venue data."""
        recv_ms = clock.now_ms() if recv_ms is None else recv_ms
        mono = time.monotonic() if mono is None else mono
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._reject(normalize.Rejection(quality.MALFORMED, "?", f"not JSON: {str(raw)[:60]!r}"))
            return
        channel = frame.get("channel") if frame.__class__ is dict else None
        handler = self._handlers.get(channel) if channel.__class__ is str else None
        if handler is not None:
            # The data channels: parsed straight into the symbol state (no intermediate envelopes).
            self.messages[channel] += 1
            self.last_frame_mono = mono
            self.health.last_message_ms = recv_ms
            handler(frame.get("data"), recv_ms, mono)
            return
        out = normalize.normalize_frame(frame, recv_ms=recv_ms, symbols=self.symbols, seq=self.seq)
        self.messages[out.channel] += 1
        if out.channel in normalize.DATA_CHANNELS:
            self.last_frame_mono = mono
            self.health.last_message_ms = recv_ms
        elif out.channel == "error":
            logger.info("venue error frame", extra={"source": SOURCE, "detail": str(frame.get("data"))[:200]})
        for rejection in out.rejections:
            self._reject(rejection)

    def _on_book(self, data: Any, recv_ms: int, mono: float) -> None:
        # Only located here: parsing and the guards run at flush time on the newest book (`apply_pending_book`).
        coin = data.get("coin") if data.__class__ is dict else None
        symbol = self.symbols.symbol_of.get(coin) if coin.__class__ is str else None
        st = self.states.get(symbol) if symbol is not None else None
        if st is None:
            what = "l2Book for an unknown coin" if data.__class__ is dict else "l2Book without two level lists"
            self._reject(normalize.Rejection(quality.MALFORMED, str(coin), what))
            return
        stage_book(st, data, recv_ms=recv_ms, mono=mono)

    def _on_trades(self, data: Any, recv_ms: int, mono: float) -> None:
        rejections: list[normalize.Rejection] = []
        groups = normalize.parse_trades(data, recv_ms=recv_ms, symbol_of=self.symbols.symbol_of, rejections=rejections)
        for symbol, rows in groups.items():
            st = self.states.get(symbol)
            if st is not None:
                for reason in apply_trade_rows(st, rows, mono=mono):
                    rejections.append(normalize.Rejection(reason, symbol, "trade px"))
        for rejection in rejections:
            self._reject(rejection)

    def _on_ctx(self, data: Any, recv_ms: int, mono: float) -> None:
        ctx = data.get("ctx") if data.__class__ is dict else None
        coin = data.get("coin") if data.__class__ is dict else None
        symbol = self.symbols.symbol_of.get(coin) if coin.__class__ is str else None
        if symbol is None or not isinstance(ctx, dict):
            self._reject(normalize.Rejection(quality.MALFORMED, str(symbol), "activeAssetCtx without coin/ctx"))
            return
        parsed = normalize.ctx_fields(ctx)
        if isinstance(parsed, str):
            self._reject(normalize.Rejection(quality.BAD_PRICE, symbol, parsed))
            return
        st = self.states.get(symbol)
        if st is not None:
            apply_ctx(st, parsed, ts=recv_ms, mono=mono)

    def _on_mids(self, data: Any, recv_ms: int, mono: float) -> None:
        mids = data.get("mids") if data.__class__ is dict else None
        if mids.__class__ is not dict:
            self._reject(normalize.Rejection(quality.MALFORMED, "*", "allMids without mids"))
            return
        self.last_mids_mono = mono
        symbol_of, states, parse = self.symbols.symbol_of, self.states, quality.parse_price
        for coin, raw in mids.items():
            symbol = symbol_of.get(coin)
            if symbol is None:
                continue  # spot pairs (@107, PURR/USDC) and coins outside the perp universe
            px = parse(raw)
            if px is None:
                self._reject(normalize.Rejection(quality.BAD_PRICE, symbol, f"mid {raw!r}"))
                continue
            st = states.get(symbol)
            if st is not None:
                px_str = raw if raw.__class__ is str else str(raw)
                reason = apply_price(st, px_str=px_str, px=px, ts=recv_ms, mono=mono)
                if reason:
                    self._reject(normalize.Rejection(reason, symbol, f"mid {px_str}"))

    def _reject(self, rejection: normalize.Rejection) -> None:
        self.rejections[rejection.reason] += 1
        m.rejected(rejection.reason).inc()
        self.rejection_log.warn(reason=rejection.reason, symbol=rejection.symbol, detail=rejection.detail)

    # --- publishing ------------------------------------------------------------------------------------------------
    def _stale_reason(self, st: SymbolState, now_ms: int) -> str | None:
        if self.health.state != "connected":
            return f"venue {self.health.state}"
        if st.symbol in self.live and (st.book_ts is None or now_ms - st.book_ts > FRESHNESS_MS["book"]):
            return "book stale (source degraded)"
        return None

    def _encode_fields(
        self, data: dict[str, Any], *, now_ms: int, batch: list[dict[str, Any]], dropped: int, candles: dict[str, Any]
    ) -> str:
        """The snapshot's fields (`data`, extended in place) → one encoded `agg_update` text."""
        trades = data["trades"]
        if trades.__class__ is list:
            data["trades"] = trades[:PUBLISHED_TRADES]
        data["kind"] = "snapshot"
        data["source"] = SOURCE
        data["staleness"] = wire_staleness(data, now_ms)
        data["trades_batch"] = batch
        data["trades_gap"] = dropped  # > 0: this many trades of the interval were not sent (a gap marker)
        data["candles_live"] = candles
        return self._envelope_text(data["symbol"], data["updated_at"] or now_ms, data)

    def _envelope_text(self, symbol: str, ts_ms: int, data: dict[str, Any]) -> str:
        return _dumps_wire(
            {
                "event_type": ch.AGG_UPDATE,
                "symbol": symbol,
                "ts_ms": ts_ms,
                "source": SOURCE,
                "seq": self.seq.next(_AGG_STREAM),
                "data": data,
            }
        )

    async def flush(self, *, now_ms: int | None = None) -> int:
        """Write changed snapshots to the hot state and publish them once; returns envelopes published."""
        now_ms = clock.now_ms() if now_ms is None else now_ms
        mono = time.monotonic()
        republish = mono - self._last_republish >= HEARTBEAT_REPUBLISH_SEC
        if republish:
            self._last_republish = mono
        live = self.live
        picked: list[SymbolState] = []
        for st in self.states.values():
            is_live = st.symbol in live
            if st.dirty and (is_live or mono - st.dirty_since >= IDLE_SYMBOL_FLUSH_SEC):
                picked.append(st)
            elif republish and is_live:
                picked.append(st)  # unchanged: republish so staleness shows instead of a frozen panel
        self._export_counts()
        if not picked:
            return 0
        snaps, wire = [], []
        weights = self.config.weights
        for st in picked:
            if st.pending_book is not None:
                rejection = apply_pending_book(st)
                if rejection is not None:
                    self._reject(rejection)  # the last valid book stays in place
            fields = snapshot_fields(st, now_ms=now_ms, weights=weights, stale_reason=self._stale_reason(st, now_ms))
            snaps.append(SymbolSnapshot(**fields))
            wire.append(fields)  # the snapshot holds the values, so the envelope may reshape this dict
        await self.hot.put_many(snaps)
        published = candles_published = 0
        frames: list[tuple[str, str, str, str]] = []  # published together: one Redis round trip per flush
        for st, fields in zip(picked, wire, strict=True):
            first_change = st.dirty_since if st.dirty else 0.0
            st.dirty = False
            if st.symbol not in live:
                fold_candles(st)
                continue
            batch, dropped = take_batch(st)
            candles = current_candles(st)
            wire_candles = _use_fragments(st, fields, candles)
            text = self._encode_fields(fields, now_ms=now_ms, batch=batch, dropped=dropped, candles=wire_candles)
            frames.append((ch.PUBLIC_MARKET, st.symbol, text, ch.AGG_UPDATE))
            published += 1
            if st.candles_dirty and mono - self._candles_sent.get(st.symbol, 0.0) >= CANDLE_PUBLISH_SEC:
                # Candles travel at most once a second per symbol (the snapshot's candles_live carries the
                # current ones at the publish rate); the hot state keeps them for /trading/candles.
                self._candles_sent[st.symbol] = mono
                st.candles_dirty = False
                for interval, candle in candles.items():
                    await self.hot.put_candles(st.symbol, interval, [candle])
                ctext = self._envelope_text(st.symbol, now_ms, {"kind": "candle", "source": SOURCE, "candles": candles})
                # The envelope says agg_update; the hub's conflation key gets its own event type so that a lagging
                # client's latest-wins slot for snapshots is never taken by a candle frame or vice versa.
                frames.append((ch.PUBLIC_MARKET, st.symbol, ctext, CANDLE_CONFLATION_KEY))
                candles_published += 1
            if first_change:
                m.PUBLISH_LATENCY.observe(time.monotonic() - first_change)
        await self.publisher.publish_many(frames)
        if published:
            _PUBLISHED_SNAPSHOTS.inc(published)
        if candles_published:
            _PUBLISHED_CANDLES.inc(candles_published)
        return published + candles_published

    def _export_counts(self) -> None:
        """Frame counts go to Prometheus once per flush, not per frame (a labelled inc takes a lock)."""
        exported = self._messages_exported
        for channel, n in self.messages.items():
            if n != exported[channel]:
                m.messages_in(channel).inc(n - exported[channel])
                exported[channel] = n

    # --- status -----------------------------------------------------------------------------------------------------
    def status(self, *, now_ms: int | None = None) -> dict[str, Any]:
        now_ms = clock.now_ms() if now_ms is None else now_ms
        h = self.health
        freshness = {}
        for symbol in sorted(self.live):
            st = self.states[symbol]
            freshness[symbol] = {
                "price_age_ms": _age(now_ms, st.price_ts),
                "book_age_ms": _age(now_ms, st.book_ts),
                "trades_age_ms": _age(now_ms, st.trades_ts),
                "ctx_age_ms": _age(now_ms, st.ctx_ts),
            }
        return {
            "running": True,
            "process_id": PROCESS_ID,
            "venue": self.config.venue_name,
            "venue_url": self.config.venue_url,
            "started_at_ms": self.started_ms,
            "updated_at_ms": now_ms,
            "universe_size": len(self.tokens),
            "subscriptions": {
                "symbols": sorted(self.subscribed),
                "count": len(self.subscribed),
                "channels": len(self.subscribed) * len(streams.PER_SYMBOL_TYPES) + (1 if self._ws else 0),
                "on_demand": sorted(s for s in self.subscribed if s in self.demand),
                "max_symbols": self.config.max_symbols,
                "top_n": self.config.top_n,
            },
            "sources": {
                SOURCE: {
                    "state": "degraded" if h.state == "connected" and h.degraded_symbols else h.state,
                    "connected": h.state == "connected",
                    "connected_since_ms": h.connected_since_ms,
                    "disconnected_since_ms": h.disconnected_since_ms,
                    "last_message_ms": h.last_message_ms,
                    "last_message_age_ms": _age(now_ms, h.last_message_ms),
                    "last_error": h.last_error,
                    "degraded_symbols": h.degraded_symbols,
                }
            },
            "freshness": freshness,
            "reconnects": h.reconnects,
            "stalls": h.stalls,
            "rejected": dict(self.rejections),
            "messages": dict(self.messages),
            "upstream": self.upstream.stats(),
        }

    async def housekeeping(self) -> None:
        now_ms = clock.now_ms()
        try:
            self.demand = await self.hot.demanded_symbols()
        except Exception:
            logger.warning("reading symbol demand failed", exc_info=True)
        self.live = set(self.desired())
        if self.live != self.subscribed:
            self._wake_subscriber.set()
        degraded = []
        for symbol in self.subscribed:
            st = self.states[symbol]
            age = _age(now_ms, st.book_ts)
            if age is not None:
                m.BOOK_AGE.labels(symbol).set(age / 1000.0)
            if age is None or age > FRESHNESS_MS["book"]:
                degraded.append(symbol)
        self.health.degraded_symbols = sorted(degraded)
        m.SUBSCRIBED.set(len(self.subscribed))
        await self.hot.set_status(self.status(now_ms=now_ms), ttl_sec=STATUS_TTL_SEC)
        await asyncio.to_thread(components.heartbeat, "ingest", detail=f"{len(self.subscribed)} symbols")

    # --- loops --------------------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        logger.info("ingest starting", extra={"source": SOURCE, "venue_url": self.config.venue_url})
        tasks = [
            asyncio.create_task(self._connection_loop(stop), name="ingest-connection"),
            asyncio.create_task(self._every(stop, self.config.publish_interval_ms / 1000.0, self.flush), name="flush"),
            asyncio.create_task(self._every(stop, 1.0, self.housekeeping), name="ingest-housekeeping"),
            asyncio.create_task(self._backfill_loop(stop), name="ingest-backfill"),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.health.state = "stopped"
            with contextlib.suppress(Exception):
                status = self.status()
                status["running"] = False
                await self.hot.set_status(status, ttl_sec=STATUS_TTL_SEC)
            m.CONNECTED.labels(SOURCE).set(0)
            logger.info("ingest stopped", extra={"source": SOURCE})

    async def _every(self, stop: asyncio.Event, period: float, fn: Any) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("ingest loop round failed", extra={"loop": getattr(fn, "__name__", "?")})
                await asyncio.to_thread(components.error_seen_safely, "ingest", exc)
            await _sleep(stop, max(0.0, period - (time.monotonic() - started)))

    async def _connection_loop(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            got_data = False
            try:
                if not self.tokens or time.monotonic() - self._last_universe > UNIVERSE_REFRESH_SEC:
                    await self.load_universe()
                self.health.state = "connecting"
                async with websockets.connect(
                    streams.ws_url(self.config.venue_url),
                    ping_interval=None,
                    open_timeout=5,
                    close_timeout=1,
                    max_size=8 * 1024 * 1024,
                    compression=None,
                ) as ws:
                    got_data = await self._session(ws, stop)
            except asyncio.CancelledError:
                raise
            except StallDetected as exc:
                self.health.stalls += 1
                m.STALLS.labels(SOURCE).inc()
                self.health.last_error = str(exc)
                logger.warning("venue stream stalled: reconnecting", extra={"source": SOURCE, "detail": str(exc)})
            except (OSError, TimeoutError, websockets.WebSocketException, UpstreamUnavailable) as exc:
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                logger.info("venue connection lost", extra={"source": SOURCE, "error": self.health.last_error})
            except Exception as exc:
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("venue session failed", extra={"source": SOURCE})
            if self.health.last_error:
                await asyncio.to_thread(components.error_seen_safely, "ingest", self.health.last_error)
            self._on_disconnect()
            if stop.is_set():
                break
            attempt = 0 if got_data else attempt + 1
            self.health.reconnects += 1
            m.RECONNECTS.labels(SOURCE).inc()
            await _sleep(stop, streams.backoff_delay(attempt, cap=self.config.reconnect_max_sec))

    def _on_disconnect(self) -> None:
        if self.health.state == "connected":
            self.health.disconnected_since_ms = clock.now_ms()
        self.health.state = "disconnected"
        self.health.connected_since_ms = None
        self.subscribed = set()
        self._ws = None
        m.CONNECTED.labels(SOURCE).set(0)

    async def _session(self, ws: Any, stop: asyncio.Event) -> bool:
        """One socket's life; returns whether any data arrived (resets the back-off)."""
        self._ws = ws
        self.subscribed = set()
        self.health.state = "connected"
        self.health.connected_since_ms = clock.now_ms()
        self.health.last_error = ""
        m.CONNECTED.labels(SOURCE).set(1)
        now = time.monotonic()
        self.last_frame_mono = self.last_mids_mono = now
        frames_before = sum(self.messages.values())
        await ws.send(streams.sub_frame("subscribe", "allMids"))
        tasks = [
            asyncio.create_task(self._reader(ws)),
            asyncio.create_task(self._pinger(ws)),
            asyncio.create_task(self._subscriber(ws)),
            asyncio.create_task(self._watchdog()),
            asyncio.create_task(stop.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        got_data = sum(self.messages.values()) > frames_before
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return got_data

    async def _reader(self, ws: Any) -> None:
        async for raw in ws:
            self.handle_raw(raw)
        raise ConnectionError("the venue closed the socket")

    async def _pinger(self, ws: Any) -> None:
        # The venue closes a socket it has heard nothing on for 60 s; subscriptions do not count forever.
        while True:
            await asyncio.sleep(self.config.ping_sec)
            await ws.send(streams.PING_FRAME)

    async def _watchdog(self) -> None:
        limit = self.config.stall_sec
        while True:
            await asyncio.sleep(min(0.5, limit / 4))
            now = time.monotonic()
            if now - self.last_frame_mono > limit:
                raise StallDetected(f"no venue data for {now - self.last_frame_mono:.1f}s")
            if now - self.last_mids_mono > limit:
                raise StallDetected(f"allMids silent for {now - self.last_mids_mono:.1f}s")

    async def _subscriber(self, ws: Any) -> None:
        """Keep the socket's subscriptions equal to `desired()`, in batches with pauses between them."""
        while True:
            want = self.desired()
            add = [s for s in want if s not in self.subscribed]
            remove = [s for s in self.subscribed if s not in set(want)]
            for i in range(0, len(add), self.config.batch_size):
                for symbol in add[i : i + self.config.batch_size]:
                    coin = self.symbols.coin(symbol)
                    for sub_type in streams.PER_SYMBOL_TYPES:
                        await ws.send(streams.sub_frame("subscribe", sub_type, coin))
                    self.subscribed.add(symbol)
                    if symbol not in self.ever_live:
                        self.ever_live.add(symbol)
                        self._queue_backfill(symbol)
                await asyncio.sleep(self.config.batch_pause_sec)
            for symbol in remove:
                coin = self.symbols.coin(symbol)
                for sub_type in streams.PER_SYMBOL_TYPES:
                    await ws.send(streams.sub_frame("unsubscribe", sub_type, coin))
                self.subscribed.discard(symbol)
                with contextlib.suppress(KeyError):
                    m.BOOK_AGE.remove(symbol)
            self._wake_subscriber.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_subscriber.wait(), 1.0)

    # --- candle backfill ----------------------------------------------------------------------------------------
    def _queue_backfill(self, symbol: str) -> None:
        if self.config.backfill_candles:
            for interval in ft.CANDLE_INTERVALS:
                self._backfill.append((symbol, interval, 0.0))

    async def _backfill_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._backfill or self._backfill[0][2] > time.monotonic():
                if self._backfill:
                    self._backfill.rotate(-1)
                await _sleep(stop, 0.25)
                continue
            symbol, interval, _ = self._backfill.popleft()
            try:
                ok = await self.backfill_one(symbol, interval)
            except Exception:
                logger.exception("candle backfill failed", extra={"symbol": symbol, "interval": interval})
                ok = False
            if not ok:
                self._backfill.append((symbol, interval, time.monotonic() + 10.0))
            await _sleep(stop, 0.2)

    async def backfill_one(self, symbol: str, interval: str) -> bool:
        st = self.states.get(symbol)
        if st is None:
            return True
        end = clock.now_ms()
        start = end - ft.CANDLE_INTERVALS[interval] * ft.CANDLES_KEPT
        body = {
            "type": "candleSnapshot",
            "req": {"coin": st.coin, "interval": interval, "startTime": start, "endTime": end},
        }
        try:
            result = await asyncio.to_thread(self.upstream.info, body, ttl_sec=self.config.candles_ttl_sec)
        except UpstreamUnavailable:
            return False
        if not result.fresh or not isinstance(result.data, list):
            return False
        fold_candles(st)  # trades since the last flush first, so the merge sees every live candle
        candles = []
        for row in result.data:
            with contextlib.suppress(ValueError):
                candles.append(ft.candle_from_venue(row))
        st.candles[interval] = ft.candles_merge(st.candles[interval], candles)
        st.candles_wire = None
        await self.hot.put_candles(
            symbol, interval, [c.as_wire(interval=interval, symbol=symbol) for c in st.candles[interval]]
        )
        return True


_PUBLISHED_SNAPSHOTS = m.PUBLISHED.labels("snapshot")
_PUBLISHED_CANDLES = m.PUBLISHED.labels("candle")
# (group, timestamp field, threshold): kernel.contracts.snapshot's freshness rules, read from snapshot fields.
_FRESHNESS = tuple((group, f"{group}_ts", threshold) for group, threshold in FRESHNESS_MS.items())


_AGG_STREAM = f"{SOURCE}:{ch.AGG_UPDATE}"


def _dumps_wire(obj: dict[str, Any]) -> str:
    """`dumps_text`, byte for byte: plain orjson when every key is a string (the ingest envelopes), which skips
    OPT_NON_STR_KEYS's per-key work; anything orjson cannot encode so goes through the contract's serialiser."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return dumps_text(obj)


def _use_fragments(st: SymbolState, fields: dict[str, Any], candles: dict[str, Any]) -> Any:
    """Swap the envelope's slow-changing parts (published trades, book) for JSON encoded once per change of their
    input, and return the current candles' (candles_live): a symbol is published 5×/s, its book changes 2×/s, a
    quiet symbol's trades and candles less often. The output bytes are the same as encoding them inline."""
    frag = st.trades_frag
    if frag is None:
        frag = st.trades_frag = orjson.Fragment(orjson.dumps(fields["trades"][:PUBLISHED_TRADES]))
    fields["trades"] = frag
    book = fields["book"]
    cached = st.book_frag
    if cached is None or cached[0] is not st.bids or cached[1] is not st.asks:
        cached = st.book_frag = (st.bids, st.asks, orjson.Fragment(orjson.dumps(book)))
    fields["book"] = cached[2]
    ccached = st.candles_frag
    if ccached is None or ccached[0] is not candles:
        ccached = st.candles_frag = (candles, orjson.Fragment(orjson.dumps(candles)))
    return ccached[1]  # for candles_live


def wire_staleness(fields: dict[str, Any], now_ms: int) -> dict[str, dict[str, Any]]:
    """`staleness_dict` of the snapshot with these fields, without building the intermediate objects."""
    out = {}
    for group, ts_field, threshold in _FRESHNESS:
        ts = fields[ts_field]
        if ts is None:
            out[group] = {"age_ms": None, "threshold_ms": threshold, "stale": True}
        else:
            age = now_ms - ts if now_ms > ts else 0
            out[group] = {"age_ms": age, "threshold_ms": threshold, "stale": age > threshold}
    return out


def _age(now_ms: int, ts: int | None) -> int | None:
    return None if ts is None else max(0, now_ms - ts)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


_current: Ingestor | None = None


def current_ingestor() -> Ingestor | None:
    """The ingestor running in this process, if any (the readiness check asks)."""
    return _current


async def run_ingest(stop: asyncio.Event, **overrides: Any) -> None:
    global _current
    ingestor = Ingestor(config=IngestConfig.from_settings(**overrides))
    _current = ingestor
    try:
        await ingestor.run(stop)
    finally:
        _current = None


async def run_embedded(stop: asyncio.Event) -> None:
    """The one-process topology's ingest component (registered in hypersentry.topology)."""
    if not settings.AGGREGATOR_EMBEDDED:
        logger.info("embedded ingest disabled (AGGREGATOR_EMBEDDED=false)")
        await stop.wait()
        return
    await run_ingest(stop)
