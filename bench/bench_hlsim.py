"""Benchmark: simulator CPU while pushing 50 symbols x ~2 books/s + trades to 50 WS connections.

Run: python bench/bench_hlsim.py [--seconds 10] [--symbols 50] [--conns 50]
The simulator runs in this process (CPU measured with time.process_time); WS clients run in a separate process.
A baseline in the same run: a plain `websockets` server that only calls `websockets.broadcast` with the same
number of pre-serialised frames, so the figure is also given as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import websockets

from hlsim.info import l2_book_wire
from hlsim.server import SimConfig, Simulator


def _client_proc(url: str, conns: int, subs: list[dict], seconds: float, out: mp.Queue) -> None:
    async def one(counts: list[int], idx: int) -> None:
        async with websockets.connect(url, max_queue=None, compression=None) as ws:
            for sub in subs:
                await ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
            end = time.monotonic() + seconds + 2
            while time.monotonic() < end:
                try:
                    await asyncio.wait_for(ws.recv(), 1)
                    counts[idx] += 1
                except TimeoutError:
                    continue
                except websockets.ConnectionClosed:
                    return

    async def main() -> None:
        counts = [0] * conns
        await asyncio.gather(*(one(counts, i) for i in range(conns)), return_exceptions=True)
        out.put(sum(counts))

    asyncio.run(main())


async def bench_sim(*, seconds: float, n_symbols: int, conns: int) -> dict:
    sim = Simulator(SimConfig(port=0, seed=1, n_symbols=n_symbols, rate_limits=False, backfill_minutes=60))
    await sim.start()
    coins = list(sim.venue.specs)
    subs = [{"type": kind, "coin": c} for c in coins for kind in ("l2Book", "trades")]
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_client_proc, args=(sim.ws_url, conns, subs, seconds, q))
    proc.start()
    await asyncio.sleep(3.0)  # connect + subscribe
    frames0, ticks0 = sim.hub.frames_sent, sim.market.tick
    books0 = sum(s.book.seq for s in sim.market.state.values())
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    frames = sim.hub.frames_sent - frames0
    books = sum(s.book.seq for s in sim.market.state.values()) - books0
    sample = json.dumps({"channel": "l2Book", "data": l2_book_wire(sim.venue, coins[0])})
    await asyncio.to_thread(proc.join, seconds + 15)
    received = q.get(timeout=5) if not q.empty() else -1
    await sim.stop()
    return {
        "cpu_fraction": cpu / wall,
        "frames_per_s": frames / wall,
        "book_updates_per_s": books / wall,
        "ticks_per_s": (sim.market.tick - ticks0) / wall,
        "cpu_us_per_frame": 1e6 * cpu / max(frames, 1),
        "received": received,
        "sample": sample,
    }


async def bench_baseline(*, seconds: float, conns: int, frames_per_s: float, sample: str) -> dict:
    """Plain websockets server broadcasting the same frame rate of pre-serialised text."""
    clients: set = set()

    async def handler(ws: websockets.ServerConnection) -> None:
        clients.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)

    async with websockets.serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_client_proc, args=(f"ws://127.0.0.1:{port}", conns, [], seconds, q))
        proc.start()
        await asyncio.sleep(3.0)
        per_round = max(1, round(frames_per_s / max(len(clients), 1) / 10))  # 10 rounds per second
        sent = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        while time.monotonic() - wall0 < seconds:
            for _ in range(per_round):
                websockets.broadcast(clients, sample)
                sent += len(clients)
            await asyncio.sleep(0.1)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        await asyncio.to_thread(proc.join, seconds + 15)
    return {"cpu_fraction": cpu / wall, "frames_per_s": sent / wall, "cpu_us_per_frame": 1e6 * cpu / max(sent, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--conns", type=int, default=50)
    args = parser.parse_args()
    sim = asyncio.run(bench_sim(seconds=args.seconds, n_symbols=args.symbols, conns=args.conns))
    base = asyncio.run(
        bench_baseline(seconds=args.seconds, conns=args.conns, frames_per_s=sim["frames_per_s"], sample=sim["sample"])
    )
    print(f"hlsim: {args.symbols} symbols, {args.conns} WS connections, l2Book+trades for every symbol")
    print(f"  market ticks/s            {sim['ticks_per_s']:.1f}")
    print(f"  book updates/s            {sim['book_updates_per_s']:.1f}")
    print(f"  frames sent/s             {sim['frames_per_s']:.0f}  (client received {sim['received']})")
    print(f"  simulator CPU             {100 * sim['cpu_fraction']:.1f}% of one core")
    print(f"  CPU per frame             {sim['cpu_us_per_frame']:.1f} us")
    print(f"baseline websockets.broadcast of the same frame rate ({base['frames_per_s']:.0f}/s):")
    print(f"  CPU                       {100 * base['cpu_fraction']:.1f}% of one core")
    print(f"  CPU per frame             {base['cpu_us_per_frame']:.1f} us")
    print(f"ratio hlsim/baseline CPU per frame: {sim['cpu_us_per_frame'] / max(base['cpu_us_per_frame'], 1e-9):.2f}")
    print(f"target (< 50% of a core): {'PASS' if sim['cpu_fraction'] < 0.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
