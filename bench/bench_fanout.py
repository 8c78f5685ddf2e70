"""Fan-out benchmark: the /ws gateway against two baselines, same workload, same clients.

    .venv/bin/python bench/bench_fanout.py                   # 1000 clients, ~10 frames/s each, ~2 minutes
    .venv/bin/python bench/bench_fanout.py --clients 200 --seconds 5

Modes (each server is its own process; CPU is read from /proc/<pid>/stat over the measuring window):
  gateway     uvicorn (per-message deflate off) serving hypersentry.asgi:application; frames published through
              markets.realtime.get_broadcaster().publish (the in-memory broadcaster of the one-process topology).
  websockets  plain `websockets` server + websockets.broadcast of the same text: the practical limit.
  channels    uvicorn + stock AsyncWebsocketConsumer, channel_layer.group_send per frame: the naive path.
Clients: asyncio `websockets` clients spread over several processes, each subscribed to 1-3 of the symbols.
Every frame is an envelope whose ts_ms / data.t are stamped at publish; latency = client receive - publish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")

# --- servers (run with `python bench_fanout.py --serve <mode> --port P --symbols S --rate R`) --------------------


def _frame(symbol: str, seq: int) -> str:
    from hypersentry.contracts.envelope import make_envelope

    now = time.time() * 1000
    book = {
        "bids": [[f"{100 - i * 0.1:.1f}", "1.5"] for i in range(10)],
        "asks": [[f"{100 + i * 0.1:.1f}", "2.0"] for i in range(10)],
    }
    data = {"symbol": symbol, "price": "100.0", "book": book, "t": now}
    env = make_envelope(event_type="agg_update", symbol=symbol, ts_ms=int(now), source="bench", seq=seq, data=data)
    return env.encode().decode()


async def _publisher(publish, symbols: list[str], rate: float) -> None:  # type: ignore[no-untyped-def]
    seq = 0
    period = 1.0 / rate
    next_at = time.monotonic()
    while True:
        seq += 1
        for s in symbols:
            await publish(s, _frame(s, seq))
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def _uvicorn(app, port: int):  # type: ignore[no-untyped-def]
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        ws_per_message_deflate=False,
        backlog=4096,
        ws_ping_interval=None,
    )
    return uvicorn.Server(config)


async def serve_gateway(port: int, symbols: list[str], rate: float) -> None:
    import django

    django.setup()
    from hypersentry.asgi import application
    from markets.realtime import get_broadcaster

    broadcaster = get_broadcaster()

    async def publish(symbol: str, text: str) -> None:
        await broadcaster.publish(channel="public.market", symbol=symbol, text=text, event_type="agg_update")

    server = _uvicorn(application, port)
    asyncio.create_task(_publisher(publish, symbols, rate))
    await server.serve()


async def serve_websockets(port: int, symbols: list[str], rate: float) -> None:
    import logging

    import websockets

    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # the orchestrator's port probe is not a handshake
    subs: dict[str, set] = {s: set() for s in symbols}

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
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
        websockets.broadcast(subs[symbol], text)

    async with websockets.serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, backlog=4096):
        await _publisher(publish, symbols, rate)


async def serve_channels(port: int, symbols: list[str], rate: float) -> None:
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

    server = _uvicorn(app, port)
    asyncio.create_task(_publisher(publish, symbols, rate))
    await server.serve()


# --- clients -------------------------------------------------------------------------------------------------------


async def _client_main(url: str, plans: list[list[str]], start_at: float, end_at: float, origin: str) -> dict:
    import websockets

    latencies: list[float] = []
    counts = {"frames": 0, "subs": 0, "errors": 0, "closed": 0}

    async def one(coins: list[str]) -> None:
        try:
            async with websockets.connect(
                url, origin=origin, compression=None, open_timeout=60, ping_interval=None, max_size=2**22
            ) as ws:
                for c in coins:
                    await ws.send(json.dumps({"type": "subscribe", "coin": c, "channels": ["public.market"]}))
                counts["subs"] += len(coins)
                while True:
                    raw = await ws.recv()
                    now = time.time()
                    if now > end_at:
                        return
                    if now < start_at or '"event_type"' not in raw[:30]:
                        continue
                    i = raw.rfind('"t":')  # data.t is the last field: no full JSON parse per frame
                    t = float(raw[i + 4 : raw.index("}", i)])
                    latencies.append(now * 1000 - t)
                    counts["frames"] += 1
        except Exception:
            counts["errors"] += 1

    tasks = []
    for coins in plans:
        tasks.append(asyncio.create_task(one(coins)))
        await asyncio.sleep(0.002)
    await asyncio.wait(tasks, timeout=max(1.0, end_at - time.time() + 5))
    for t in tasks:
        t.cancel()
    return {"latencies": latencies, **counts}


def _client_proc(url: str, plans: list[list[str]], start_at: float, end_at: float, origin: str, out) -> None:  # type: ignore[no-untyped-def]
    out.put(asyncio.run(_client_main(url, plans, start_at, end_at, origin)))


# --- orchestration -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def run_mode(mode: str, args: argparse.Namespace, symbols: list[str], plans: list[list[str]]) -> dict:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="hypersentry.settings",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="warning",
        SQLITE_PATH="/tmp/hs-bench.sqlite3",
        ALLOWED_ORIGINS="http://127.0.0.1:8000",
        WS_SEND_BUFFER="1000",
        WS_SLOW_CLIENT_TIMEOUT_SEC="30",
    )
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            mode,
            "--port",
            str(port),
            "--symbols",
            ",".join(symbols),
            "--rate",
            str(args.rate),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{mode} server did not start") from None
                time.sleep(0.2)
        connect_time = max(8.0, len(plans) * 0.006)
        start_at = time.time() + connect_time + args.warmup
        end_at = start_at + args.seconds
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        chunks = [plans[i :: args.client_procs] for i in range(args.client_procs)]
        procs = [
            ctx.Process(
                target=_client_proc,
                args=(f"ws://127.0.0.1:{port}/ws", c, start_at, end_at, "http://127.0.0.1:8000", out),
            )
            for c in chunks
        ]
        for p in procs:
            p.start()
        time.sleep(max(0.0, start_at - time.time()))
        cpu0 = _cpu_seconds(server.pid)
        time.sleep(max(0.0, end_at - time.time()))
        cpu1 = _cpu_seconds(server.pid)
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
    finally:
        server.terminate()
        server.wait(10)
    latencies = [x for r in results for x in r["latencies"]]
    frames = sum(r["frames"] for r in results)
    expected = sum(len(p) for p in plans) * args.rate * args.seconds
    cpu = cpu1 - cpu0
    return {
        "mode": mode,
        "clients": len(plans),
        "errors": sum(r["errors"] for r in results),
        "delivered": frames,
        "expected": int(expected),
        "delivered_ratio": frames / expected if expected else 0.0,
        "server_cpu_pct": 100 * cpu / args.seconds,
        "cpu_us_per_frame": 1e6 * cpu / frames if frames else float("inf"),
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--symbols", default="24", help="how many symbols")
    parser.add_argument("--rate", type=float, default=5.0, help="publishes per symbol per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--modes", default="gateway,websockets,channels")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()

    if args.serve:
        symbols = args.symbols.split(",")
        runner = {"gateway": serve_gateway, "websockets": serve_websockets, "channels": serve_channels}[args.serve]
        asyncio.run(runner(args.port, symbols, args.rate))
        return

    rng = random.Random(42)
    symbols = [f"S{i:02d}" for i in range(int(args.symbols))]
    plans = [rng.sample(symbols, rng.randint(1, 3)) for _ in range(args.clients)]
    per_client = sum(len(p) for p in plans) / len(plans) * args.rate
    print(
        f"fan-out bench: {args.clients} clients × ~{per_client:.1f} frames/s, {args.symbols} symbols at "
        f"{args.rate:g}/s, {args.seconds:g}s window, {args.client_procs} client processes, {os.cpu_count()} CPUs"
    )
    rows = []
    for mode in args.modes.split(","):
        row = run_mode(mode, args, symbols, plans)
        rows.append(row)
        print(
            f"{mode:<11} delivered {row['delivered']}/{row['expected']} ({100 * row['delivered_ratio']:.1f}%)  "
            f"server CPU {row['server_cpu_pct']:.0f}%  {row['cpu_us_per_frame']:.1f} µs/frame  "
            f"latency p50 {row['p50_ms']:.1f} p95 {row['p95_ms']:.1f} p99 {row['p99_ms']:.1f} ms  "
            f"errors {row['errors']}",
            flush=True,
        )
    by = {r["mode"]: r["cpu_us_per_frame"] for r in rows}
    if "gateway" in by and "websockets" in by:
        print(f"gateway / websockets CPU per frame: {by['gateway'] / by['websockets']:.2f}×")
    if "gateway" in by and "channels" in by:
        print(f"channels / gateway CPU per frame: {by['channels'] / by['gateway']:.2f}×")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
