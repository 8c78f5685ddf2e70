"""Benchmark: ingest CPU at 1,500 venue messages/s through the real normalise → features → hot state → publish path.

Run: python bench/bench_ingest.py [--rate 1500] [--seconds 10] [--symbols 80] [--hot memory|redis]

Venue frames are generated up front (Hyperliquid shapes: l2Book with 20 levels per side, trades batches,
activeAssetCtx, allMids) with a mix close to the venue's: ~70% trades, ~20% books, ~9% contexts, ~1% allMids.
They are fed at `--rate` frames/s, paced on the event loop, into `Ingestor.handle_raw`; the real flush loop runs
every AGGREGATOR_PUBLISH_INTERVAL_MS, writing snapshots to the hot state and publishing one encoded envelope per
live symbol through the real broadcaster (markets.realtime LocalBroadcaster, no sockets attached: fan-out is the
gateway's benchmark). CPU = time.process_time() over wall time (fraction of one core).
Baseline: bare orjson.loads of the same frames at the same rate, reported as a ratio.
Pass: ingest CPU <= 15% of one core at 1,500 msg/s.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")

import django

django.setup()

import orjson  # noqa: E402

from markets.hotstate import MemoryHotState, RedisHotState  # noqa: E402
from markets.ingest import IngestConfig, Ingestor  # noqa: E402


def make_frames(*, n: int, symbols: int, seed: int = 1) -> tuple[list[bytes], list[str]]:
    rng = random.Random(seed)
    coins = [f"C{i}" for i in range(symbols)]
    coins[0], coins[1] = "BTC", "kPEPE"
    mids = {c: 10.0 + i * 3.7 for i, c in enumerate(coins)}
    t = 1_700_000_000_000
    frames = []
    for k in range(n):
        t += 1
        coin = coins[rng.randrange(symbols)]
        mids[coin] *= math.exp(rng.gauss(0, 0.0001))
        mid = mids[coin]
        r = rng.random()
        if r < 0.70:
            trades = [
                {
                    "coin": coin,
                    "side": rng.choice("BA"),
                    "px": f"{mid * (1 + rng.gauss(0, 0.0001)):.5g}",
                    "sz": f"{rng.uniform(0.01, 5):.4f}",
                    "time": t,
                    "hash": "0x" + "0" * 64,
                    "tid": k,
                    "users": ["0x" + "a" * 40, "0x" + "b" * 40],
                }
                for _ in range(rng.randint(1, 3))
            ]
            frame = {"channel": "trades", "data": trades}
        elif r < 0.90:
            tick = mid * 0.0001
            bids = [
                {"px": f"{mid - tick * (i + 1):.6g}", "sz": f"{rng.uniform(0.1, 50):.4f}", "n": rng.randint(1, 9)}
                for i in range(20)
            ]
            asks = [
                {"px": f"{mid + tick * (i + 1):.6g}", "sz": f"{rng.uniform(0.1, 50):.4f}", "n": rng.randint(1, 9)}
                for i in range(20)
            ]
            frame = {"channel": "l2Book", "data": {"coin": coin, "time": t, "levels": [bids, asks]}}
        elif r < 0.99:
            ctx = {
                "funding": "0.0000125",
                "openInterest": "4521.2",
                "oraclePx": f"{mid:.6g}",
                "markPx": f"{mid:.6g}",
                "midPx": f"{mid:.6g}",
                "dayNtlVlm": "912345678.9",
                "prevDayPx": f"{mid * 0.98:.6g}",
                "premium": "-0.0001",
                "impactPxs": [f"{mid:.6g}", f"{mid:.6g}"],
                "dayBaseVlm": "305112.4",
            }
            frame = {"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": ctx}}
        else:
            frame = {"channel": "allMids", "data": {"mids": {c: f"{v:.6g}" for c, v in mids.items()}}}
        frames.append(orjson.dumps(frame))
    return frames, coins


async def paced(frames: list[bytes], *, rate: int, seconds: float, handle, flush=None, flush_every: float = 0.2):
    """Feed frames at `rate`/s for `seconds` in 10 ms slices; returns (cpu seconds, wall seconds, frames fed)."""
    slice_sec = 0.01
    per_slice = max(1, int(rate * slice_sec))
    i, fed = 0, 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    next_flush = wall0 + flush_every
    deadline = wall0 + seconds
    next_slice = wall0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        for _ in range(per_slice):
            handle(frames[i])
            i = (i + 1) % len(frames)
            fed += 1
        if flush is not None and now >= next_flush:
            next_flush += flush_every
            await flush()
        next_slice += slice_sec
        await asyncio.sleep(max(0.0, next_slice - time.perf_counter()))
    return time.process_time() - cpu0, time.perf_counter() - wall0, fed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--symbols", type=int, default=80)
    parser.add_argument("--hot", choices=["memory", "redis"], default="memory")
    args = parser.parse_args()

    frames, coins = make_frames(n=max(args.rate * 5, 10_000), symbols=args.symbols)
    from django.conf import settings

    if args.hot == "redis":
        if not settings.REDIS_URL:
            sys.exit("--hot redis needs REDIS_URL")
        hot = RedisHotState(settings.REDIS_URL)
    else:
        hot = MemoryHotState()
    from markets.realtime import LocalBroadcaster

    publisher = LocalBroadcaster()
    ingestor = Ingestor(
        config=IngestConfig.from_settings(venue_url="http://127.0.0.1:9", backfill_candles=False),
        hot_state=hot,
        publisher=publisher,
    )
    for coin in coins:
        sym = ingestor.symbols.add(coin)
        from markets.symbol_state import SymbolState

        ingestor.states[sym] = SymbolState(symbol=sym, coin=coin, sigma=ingestor.config.sigma)
    ingestor.subscribed = set(ingestor.states)
    ingestor.live = set(ingestor.states)
    ingestor.health.state = "connected"
    interval = ingestor.config.publish_interval_ms / 1000.0

    # warm up (JIT-free Python, but caches, metric children and guards settle)
    for f in frames[:2000]:
        ingestor.handle_raw(f)
    await ingestor.flush()

    base_cpu, base_wall, base_n = await paced(frames, rate=args.rate, seconds=args.seconds, handle=orjson.loads)
    cpu, wall, n = await paced(
        frames,
        rate=args.rate,
        seconds=args.seconds,
        handle=ingestor.handle_raw,
        flush=ingestor.flush,
        flush_every=interval,
    )
    published = sum(v for v in ingestor.messages.values())
    rejected = sum(ingestor.rejections.values())
    frac = cpu / wall
    base_frac = base_cpu / base_wall
    print(f"hot state: {args.hot}; symbols: {args.symbols}; publish interval: {interval * 1000:.0f} ms")
    print(f"frames fed: {n} in {wall:.2f}s = {n / wall:.0f} msg/s (rejected {rejected}, counted {published})")
    print(f"ingest CPU: {frac * 100:.2f}% of one core ({cpu / n * 1e6:.1f} us/msg incl. flush + publish)")
    print(f"baseline (orjson.loads only): {base_frac * 100:.2f}% of one core ({base_cpu / base_n * 1e6:.1f} us/msg)")
    print(f"ratio ingest/baseline: {frac / base_frac if base_frac else float('inf'):.1f}x")
    ok = frac <= 0.15 and n / wall >= args.rate * 0.95
    print("PASS" if ok else "FAIL", f"(budget 15% of one core at {args.rate} msg/s)")
    if isinstance(hot, RedisHotState):
        await hot.aclose()
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
