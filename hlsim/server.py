"""aiohttp I/O shell: one port serving POST /info, POST /exchange, WS /ws and (optionally) /control."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from hlsim.engine import Venue
from hlsim.faults import MALFORMED_FRAME, Faults
from hlsim.info import all_mids_map, asset_ctx_wire, handle_info, info_weight, l2_book_wire
from hlsim.market import TICK_MS, MarketEngine, StepEvents
from hlsim.orders import BadRequest
from hlsim.ratelimit import IpWeightLimiter, exchange_weight
from hlsim.universe import resolve_universe
from hlsim.wshub import USER_TYPES, Hub, SubscriptionError, WsConn, subscription_key

logger = logging.getLogger(__name__)

DESERIALIZE_ERROR = "Failed to deserialize the JSON body into the target type"
MAX_STEPS_PER_ITERATION = 2000


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 3001  # 0 = pick a free port
    seed: int = 1
    symbols: list[str] | None = None
    n_symbols: int | None = None
    speed: float = 1.0
    fund: dict[str, Decimal] = field(default_factory=dict)
    control: bool = False
    default_balance: Decimal = Decimal(100_000)
    rate_limits: bool = True
    ip_weight_per_minute: int = 1200
    ws_idle_timeout: float = 60.0
    ws_max_connections_per_ip: int = 100
    ws_max_subscriptions_per_ip: int = 1000
    ws_max_users_per_ip: int = 10
    backfill_minutes: int = 360
    loop_interval: float = 0.1  # push cadence: trades are batched per iteration (~ a block or two)
    ws_compress: bool = False  # permessage-deflate costs CPU per connection per frame


@dataclass
class Stats:
    orders_by_cloid: Counter = field(default_factory=Counter)
    rest_calls: Counter = field(default_factory=Counter)
    rate_limited: int = 0
    order_actions: int = 0

    def snapshot(self, *, sim: Simulator) -> dict:
        return {
            "orders_by_cloid": dict(self.orders_by_cloid),
            "distinct_cloids": len(self.orders_by_cloid),
            "order_actions": self.order_actions,
            "rest_calls": dict(self.rest_calls),
            "rest_calls_total": sum(self.rest_calls.values()),
            "rate_limited": self.rate_limited,
            "ws_connections": len(sim.hub.conns),
            "ws_frames_sent": sim.hub.frames_sent,
            "regimes": sim.market.regimes(),
            "sim_ms": sim.market.sim_ms,
            "faults": sim.faults.snapshot(),
        }


def wall_ms() -> int:
    return int(time.time() * 1000)


class Simulator:
    """In-process simulator.

    ``sim = Simulator(SimConfig(port=0)); await sim.start(); sim.base_url; await sim.stop()``
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        coins = resolve_universe(symbols=self.config.symbols, n_symbols=self.config.n_symbols)
        self.market = MarketEngine(seed=self.config.seed, coins=coins)
        self.venue = Venue(
            market=self.market,
            clock=wall_ms,
            default_balance=self.config.default_balance,
            backfill_minutes=self.config.backfill_minutes,
        )
        self.venue.address_limits_disabled = not self.config.rate_limits
        for address, usdc in self.config.fund.items():
            self.venue.fund(address=address, usdc=usdc)
        self.faults = Faults()
        self.faults._drop_cb = self._drop_all
        self.faults._malformed_cb = lambda: self.hub.broadcast_raw(MALFORMED_FRAME)
        self.hub = Hub()
        self.stats_data = Stats()
        self.limiter = IpWeightLimiter(
            weight_per_minute=self.config.ip_weight_per_minute, enabled=self.config.rate_limits
        )
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task | None = None
        self._hung: set[asyncio.Future] = set()
        self._last_bbo: dict[str, tuple] = {}
        self.port = self.config.port

    # ----- lifecycle -----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/ws"

    @property
    def stats(self) -> dict:
        return self.stats_data.snapshot(sim=self)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/info", self._info)
        app.router.add_post("/exchange", self._exchange)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/healthz", self._healthz)
        if self.config.control:
            app.router.add_post("/control", self._control)
            app.router.add_get("/control/stats", self._control_stats)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._market_loop())
        logger.info("hlsim listening", extra={"url": self.base_url, "seed": self.config.seed})

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for fut in list(self._hung):
            if not fut.done():
                fut.cancel()
        for conn in list(self.hub.conns):
            conn.task.cancel()
            await conn.ws.close(code=1001)
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    # ----- market loop ---------------------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        """Step simulated time at `speed` × real time and publish what changed. Never blocks the loop."""
        tick_s = TICK_MS / 1000.0 / self.config.speed
        started = time.monotonic()
        done = 0
        while True:
            due = int((time.monotonic() - started) / tick_s) - done
            n = min(max(due, 0), MAX_STEPS_PER_ITERATION)
            if due > MAX_STEPS_PER_ITERATION:  # fell behind (e.g. suspended): skip ahead rather than spin
                done += due - n
            try:
                self.advance_ticks(n)
                self.venue.on_clock(wall_ms())
                self._flush_outbox()
            except Exception:
                logger.exception("hlsim market loop iteration failed")
            done += n
            await asyncio.sleep(self.config.loop_interval)

    def advance_ticks(self, n: int) -> None:
        """Step the market `n` ticks now, applying user fills and publishing (also used by tests/control)."""
        books: set[str] = set()
        mids = ctxs = False
        for _ in range(n):
            ev: StepEvents = self.market.step()
            self.venue.on_market(ev)
            books.update(ev.books)
            mids |= ev.mids
            ctxs |= ev.ctxs
        if n:
            self._publish_market(books=books, mids=mids, ctxs=ctxs)

    def _publish_market(self, *, books: set[str], mids: bool, ctxs: bool) -> None:
        hub = self.hub
        if self.faults.stalled:
            return
        now = wall_ms()
        for coin in books:
            for key in hub.keys_for("l2Book", coin):
                hub.publish(key, l2_book_wire(self.venue, coin, key[2], key[3], now=now))
            if hub.has(("bbo", coin)):
                self._publish_bbo(coin, now)
        if mids and hub.has(("allMids",)):
            hub.publish(("allMids",), {"mids": all_mids_map(self.venue)})
        if ctxs:
            for coin in self.venue.specs:
                if hub.has(("activeAssetCtx", coin)):
                    hub.publish(("activeAssetCtx", coin), {"coin": coin, "ctx": asset_ctx_wire(self.venue, coin)})
        for coin in self.venue.touched_candles:
            for key in hub.keys_for("candle", coin):
                candle = self.venue.candles[coin].current(interval=key[2])
                if candle:
                    hub.publish(key, candle)
        self.venue.touched_candles.clear()

    def _publish_bbo(self, coin: str, now: int) -> None:
        book = l2_book_wire(self.venue, coin, now=now)
        bids, asks = book["levels"]
        bbo = (bids[0] if bids else None, asks[0] if asks else None)
        if self._last_bbo.get(coin) != bbo:  # bbo pushes only when it changes
            self._last_bbo[coin] = bbo
            self.hub.publish(("bbo", coin), {"coin": coin, "time": now, "bbo": list(bbo)})

    def _flush_outbox(self) -> None:
        """Group the venue's pending pushes per key (trades/orderUpdates become one list) and publish."""
        outbox, self.venue.outbox = self.venue.outbox, []
        if not outbox or self.faults.stalled:
            return
        lists: dict[tuple, list] = defaultdict(list)
        for key, data in outbox:
            if key[0] == "trades":
                lists[key].append(data)
            elif key[0] == "orderUpdates":
                lists[key].extend(data)
            else:
                self.hub.publish(key, data)
        for key, items in lists.items():
            self.hub.publish(key, items)

    # ----- REST ----------------------------------------------------------------------------------------------
    def _count_call(self, endpoint: str, kind: object) -> None:
        self.stats_data.rest_calls[f"{endpoint}:{kind if isinstance(kind, str) else '?'}"] += 1

    async def _preamble(self, request: web.Request, endpoint: str) -> web.Response | Any:
        """The decoded body, or the response to send instead (counted as an `<endpoint>:?` call)."""
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            self._count_call(endpoint, None)
        return body

    async def _read_body(self, request: web.Request) -> web.Response | Any:
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000.0)
        raw = await request.read()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            if self.faults.rate_limited:
                return self._too_many()
            return web.Response(status=422, text=DESERIALIZE_ERROR)

    def _too_many(self) -> web.Response:
        # The SDK maps a 4xx with body `null` to ClientError (it would KeyError on other objects).
        self.stats_data.rate_limited += 1
        return web.Response(status=429, body=b"null", content_type="application/json")

    async def _info(self, request: web.Request) -> web.Response:
        body = await self._preamble(request, "info")
        if isinstance(body, web.Response):
            return body
        kind = body.get("type") if isinstance(body, dict) else None
        self._count_call("info", kind)
        ip = request.remote or "?"
        if self.faults.rate_limited:
            return self._too_many()
        if not self.limiter.allow(ip=ip, weight=info_weight(kind=str(kind), n_items=0), now_s=time.monotonic()):
            return self._too_many()
        try:
            kind, result = handle_info(self.venue, body)
        except BadRequest:
            return web.Response(status=422, text=DESERIALIZE_ERROR)
        if isinstance(result, list):
            self.limiter.charge_after(
                ip=ip, weight=info_weight(kind=kind, n_items=len(result)) - info_weight(kind=kind, n_items=0)
            )
        return web.Response(body=orjson.dumps(result), content_type="application/json")

    async def _exchange(self, request: web.Request) -> web.Response:
        payload = await self._preamble(request, "exchange")
        if isinstance(payload, web.Response):
            return payload
        action = payload.get("action") if isinstance(payload, dict) else None
        kind = action.get("type") if isinstance(action, dict) else None
        self._count_call("exchange", kind)
        if self.faults.rate_limited:
            return self._too_many()
        batch = (
            action.get("orders") or action.get("cancels") or action.get("modifies")
            if isinstance(action, dict)
            else None
        )
        n = len(batch) if isinstance(batch, list) else 1
        if not self.limiter.allow(
            ip=request.remote or "?", weight=exchange_weight(batch_len=n), now_s=time.monotonic()
        ):
            return self._too_many()
        if kind in ("order", "batchModify", "modify"):
            self._count_cloids(action)
        try:
            result = self.venue.handle_exchange(payload)
        except BadRequest:
            return web.Response(status=422, text=DESERIALIZE_ERROR)
        finally:
            self._flush_outbox()
        if result.rate_limited:
            return self._too_many()
        if kind == "order" and self.faults.take_blackhole():
            await self._hang()
        return web.Response(body=orjson.dumps(result.body), status=result.status, content_type="application/json")

    def _count_cloids(self, action: dict) -> None:
        self.stats_data.order_actions += 1
        orders = action.get("orders") or [m.get("order") for m in action.get("modifies") or [] if isinstance(m, dict)]
        if action.get("type") == "modify":
            orders = [action.get("order")]
        for o in orders:
            if isinstance(o, dict) and isinstance(o.get("c"), str):
                self.stats_data.orders_by_cloid[o["c"].lower()] += 1

    async def _hang(self) -> None:
        """Never answer (until the simulator stops): the order was processed, the client sees a timeout."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._hung.add(fut)
        try:
            await fut
        finally:
            self._hung.discard(fut)

    # ----- WebSocket -----------------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or "?"
        n_conn, _, _ = self.hub.ip_stats(ip)
        if self.config.rate_limits and n_conn >= self.config.ws_max_connections_per_ip:
            return web.Response(status=429, text="Too many connections")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20, compress=self.config.ws_compress)
        await ws.prepare(request)
        conn = WsConn(ws=ws, ip=ip, latency_ms=lambda: self.faults.latency_ms)
        self.hub.conns.add(conn)
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=self.config.ws_idle_timeout)
                except TimeoutError:
                    logger.info("closing idle websocket", extra={"ip": ip})
                    break
                if msg.type == WSMsgType.TEXT:
                    self._on_client_frame(conn, msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            self.hub.drop(conn)
            await asyncio.sleep(0)
            conn.task.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    def _send(self, conn: WsConn, channel: str, data: Any = None) -> None:
        frame = {"channel": channel} if data is None and channel == "pong" else {"channel": channel, "data": data}
        conn.push(orjson.dumps(frame))

    def _on_client_frame(self, conn: WsConn, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._send(conn, "error", f"Error parsing JSON into valid websocket request: {text}")
            return
        method = msg.get("method") if isinstance(msg, dict) else None
        if method == "ping":
            self._send(conn, "pong")
            return
        if method not in ("subscribe", "unsubscribe"):
            self._send(conn, "error", f"Error parsing JSON into valid websocket request: {text}")
            return
        sub = msg.get("subscription")
        try:
            key = subscription_key(sub=sub, coins=self.venue.specs)
        except SubscriptionError as exc:
            self._send(conn, "error", str(exc))
            return
        if method == "unsubscribe":
            if key not in conn.subs:
                self._send(conn, "error", f"Already unsubscribed: {orjson.dumps(sub).decode()}")
                return
            self.hub.remove(conn, key)
            self._send(conn, "subscriptionResponse", {"method": "unsubscribe", "subscription": sub})
            return
        err = self._subscribe_error(conn, key, sub)
        if err:
            self._send(conn, "error", err)
            return
        self.hub.add(conn, key, sub)
        self._send(conn, "subscriptionResponse", {"method": "subscribe", "subscription": sub})
        self._snapshot(conn, key)

    def _subscribe_error(self, conn: WsConn, key: tuple, sub: dict) -> str | None:
        if key in conn.subs:
            return f"Already subscribed: {orjson.dumps(sub).decode()}"
        if not self.config.rate_limits:
            return None
        _, n_sub, users = self.hub.ip_stats(conn.ip)
        if n_sub >= self.config.ws_max_subscriptions_per_ip:
            return f"Cannot subscribe to more than {self.config.ws_max_subscriptions_per_ip} total subscriptions."
        if key[0] in USER_TYPES and key[1] not in users and len(users) >= self.config.ws_max_users_per_ip:
            return f"Cannot track more than {self.config.ws_max_users_per_ip} total users."
        return None

    def _snapshot(self, conn: WsConn, key: tuple) -> None:
        """What the venue sends right after the ack: current book/mids/bbo/ctx, recent trades, fill history."""
        v = self.venue
        kind = key[0]
        data: Any = None
        if kind == "l2Book":
            data = l2_book_wire(v, key[1], key[2], key[3])
        elif kind == "allMids":
            data = {"mids": all_mids_map(v)}
        elif kind == "trades":
            data = list(v.recent_trades[key[1]])
        elif kind == "bbo":
            levels = l2_book_wire(v, key[1])["levels"]
            data = {"coin": key[1], "time": wall_ms(), "bbo": [levels[0][0], levels[1][0]]}
        elif kind == "candle":
            data = v.candles[key[1]].current(interval=key[2])
        elif kind == "activeAssetCtx":
            data = {"coin": key[1], "ctx": asset_ctx_wire(v, key[1])}
        elif kind == "userFills":
            acct = v.accounts.get(key[1])
            data = {"isSnapshot": True, "user": key[1], "fills": list(reversed(acct.fills[-2000:])) if acct else []}
        elif kind == "userFundings":
            acct = v.accounts.get(key[1])
            data = {"isSnapshot": True, "user": key[1], "fundings": acct.fundings[-500:] if acct else []}
        if data is not None and not (kind == "trades" and not data):
            self._send(conn, "user" if kind == "userEvents" else kind, data)

    def _drop_all(self) -> None:
        for conn in list(self.hub.conns):
            conn.close_soon(code=1012)

    # ----- control -------------------------------------------------------------------------------------------
    async def _control(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            result = self.control(body)
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, **result})

    async def _healthz(self, request: web.Request) -> web.Response:
        """Liveness for probes and heartbeats: answered by the serving loop, outside the per-IP rate limit (a probe
        on /info would spend the same address's weight as the app it shares a host with)."""
        return web.Response(
            body=orjson.dumps({"ok": True, "time_ms": int(time.time() * 1000)}), content_type="application/json"
        )

    async def _control_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats), content_type="application/json")

    def control(self, body: dict) -> dict:
        """Control actions (same as POST /control): drop_ws, stall, rate_limit, latency, malformed_frame,
        blackhole_orders, clear_faults, advance, fund, accounts, stats."""
        action = body["action"]
        if action == "drop_ws":
            self.faults.drop_ws()
        elif action == "stall":
            self.faults.stall(float(body["seconds"]))
        elif action == "rate_limit":
            self.faults.rate_limit(float(body["seconds"]))
        elif action == "latency":
            self.faults.latency(int(body["ms"]))
        elif action == "malformed_frame":
            self.faults.malformed_frame()
        elif action == "blackhole_orders":
            self.faults.blackhole(int(body.get("count", 1)))
        elif action == "clear_faults":
            self.faults.clear()
        elif action == "advance":
            self.advance_ticks(int(float(body["seconds"]) * 1000 / TICK_MS))
            self._flush_outbox()
        elif action == "fund":
            self.venue.fund(address=str(body["user"]), usdc=Decimal(str(body["usdc"])))
        elif action == "accounts":
            return {"accounts": self._accounts_view(), "stats": self.stats}
        elif action != "stats":
            raise ValueError(f"unknown control action {action!r}")
        return {"stats": self.stats}

    def _accounts_view(self) -> dict[str, dict]:
        """Every account's open orders and positions, outside the REST rate limit (test harnesses compare their
        books with the venue's without spending the per-IP budget the system under test depends on)."""
        out: dict[str, dict] = {}
        for address, acct in self.venue.accounts.items():
            orders = [o for o in self.venue.user_orders(address) if o.is_open]
            out[address] = {
                "open_orders": [{"oid": o.oid, "cloid": o.cloid} for o in orders],
                "positions": {coin: str(pos.szi) for coin, pos in acct.positions.items() if pos.szi != 0},
            }
        return out

    def fund(self, *, address: str, usdc: Decimal | int | str) -> None:
        self.venue.fund(address=address, usdc=Decimal(str(usdc)))


class SimulatorThread:
    """Runs a Simulator on its own event loop in a daemon thread (for synchronous callers/tests)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hlsim", daemon=True)
        self._thread.start()
        self.sim: Simulator = asyncio.run_coroutine_threadsafe(self._make(config), self.loop).result()

    @staticmethod
    async def _make(config: SimConfig | None) -> Simulator:
        return Simulator(config)

    def start(self) -> Simulator:
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(timeout=30)
        return self.sim

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the simulator's loop (state is single-threaded) and return its result."""

        async def _run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_run(), self.loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
