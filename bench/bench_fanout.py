"""Fan-out benchmark: the /ws gateway against two baselines, same workload, same clients, same run.

    .venv/bin/python bench/bench_fanout.py                   # 1000 clients × ~10 frames/s, 3 modes, ~1 minute
    .venv/bin/python bench/bench_fanout.py --clients 300 --seconds 5 --modes gateway,websockets
    .venv/bin/python bench/bench_fanout.py --modes split,gateway,websockets --webs 2 --goals-for split

Exit status 1 when a goal of a `--goals-for` mode is missed: p99 ≤ 100 ms, CPU per delivered frame ≤ 1.5× plain
websockets', ≥ 99.9 % of the expected frames delivered; gateway also ≥ 5× below stock Channels.

Modes (each server is its own process, pinned to CPU 0; the client processes are pinned to the other CPUs):
  gateway     uvicorn (websockets-sansio, per-message deflate off) serving hypersentry.asgi:application — the real
              OriginValidator(AuthMiddlewareStack(URLRouter)) stack and hypersentry/gateway.py's GatewayConsumer (the
              control plane; frames reach sockets without consumer dispatch); frames go through
              kernel.realtime.get_broadcaster().publish, the call ingest makes (in-memory broadcaster: one process).
  split       the split topology (bench_fanout_scaled.py): a throwaway redis-server, `--webs` (2) processes running
              the Procfile's web command (`uvicorn hypersentry.asgi:application` with docker-compose.yml's flags) and
              REDIS_URL (RedisBroadcaster: one pattern subscription per web process, local fan-out), a publisher calling
              get_broadcaster().publish as ingest does; clients alternate between the web processes. All of them
              on CPU 0; server CPU = the web processes + redis-server (the publisher's is printed apart).
  websockets  plain `websockets` server + websockets.broadcast of the same text: the practical limit.
  channels    uvicorn + stock AsyncWebsocketConsumer, channel_layer.group_send per frame through the configured layer
              (kernel.channel_layer: a plain group, a queue per consumer, consumer dispatch per frame): the naive path.

Workload: every symbol gets one frame per tick (`--rate` ticks/s), so each (symbol, channel, event_type) key is
published exactly at `--rate`; clients subscribe to 1-3 of `--symbols` symbols (~2 × rate frames/s each). Each frame
is an envelope whose ts_ms / data.t are stamped at publish.

Method:
  * Clients connect with at most 64 handshakes in flight, subscribe and WAIT FOR EVERY ACK; the measuring window
    opens only when every client of every process has all its acks (the subscribe-ack time is reported).
  * The window is defined on the publish stamp: a client counts a frame when its data.t falls in the window (and
    keeps reading for a grace period after it), so frames in flight at the edges are neither lost nor double-counted.
  * expected = Σ over subscriptions of the ticks the server published inside the window (the server reports its
    tick times). Nothing is conflated unless a socket is lagging: every frame of a key is expected, and the gateway's
    own counters (offered / lagging / conflated) are printed so a shortfall can be attributed.
  * Server CPU = utime + stime of the server process(es) from /proc/<pid>/stat over the window; per delivered frame
    (the kernel share, stime, is printed in brackets).
  * latency = client receive time − publish stamp (same clock: one machine).

Clients: asyncio clients on the `websockets` library, many connections per process — per connection websockets'
Sans-I/O ClientProtocol (handshake with the Origin header, framing, close) under a bare asyncio.Protocol that reads
only each frame's publish stamp, so the clients are not the bottleneck (their CPU over the window is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.frames import Opcode

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
GRACE_SEC = 1.5
ORIGIN = "http://127.0.0.1:8000"
_TEXT = Opcode.TEXT

# --- servers (run with `python bench_fanout.py --serve <mode> --port P --symbols S --rate R --stats F`) -----------


def _frame(symbol: str, seq: int, now: float) -> str:
    """One agg_update-like envelope (~0.7 KB: a 10-level book); ts_ms / data.t = the tick's ingest stamp (ms)."""
    from kernel.contracts.envelope import make_envelope

    book = {
        "bids": [[f"{100 - i * 0.1:.1f}", "1.5"] for i in range(10)],
        "asks": [[f"{100 + i * 0.1:.1f}", "2.0"] for i in range(10)],
    }
    data = {"symbol": symbol, "price": "100.0", "book": book, "t": now}
    env = make_envelope(event_type="agg_update", symbol=symbol, ts_ms=int(now), source="bench", seq=seq, data=data)
    return env.encode().decode()


class Publisher:
    """One frame per symbol per tick; records tick stamps and the time spent inside the fan-out calls."""

    def __init__(self, publish: Any, symbols: list[str], rate: float, publish_tick: Any = None) -> None:
        self.publish = publish
        self.publish_tick = publish_tick  # all of a tick's frames in one call (the split mode's --publish tick)
        self.symbols = symbols
        self.rate = rate
        self.ticks: list[float] = []  # publish stamps (s) of each tick
        self.fanout_s = 0.0
        self.encode_s = 0.0  # CPU (this thread) spent building and encoding the envelopes

    async def run(self) -> None:
        seq = 0
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while True:
            seq += 1
            stamp = time.time()  # every frame of the tick carries the tick's stamp: "ingest" produced them together
            self.ticks.append(stamp)
            c0 = time.thread_time()
            frames = [(s, _frame(s, seq, stamp * 1000)) for s in self.symbols]
            self.encode_s += time.thread_time() - c0
            t0 = time.perf_counter()
            if self.publish_tick is not None:
                await self.publish_tick(frames)
            else:
                for s, text in frames:
                    await self.publish(s, text)
            self.fanout_s += time.perf_counter() - t0
            # A late tick is not made up with a burst: the per-key rate stays at `rate` (late ticks show as
            # "ticks published" below nominal).
            next_at = max(next_at + period, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())


def _install_stats(path: str, publisher: Publisher, extra: Any) -> None:
    """SIGUSR1 writes the server's counters to `path` (atomically)."""

    def dump() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats = {
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "ticks": publisher.ticks,
            "fanout_s": publisher.fanout_s,
            "encode_s": publisher.encode_s,
            **extra(),
        }
        tmp = f"{path}.tmp"
        Path(tmp).write_text(json.dumps(stats))
        os.replace(tmp, path)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
    dump()  # also the readiness mark of a process without a port (the split topology's publisher)


def _uvicorn(app: Any, port: int, ws: str) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        ws=ws,  # type: ignore[arg-type]
        ws_per_message_deflate=False,
        backlog=4096,
        ws_ping_interval=None,
    )
    return uvicorn.Server(config)


async def serve_gateway(args: argparse.Namespace, symbols: list[str]) -> None:
    import django

    django.setup()
    from hypersentry.asgi import application
    from kernel.realtime import STATS, get_broadcaster

    broadcaster = get_broadcaster()

    async def publish(symbol: str, text: str) -> None:
        await broadcaster.publish(channel="public.market", symbol=symbol, text=text, event_type="agg_update")

    publisher = Publisher(publish, symbols, args.rate)
    _install_stats(args.stats, publisher, lambda: {"hub": STATS.as_dict()})
    server = _uvicorn(application, args.port, args.ws)
    asyncio.create_task(publisher.run())
    await server.serve()


async def serve_publisher(args: argparse.Namespace, symbols: list[str]) -> None:
    """The split topology's ingest stand-in: no sockets, only `get_broadcaster().publish` — with REDIS_URL set that
    is RedisBroadcaster's PUBLISH, exactly what `ingest_markets` calls."""
    import django

    django.setup()
    from kernel.realtime import RedisBroadcaster, get_broadcaster

    broadcaster = get_broadcaster()
    if not isinstance(broadcaster, RedisBroadcaster):
        raise SystemExit("the publisher needs REDIS_URL (RedisBroadcaster)")

    async def publish(symbol: str, text: str) -> None:
        await broadcaster.publish(channel="public.market", symbol=symbol, text=text, event_type="agg_update")

    async def publish_tick(frames: list[tuple[str, str]]) -> None:
        # What ingest does: a flush's frames in one publish_many (one Redis pipeline), so each web process reads a
        # tick in one wake-up instead of one per frame.
        await broadcaster.publish_many([("public.market", symbol, text, "agg_update") for symbol, text in frames])

    publisher = Publisher(publish, symbols, args.rate, publish_tick if args.publish == "tick" else None)
    _install_stats(args.stats, publisher, lambda: {})
    await publisher.run()


async def serve_websockets(args: argparse.Namespace, symbols: list[str]) -> None:
    import logging

    import websockets

    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # the orchestrator's port probe is not a handshake
    subs: dict[str, set[Any]] = {s: set() for s in symbols}
    offered = [0]

    async def handler(ws: Any) -> None:
        mine = []
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "subscribe" and msg.get("coin") in subs:
                    subs[msg["coin"]].add(ws)
                    mine.append(msg["coin"])
                    await ws.send(json.dumps({"type": "subscribed", "coin": msg["coin"]}))
        finally:
            for s in mine:
                subs[s].discard(ws)

    async def publish(symbol: str, text: str) -> None:
        offered[0] += len(subs[symbol])
        websockets.broadcast(subs[symbol], text)

    publisher = Publisher(publish, symbols, args.rate)
    _install_stats(args.stats, publisher, lambda: {"hub": {"offered": offered[0]}})
    async with websockets.serve(handler, "127.0.0.1", args.port, compression=None, ping_interval=None, backlog=4096):
        await publisher.run()


async def serve_channels(args: argparse.Namespace, symbols: list[str]) -> None:
    import django

    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.layers import get_channel_layer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class BenchConsumer(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):  # type: ignore[no-untyped-def]
            msg = json.loads(text_data)
            if msg.get("type") == "subscribe":
                await self.channel_layer.group_add(f"sym.{msg['coin']}", self.channel_name)
                await self.send(text_data=json.dumps({"type": "subscribed", "coin": msg["coin"]}))

        async def market(self, event):  # type: ignore[no-untyped-def]
            await self.send(text_data=event["text"])

    app = ProtocolTypeRouter({"websocket": URLRouter([path("ws", BenchConsumer.as_asgi())])})
    layer = get_channel_layer()

    async def publish(symbol: str, text: str) -> None:
        await layer.group_send(f"sym.{symbol}", {"type": "market", "text": text})

    publisher = Publisher(publish, symbols, args.rate)
    _install_stats(args.stats, publisher, lambda: {})
    server = _uvicorn(app, args.port, args.ws)
    asyncio.create_task(publisher.run())
    await server.serve()


# --- clients -------------------------------------------------------------------------------------------------------


class _Client(asyncio.Protocol):
    """One benchmark connection: websockets' Sans-I/O ClientProtocol under a bare asyncio.Protocol.

    The `websockets` library does the handshake (Origin header), framing and the close handshake; per frame the
    client only reads the publish stamp (data.t, the envelope's last field), so receiving a frame costs the
    protocol's parse and a float() — not a recv() coroutine round trip per frame."""

    def __init__(self, run: _ClientRun, uri: Any, coins: list[str]) -> None:
        from websockets.client import ClientProtocol
        from websockets.typing import Origin

        self.run = run
        self.coins = coins
        self.protocol = ClientProtocol(uri, origin=Origin(ORIGIN), max_size=2**22)
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.acked = 0
        self.closing = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)  # type: ignore[union-attr]
            else:  # b"": the protocol wants the TCP connection half-closed (close handshake done)
                self.transport.write_eof()  # type: ignore[union-attr]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time()  # every frame of this read arrived now
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if not self.open:  # the handshake response
                if protocol.handshake_exc is not None:
                    self._fail(protocol.handshake_exc)
                    return
                self.open = True
                for c in self.coins:
                    msg = json.dumps({"type": "subscribe", "coin": c, "channels": ["public.market"]})
                    protocol.send_text(msg.encode())
                continue
            if event.opcode is not _TEXT:
                continue
            raw = event.data
            if self.acked < len(self.coins):
                if b"subscribed" in raw[:30]:
                    self.acked += 1
                elif b'"error"' in raw[:30]:
                    self.run.counts["unsubscribed"] += 1
                    self.acked += 1
                if self.acked == len(self.coins) and not self.done.done():
                    self.done.set_result(None)
                continue
            window = self.run.window
            if not window or now > window[1] + GRACE_SEC or b'"event_type"' not in raw[:30]:
                continue
            i = raw.rfind(b'"t":')  # data.t is the last field: no full JSON parse per frame
            t = float(raw[i + 4 : raw.index(b"}", i)]) / 1000
            if window[0] <= t < window[1]:
                self.run.latencies.append(1000 * (now - t))
                self.run.counts["frames"] += 1
        self._flush()  # pongs / close frames the protocol produced

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self._fail(exc or ConnectionError("connection closed"))

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)  # counted by the connecting coroutine
        elif not self.closing:
            self.run.counts["errors"] += 1  # lost after its acks
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class _ClientRun:
    """Per client process: the results every connection appends to, and the window once it is known."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.counts = {"frames": 0, "errors": 0, "unsubscribed": 0}
        self.window: list[float] = []  # [start, end] once the orchestrator opens it


async def _client_main(plans: list[tuple[str, list[str]]], ready_q: Any, go: Any) -> dict[str, Any]:
    """`plans`: one (server URL, coins) per connection — the split topology spreads them over its web processes."""
    from websockets.uri import parse_uri

    uris = {url: parse_uri(url) for url, _ in plans}
    loop = asyncio.get_running_loop()
    run = _ClientRun()
    acks_ms: list[float] = []
    conns: list[_Client] = []
    handshakes = asyncio.Semaphore(64)

    async def one(url: str, coins: list[str]) -> None:
        uri = uris[url]
        async with handshakes:
            t0 = time.perf_counter()
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(lambda: _Client(run, uri, coins), uri.host, uri.port), 60
                )
                conns.append(conn)
                await asyncio.wait_for(asyncio.shield(conn.done), 30 * len(coins))
            except Exception:
                run.counts["errors"] += 1
                return
            acks_ms.append(1000 * (time.perf_counter() - t0))

    await asyncio.wait_for(asyncio.gather(*(one(url, coins) for url, coins in plans)), 120)
    ready_q.put({"acks_ms": acks_ms})
    start, end = await loop.run_in_executor(None, go.recv)
    run.window.extend((start, end))
    await asyncio.sleep(max(0.0, start - time.time()))
    cpu0 = _own_cpu()
    await asyncio.sleep(max(0.0, end - time.time()))
    cpu_s = _own_cpu() - cpu0  # this client process's CPU over the window
    await asyncio.sleep(max(0.0, end + GRACE_SEC - time.time()) + 0.1)
    for conn in conns:
        conn.close()
    return {"latencies": run.latencies, "cpu_s": cpu_s, **run.counts}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client_proc(
    plans: list[tuple[str, list[str]]], cpus: list[int], nice: int, ready_q: Any, go: Any, out: Any
) -> None:
    _prioritise(nice, cpus)
    try:
        out.put(asyncio.run(_client_main(plans, ready_q, go)))
    except Exception as exc:
        ready_q.put({"acks_ms": [], "failed": repr(exc)})
        out.put({"latencies": [], "cpu_s": 0.0, "frames": 0, "errors": len(plans), "unsubscribed": 0})


# --- orchestration -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads (/proc/<pid>/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def _cpu_seconds(pid: int) -> float:
    return sum(_cpu_times(pid))


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def _server_stats(pid: int, path: Path) -> dict[str, Any]:
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("server did not report its stats")
        time.sleep(0.01)
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _start_redis(cpus: list[int] | None = None, nice: int = 0) -> tuple[subprocess.Popen[bytes], str] | None:
    """A throwaway redis-server (None when there is no redis-server binary); `cpus`/`nice` as for the servers."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: _prioritise(nice, cpus or [])) if cpus or nice else None,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.1)


def _prioritise(nice: int, cpus: list[int]) -> None:
    """Pin to `cpus` and raise the priority (process and autogroup; needs root, ignored otherwise) so a concurrent
    test run on the same machine disturbs the measurement less. Applied to the server and the clients alike."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        with contextlib.suppress(OSError):  # with sched_autogroup, nice only counts inside the session's group
            Path("/proc/self/autogroup").write_text(str(nice))


def _cpus() -> tuple[list[int], list[int]]:
    """Server on the first CPU, clients on the rest (nothing pinned on a 1-CPU machine)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return [], []
    return available[:1], available[1:]


# The split topology's web process: the Procfile's first web replica, i.e. docker-compose.yml's `web` command as
# deploy/split.py maps it onto this machine (tests/deploy/test_compose.py keeps the two in step), on a free port.
# uvicorn's "auto" websocket implementation is websockets-sansio.
WEB_PROCESS = "web1"
WEB_PORT_FLAG = "--port 8000"
METRICS_TOKEN = "bench-fanout"  # the web processes' /metrics bearer token: the hub's counters are read there


@dataclasses.dataclass
class _Deployment:
    """What a mode started: where clients connect, which processes' CPU is server CPU, and how to read the
    publisher's ticks and the fan-out counters."""

    label: str
    urls: list[str]
    server_pids: dict[str, int]  # their CPU is the server CPU per delivered frame
    side_pids: dict[str, int]  # reported next to it, not counted (the split topology's publisher = ingest)
    read_stats: Callable[[], dict[str, Any]]  # {"ticks": [...], "fanout_s": s, "hub": {counter: n}}
    procs: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    files: list[Path] = dataclasses.field(default_factory=list)  # stats files, logs, directories: removed at the end

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, proc.args[:4]))} exited with {proc.returncode}")

    def print_logs(self) -> None:
        for path in self.files:
            if path.suffix == ".log" and path.exists():
                lines = path.read_text(errors="replace").splitlines()[-20:]
                print(f"--- {path} (last lines)", *lines, sep="\n", flush=True)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for path in self.files:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="hypersentry.settings",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="warning",
        SQLITE_PATH="/tmp/hs-bench.sqlite3",
        ALLOWED_ORIGINS=ORIGIN,
        WS_SEND_BUFFER="1000",
        WS_SLOW_CLIENT_TIMEOUT_SEC="30",
        # Every bench client comes from 127.0.0.1: lift the per-IP cap above the client count.
        WS_MAX_CONNECTIONS_PER_IP=str(args.clients + 100),
        WS_MAX_CONNECTIONS=str(args.clients + 100),
    )
    return env


def _spawn(cmd: list[str], env: dict[str, str], cpus: list[int], nice: int, log: Path | None) -> Any:
    out = log.open("wb") if log is not None else None
    try:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=out, preexec_fn=lambda: _prioritise(nice, cpus)
        )
    finally:
        if out is not None:
            out.close()  # the child holds its own copy


def _wait_until(ready: Callable[[], bool], dep: _Deployment, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        dep.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _start_single(mode: str, args: argparse.Namespace, symbols: list[str], redis: Any, cpus: list[int]) -> _Deployment:
    """One server process (publisher inside it), as every mode ran before the split topology was added."""
    port = _free_port()
    stats_path = Path(f"/tmp/hs-bench-fanout-{os.getpid()}-{mode}.json")
    env = _server_env(args)
    server_pids: dict[str, int] = {}
    label = mode
    if redis is not None and mode in ("gateway", "channels"):
        env["REDIS_URL"] = redis[1]  # gateway: RedisBroadcaster; channels: RealtimeChannelLayer over Redis pub/sub
        server_pids["redis"] = redis[0].pid
        label = f"{mode} (Redis)"
    cmd = [sys.executable, __file__, "--serve", mode, "--port", str(port), "--symbols", ",".join(symbols)]
    cmd += ["--rate", str(args.rate), "--stats", str(stats_path), "--ws", args.ws]
    server = _spawn(cmd, env, cpus, args.nice, None)
    server_pids = {"server": server.pid, **server_pids}
    dep = _Deployment(
        label=label,
        urls=[f"ws://127.0.0.1:{port}/ws"],
        server_pids=server_pids,
        side_pids={},
        read_stats=lambda: _server_stats(server.pid, stats_path),
        procs=[server],
        files=[stats_path],
    )
    try:
        _wait_until(lambda: _port_open(port), dep, f"{mode} server")
    except Exception:
        dep.stop()
        raise
    return dep


def _scrape_hub(port: int) -> dict[str, int]:
    """The fan-out counters of one web process, from its /metrics (frames offered to sockets, conflated)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    wanted = {
        'hs_ws_frames_total{kind="public"}': "offered",
        'hs_ws_dropped_frames_total{reason="conflated"}': "conflated",
    }
    counters = dict.fromkeys(wanted.values(), 0)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            counters[wanted[name]] = int(float(value))
    return counters


def _web_argv(port: int) -> list[str]:
    """The Procfile's web command, on `port`."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # Imported here, not at the top: the bench runs from bench/ (the project joins sys.path above), and the client
    # processes, which re-import this module, need none of it.
    from deploy.split import PROCFILE, parse_procfile

    argv = parse_procfile(PROCFILE.read_text())[WEB_PROCESS]
    if sum(arg.count(WEB_PORT_FLAG) for arg in argv) != 1:
        raise RuntimeError(f"the Procfile's {WEB_PROCESS} command has no single {WEB_PORT_FLAG!r}: {argv}")
    return [arg.replace(WEB_PORT_FLAG, f"--port {port}") for arg in argv]


def _start_split(args: argparse.Namespace, symbols: list[str], cpus: list[int]) -> _Deployment:
    """The split topology: a throwaway redis-server, `--webs` processes running the Procfile's web command (uvicorn,
    the real ASGI app) with REDIS_URL (RedisBroadcaster: one pattern subscription per process, local fan-out) and a
    publisher process calling `get_broadcaster().publish` as ingest does. Every one of them runs on the server CPUs.
    As in compose, each web process has its own PROMETHEUS_MULTIPROC_DIR (a tmpfs per container there)."""
    redis = _start_redis(cpus, args.nice)
    if redis is None:
        raise RuntimeError("the split topology needs a redis-server binary on PATH")
    tag = f"/tmp/hs-bench-fanout-{os.getpid()}-split"
    env = _server_env(args)
    env.update(REDIS_URL=redis[1], METRICS_BEARER_TOKEN=METRICS_TOKEN, BEHIND_TLS_PROXY="false")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the Procfile runs `uvicorn`
    dep = _Deployment(
        label=f"split: {args.webs} webs + Redis",
        urls=[],
        server_pids={"redis": redis[0].pid},
        side_pids={},
        read_stats=dict,
        procs=[redis[0]],
    )
    try:
        ports = [_free_port() for _ in range(args.webs)]
        for i, port in enumerate(ports):
            log, metrics_dir = Path(f"{tag}-web{i}.log"), Path(f"{tag}-web{i}-prometheus")
            metrics_dir.mkdir()
            dep.files += [log, metrics_dir]
            web_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
            web = _spawn(_web_argv(port), web_env, cpus, args.nice, log)
            dep.procs.append(web)
            dep.server_pids[f"web{i}"] = web.pid
            dep.urls.append(f"ws://127.0.0.1:{port}/ws")
        for i, port in enumerate(ports):
            _wait_until(functools.partial(_port_open, port), dep, f"web{i}")
        stats_path = Path(f"{tag}-publisher.json")
        log = Path(f"{tag}-publisher.log")
        dep.files += [stats_path, log]
        cmd = [sys.executable, __file__, "--serve", "publisher", "--symbols", ",".join(symbols)]
        cmd += ["--rate", str(args.rate), "--stats", str(stats_path), "--publish", args.publish]
        metrics_dir = Path(f"{tag}-publisher-prometheus")
        metrics_dir.mkdir()
        dep.files.append(metrics_dir)
        publisher = _spawn(cmd, {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, cpus, args.nice, log)
        dep.procs.append(publisher)
        dep.side_pids["publisher"] = publisher.pid
        _wait_until(stats_path.exists, dep, "publisher")
    except Exception:
        dep.print_logs()
        dep.stop()
        raise

    def read_stats() -> dict[str, Any]:
        stats = _server_stats(publisher.pid, stats_path)
        hub: collections.Counter[str] = collections.Counter()
        for port in ports:
            hub.update(_scrape_hub(port))
        return {**stats, "hub": dict(hub)}

    dep.read_stats = read_stats
    return dep


def run_mode(
    mode: str, args: argparse.Namespace, symbols: list[str], plans: list[list[str]], redis: Any
) -> dict[str, Any]:
    server_cpus, client_cpus = _cpus() if args.pin else ([], [])
    if mode == "split":
        dep = _start_split(args, symbols, server_cpus)
        if args.route == "first":  # attribution: the others have no socket, so they never subscribe to Redis
            dep.urls = dep.urls[:1]
            dep.label += " (every client on web0)"
        if args.publish == "tick":
            dep.label += " (publisher: one publish_many per tick, as ingest)"
    else:
        dep = _start_single(mode, args, symbols, redis, server_cpus)
    try:
        row = _measure(dep, args, plans, client_cpus)
    except Exception:
        dep.print_logs()
        raise
    finally:
        dep.stop()
    return {"mode": mode, **row}


def _measure(dep: _Deployment, args: argparse.Namespace, plans: list[list[str]], client_cpus: list[int]) -> Any:
    """Connect every client (plan k to server URL k mod n), wait for every ack, measure one window."""
    procs: list[Any] = []
    try:
        ctx = mp.get_context("spawn")
        ready_q, out = ctx.Queue(), ctx.Queue()
        routed = [(dep.urls[k % len(dep.urls)], coins) for k, coins in enumerate(plans)]
        chunks = [routed[i :: args.client_procs] for i in range(args.client_procs)]
        pipes = [ctx.Pipe(duplex=False) for _ in chunks]
        connect_started = time.monotonic()
        for chunk, (recv_end, _send_end) in zip(chunks, pipes, strict=True):
            p = ctx.Process(target=_client_proc, args=(chunk, client_cpus, args.nice, ready_q, recv_end, out))
            p.start()
            procs.append(p)
        ready = [ready_q.get(timeout=180) for _ in procs]
        connect_s = time.monotonic() - connect_started
        acks = [a for r in ready for a in r["acks_ms"]]
        time.sleep(args.warmup)
        dep.check_alive()
        start = time.time() + 1.0  # every client process knows the window before a frame stamped inside it
        for _, send_end in pipes:
            send_end.send((start, start + args.seconds))
        time.sleep(max(0.0, start - time.time()))
        stats0 = dep.read_stats()
        pids = {**dep.server_pids, **dep.side_pids}
        cpu0 = {name: _cpu_times(pid) for name, pid in pids.items()}
        time.sleep(max(0.0, start + args.seconds - time.time()))
        cpu1 = {name: _cpu_times(pid) for name, pid in pids.items()}
        stats1 = dep.read_stats()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    end = start + args.seconds
    ticks = sum(1 for t in stats1["ticks"] if start <= t < end)
    latencies = [x for r in results for x in r["latencies"]]
    frames = sum(r["frames"] for r in results)
    expected = sum(len(p) for p in plans) * ticks
    user_sys = {name: (cpu1[name][0] - cpu0[name][0], cpu1[name][1] - cpu0[name][1]) for name in cpu0}
    cpu_by = {name: u + s for name, (u, s) in user_sys.items()}
    cpu = sum(cpu_by[name] for name in dep.server_pids)  # Redis work done for this mode is server work too
    sys_cpu = sum(user_sys[name][1] for name in dep.server_pids)
    side_cpu = sum(cpu_by[name] for name in dep.side_pids)
    hub0, hub1 = stats0.get("hub", {}), stats1.get("hub", {})
    hub = {k: hub1[k] - hub0.get(k, 0) for k in hub1}
    offered = hub.get("offered", 0)
    fanout_s = stats1["fanout_s"] - stats0["fanout_s"]
    encode_s = stats1["encode_s"] - stats0["encode_s"]
    return {
        "label": dep.label,
        "server_processes": len(dep.server_pids),
        "clients": len(plans),
        "subscriptions": sum(len(p) for p in plans),
        "ticks_in_window": ticks,
        "ticks_nominal": round(args.rate * args.seconds),
        "errors": sum(r["errors"] for r in results),
        "refused_subscriptions": sum(r["unsubscribed"] for r in results),
        "connect_s": connect_s,
        "subscribe_ack_ms_p50": _pct(acks, 50),
        "subscribe_ack_ms_p99": _pct(acks, 99),
        "subscribe_ack_ms_max": max(acks) if acks else float("nan"),
        "delivered": frames,
        "expected": expected,
        "delivered_ratio": frames / expected if expected else 0.0,
        "server_cpu_pct": 100 * cpu / args.seconds,
        "cpu_pct_by_process": {name: 100 * s / args.seconds for name, s in cpu_by.items()},
        "side_cpu_pct": 100 * side_cpu / args.seconds,
        "client_cpu_pct": 100 * sum(r["cpu_s"] for r in results) / args.seconds,
        "client_cpu_us_per_frame": 1e6 * sum(r["cpu_s"] for r in results) / frames if frames else float("inf"),
        "redis_cpu_pct": 100 * cpu_by.get("redis", 0.0) / args.seconds,
        "cpu_us_per_frame": 1e6 * cpu / frames if frames else float("inf"),
        "sys_cpu_us_per_frame": 1e6 * sys_cpu / frames if frames else float("inf"),
        "cpu_us_per_frame_with_side": 1e6 * (cpu + side_cpu) / frames if frames else float("inf"),
        "fanout_loop_us_per_send": 1e6 * fanout_s / offered if offered else float("nan"),
        "encode_us_per_frame": 1e6 * encode_s / frames if frames else float("nan"),
        "hub": hub,
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
    }


P99_GOAL_MS = 100.0
CPU_RATIO_GOAL = 1.5  # gateway CPU per frame ≤ this × plain websockets.broadcast's
CHANNELS_RATIO_GOAL = 5.0  # stock Channels CPU per frame ≥ this × the gateway's
DELIVERED_GOAL = 0.999  # a p99 over frames that never arrived would mean nothing


def _goals(rows: list[dict[str, Any]], modes: list[str]) -> list[tuple[str, bool]]:
    """(statement, met) for every goal of `modes` (gateway, split) these rows can decide."""
    by = {r["mode"]: r for r in rows}
    plain, channels = by.get("websockets"), by.get("channels")
    goals = []
    for mode in modes:
        row = by.get(mode)
        if row is None:
            continue
        label, p99, delivered = row["label"], row["p99_ms"], row["delivered_ratio"]
        goals.append((f"{label}: p99 {p99:.1f} ms ≤ {P99_GOAL_MS:g} ms", p99 <= P99_GOAL_MS))
        goals.append(
            (
                f"{label}: delivered {100 * delivered:.2f} % ≥ {100 * DELIVERED_GOAL:g} %",
                delivered >= DELIVERED_GOAL,
            )
        )
        if plain is not None:
            ratio = row["cpu_us_per_frame"] / plain["cpu_us_per_frame"]
            goals.append(
                (f"CPU per frame {label} / websockets = {ratio:.2f}× ≤ {CPU_RATIO_GOAL:g}×", ratio <= CPU_RATIO_GOAL)
            )
        if channels is not None and mode == "gateway":
            ratio = channels["cpu_us_per_frame"] / row["cpu_us_per_frame"]
            goals.append(
                (
                    f"CPU per frame channels / {label} = {ratio:.1f}× ≥ {CHANNELS_RATIO_GOAL:g}×",
                    ratio >= CHANNELS_RATIO_GOAL,
                )
            )
    return goals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--symbols", default="24", help="how many symbols")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per symbol per second (one per key)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=2.0, help="after every subscription is acked")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--modes", default="gateway,websockets,channels")
    parser.add_argument("--webs", type=int, default=2, help="web processes of the split mode")
    parser.add_argument(
        "--route",
        choices=("spread", "first"),
        default="spread",
        help="split mode: clients alternate between the web processes (spread) or all connect to the first one "
        "(first: isolates what spreading the same sockets over processes costs)",
    )
    parser.add_argument(
        "--goals-for",
        default="gateway,split",
        help="modes whose goals decide the exit status (1 when one is missed)",
    )
    parser.add_argument(
        "--publish",
        choices=("each", "tick"),
        default="tick",
        help="split mode's publisher: tick = what ingest does, a flush's frames in one get_broadcaster().publish_many "
        "(one Redis pipeline); each = one awaited publish per frame (what ingest did before)",
    )
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn websocket implementation")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server / clients to CPUs")
    parser.add_argument("--nice", type=int, default=-10, help="priority of server and clients (root only; 0: none)")
    parser.add_argument(
        "--layer",
        choices=("redis", "memory"),
        default="memory",
        help="memory: the one-process in-memory broadcaster (and channel layer); redis: a throwaway redis-server "
        "carries gateway frames (RedisBroadcaster) and the channels baseline (kernel.channel_layer over Redis pub/sub, "
        "the production layer) — the publisher still runs inside the server process, so its Redis round trips share "
        "the fan-out loop (in production ingest is another process, as in the split mode)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)

    if args.serve:
        symbols = args.symbols.split(",")
        runners = {
            "gateway": serve_gateway,
            "websockets": serve_websockets,
            "channels": serve_channels,
            "publisher": serve_publisher,
        }
        asyncio.run(runners[args.serve](args, symbols))
        return

    rng = random.Random(42)
    symbols = [f"S{i:02d}" for i in range(int(args.symbols))]
    plans = [rng.sample(symbols, rng.randint(1, 3)) for _ in range(args.clients)]
    per_client = sum(len(p) for p in plans) / len(plans) * args.rate
    server_cpus, client_cpus = _cpus() if args.pin else ([], [])
    modes = args.modes.split(",")
    topology = f"layer={args.layer}"
    if "split" in modes:
        topology += f"; split = {args.webs} uvicorn web processes + redis-server + publisher process"
    print(
        f"fan-out bench: {args.clients} clients × ~{per_client:.1f} frames/s ({args.symbols} symbols, one frame per "
        f"symbol every {1000 / args.rate:g} ms), {args.seconds:g}s window, {args.client_procs} client processes; "
        f"{os.cpu_count()} CPUs, server side on {server_cpus or 'any'}, clients on {client_cpus or 'any'}; "
        f"uvicorn ws={args.ws}; {topology}; nice={args.nice}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    redis = _start_redis() if args.layer == "redis" else None
    if args.layer == "redis" and redis is None:
        print("no redis-server on PATH: falling back to --layer memory", flush=True)
    rows = []
    try:
        for mode in modes:
            rows.append(run_mode(mode, args, symbols, plans, redis))
            _print_mode(rows[-1])
    finally:
        if redis is not None:
            redis[0].terminate()
            redis[0].wait(10)
    _print_table(rows)
    _print_ratios(rows)
    goals = _goals(rows, args.goals_for.split(","))
    for statement, met in goals:
        print(f"goal: {statement}: {'met' if met else 'MISSED'}")
    if args.json:
        print(json.dumps(rows))
    if not all(met for _, met in goals):
        sys.exit(1)


def _print_mode(row: dict[str, Any]) -> None:
    hub = " ".join(f"{k}={v}" for k, v in row["hub"].items() if v) or "-"
    by_process = ", ".join(f"{name} {pct:.1f} %" for name, pct in row["cpu_pct_by_process"].items())
    print(
        f"  {row['label']}: connect+subscribe {row['connect_s']:.1f}s (ack p50 {row['subscribe_ack_ms_p50']:.0f} "
        f"p99 {row['subscribe_ack_ms_p99']:.0f} max {row['subscribe_ack_ms_max']:.0f} ms), errors {row['errors']}, "
        f"ticks published {row['ticks_in_window']}/{row['ticks_nominal']}, publish loop "
        f"{row['fanout_loop_us_per_send']:.1f} µs per offered frame (wall), envelope encoding "
        f"{row['encode_us_per_frame']:.2f} µs CPU per delivered frame, CPU by process: {by_process}, "
        f"clients' CPU {row['client_cpu_pct']:.0f} % ({row['client_cpu_us_per_frame']:.1f} µs/frame), "
        f"counters: {hub}",
        flush=True,
    )
    if row["side_cpu_pct"]:
        print(
            f"    with the publisher process (ingest's share, not server CPU): "
            f"{row['cpu_us_per_frame_with_side']:.1f} µs per delivered frame",
            flush=True,
        )


def _print_ratios(rows: list[dict[str, Any]]) -> None:
    """The ratios behind the goals, and the stricter one for the split topology: the baseline's CPU includes its
    in-process publisher (envelope encoding), the split figure does not include its publisher process."""
    by = {r["mode"]: r for r in rows}
    plain = by.get("websockets")
    if plain is None:
        return
    for r in rows:
        if r["mode"] in ("gateway", "split"):
            print(f"CPU per frame {r['label']} / websockets: {r['cpu_us_per_frame'] / plain['cpu_us_per_frame']:.2f}×")
        if r["side_cpu_pct"]:
            ratio = r["cpu_us_per_frame_with_side"] / plain["cpu_us_per_frame"]
            print(f"  incl. its publisher process (as the baseline includes its own): {ratio:.2f}× (not a goal)")
    if "split" in by and "gateway" in by:
        ratio = by["split"]["cpu_us_per_frame"] / by["gateway"]["cpu_us_per_frame"]
        print(f"CPU per frame split / one-process gateway: {ratio:.2f}×")


def _print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(
        "| mode | delivered / expected | ticks published / nominal | server CPU (incl. Redis) "
        "| CPU µs / delivered frame (kernel) | p50 / p95 / p99 / max ms |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label']} | {r['delivered']}/{r['expected']} ({100 * r['delivered_ratio']:.1f} %) | "
            f"{r['ticks_in_window']}/{r['ticks_nominal']} | {r['server_cpu_pct']:.0f} % | "
            f"{r['cpu_us_per_frame']:.1f} ({r['sys_cpu_us_per_frame']:.1f}) | "
            f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.0f} |"
        )


if __name__ == "__main__":
    main()
