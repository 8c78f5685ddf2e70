"""Benchmark: ingest CPU at 1,500 venue messages/s through the real normalise → features → hot state → publish path.

Run: python bench/bench_ingest.py [--rate 1500] [--seconds 10] [--symbols 80] [--universe 180] [--hot memory|redis]

The mix follows the venue's cadences (Hyperliquid; docs/markets.md): for each subscribed symbol an l2Book
(20 levels per side, a full snapshot) `--book-hz` (2) times a second and an activeAssetCtx `--ctx-hz` (1) times
a second; allMids once per block (`--mids-hz` 10, the universe's perps plus `--spot` spot entries); the rest of
the rate is trades frames in bursts (1–3 trades mostly, up to 40), over the symbols by a Zipf law (BTC busiest).
Frames are generated up front with timestamps on the wall clock and fed at `--rate` frames/s in 10 ms slices on
the event loop into `Ingestor.handle_raw`; the real flush runs every AGGREGATOR_PUBLISH_INTERVAL_MS, writing
snapshots to the hot state and publishing one encoded envelope per live symbol through the real broadcaster
(kernel.realtime LocalBroadcaster, no sockets attached: fan-out is the gateway's benchmark).

CPU is the CPU time of the event-loop thread (time.thread_time, so other load on the machine does not count)
over wall time, as a fraction of one core; it includes the pacing loop itself. "ingest path" is the CPU time
spent inside handle_raw + flush only. Baseline: bare orjson.loads of the same frames, paced the same way, in the
same run, with the ratio. Pass: ingest CPU <= 15 % of one core at 1,500 msg/s.
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


def _book(rng: random.Random, coin: str, mid: float, t: int) -> dict:
    tick = mid * 0.0001
    sides = [
        [
            {"px": f"{mid + sign * tick * (i + 1):.6g}", "sz": f"{rng.uniform(0.1, 50):.4f}", "n": rng.randint(1, 9)}
            for i in range(20)
        ]
        for sign in (-1, 1)
    ]
    return {"channel": "l2Book", "data": {"coin": coin, "time": t, "levels": sides}}


def _ctx(coin: str, mid: float) -> dict:
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
    return {"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": ctx}}


def _trades(rng: random.Random, coin: str, mid: float, t: int, tid: int) -> dict:
    r = rng.random()
    n = rng.randint(1, 3) if r < 0.85 else rng.randint(4, 10) if r < 0.98 else rng.randint(11, 40)
    trades = [
        {
            "coin": coin,
            "side": rng.choice("BA"),
            "px": f"{mid * (1 + rng.gauss(0, 0.0001)):.5g}",
            "sz": f"{rng.uniform(0.01, 5):.4f}",
            "time": t,
            "hash": "0x" + "0" * 64,
            "tid": tid + k,
            "users": ["0x" + "a" * 40, "0x" + "b" * 40],
        }
        for k in range(n)
    ]
    return {"channel": "trades", "data": trades}


def make_frames(
    *,
    seconds: float,
    rate: int,
    symbols: int,
    universe: int,
    spot: int = 250,
    book_hz: float = 2.0,
    ctx_hz: float = 1.0,
    mids_hz: float = 10.0,
    seed: int = 1,
) -> tuple[list[bytes], list[str], dict[str, int]]:
    """Frames for `seconds` at `rate`/s in the venue's mix; returns (frames, universe coins, frames per channel)."""
    rng = random.Random(seed)
    coins = [f"C{i}" for i in range(max(universe, symbols))]
    coins[0], coins[1] = "BTC", "kPEPE"
    live = coins[:symbols]
    mids = {c: 10.0 + i * 3.7 for i, c in enumerate(coins)}
    spot_mids = {f"@{i}": f"{1 + i * 0.01:.4f}" for i in range(spot)}
    per_sec = {"l2Book": symbols * book_hz, "activeAssetCtx": symbols * ctx_hz, "allMids": mids_hz}
    per_sec["trades"] = rate - sum(per_sec.values())
    if per_sec["trades"] <= 0:
        sys.exit(f"--rate {rate} is below the book/ctx/allMids cadence of {symbols} symbols")
    zipf = [1.0 / (k + 1) for k in range(symbols)]
    kinds = [k for k, n in per_sec.items() for _ in range(round(n))]
    t0 = int(time.time() * 1000)
    frames: list[bytes] = []
    counts: dict[str, int] = dict.fromkeys(per_sec, 0)
    book_i = ctx_i = 0
    for sec in range(math.ceil(seconds)):
        rng.shuffle(kinds)
        for j, kind in enumerate(kinds):
            t = t0 + sec * 1000 + j * 1000 // len(kinds)
            if kind == "trades":
                coin = rng.choices(live, weights=zipf)[0]
            elif kind == "l2Book":
                coin, book_i = live[book_i % symbols], book_i + 1
            elif kind == "activeAssetCtx":
                coin, ctx_i = live[ctx_i % symbols], ctx_i + 1
            else:
                coin = ""
            if coin:
                mids[coin] *= math.exp(rng.gauss(0, 0.0001))
            if kind == "trades":
                frame = _trades(rng, coin, mids[coin], t, len(frames) * 64)
            elif kind == "l2Book":
                frame = _book(rng, coin, mids[coin], t)
            elif kind == "activeAssetCtx":
                frame = _ctx(coin, mids[coin])
            else:
                frame = {
                    "channel": "allMids",
                    "data": {"mids": {**{c: f"{v:.6g}" for c, v in mids.items()}, **spot_mids}},
                }
            counts[kind] += 1
            frames.append(orjson.dumps(frame))
    return frames, coins, counts


async def paced(frames: list[bytes], *, rate: int, seconds: float, handle, flush=None, flush_every: float = 0.2):
    """Feed frames at `rate`/s for `seconds` in 10 ms slices.

    Returns (loop-thread CPU s, CPU s inside handle/flush, process CPU s, wall s, frames fed).
    """
    slice_sec = 0.01
    per_slice = max(1, int(rate * slice_sec))
    i, fed, work = 0, 0, 0.0
    cpu0, proc0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
    next_flush = wall0 + flush_every
    deadline = wall0 + seconds
    next_slice = wall0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        w0 = time.thread_time()
        for _ in range(per_slice):
            handle(frames[i])
            i = (i + 1) % len(frames)
            fed += 1
        if flush is not None and now >= next_flush:
            next_flush += flush_every
            await flush()
        work += time.thread_time() - w0
        next_slice += slice_sec
        await asyncio.sleep(max(0.0, next_slice - time.perf_counter()))
    return time.thread_time() - cpu0, work, time.process_time() - proc0, time.perf_counter() - wall0, fed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--symbols", type=int, default=80, help="subscribed (live, published) symbols")
    parser.add_argument("--universe", type=int, default=180, help="perps listed (in allMids and the hot state)")
    parser.add_argument("--spot", type=int, default=250, help="spot entries in allMids (ignored by ingest)")
    parser.add_argument("--book-hz", type=float, default=2.0)
    parser.add_argument("--ctx-hz", type=float, default=1.0)
    parser.add_argument("--mids-hz", type=float, default=10.0)
    parser.add_argument("--hot", choices=["memory", "redis"], default="memory")
    args = parser.parse_args()

    from django.conf import settings

    from kernel.realtime import LocalBroadcaster
    from kernel.runtime import tune_gc
    from markets.symbol_state import SymbolState

    tune_gc()  # as every long-running entry point does (kernel/runtime.py)
    warm_sec = 1.0
    frames, coins, counts = make_frames(
        seconds=args.seconds + warm_sec + 1,
        rate=args.rate,
        symbols=args.symbols,
        universe=args.universe,
        spot=args.spot,
        book_hz=args.book_hz,
        ctx_hz=args.ctx_hz,
        mids_hz=args.mids_hz,
    )
    if args.hot == "redis":
        if not settings.REDIS_URL:
            sys.exit("--hot redis needs REDIS_URL")
        hot = RedisHotState(settings.REDIS_URL)
    else:
        hot = MemoryHotState()
    ingestor = Ingestor(
        config=IngestConfig.from_settings(venue_url="http://127.0.0.1:9", backfill_candles=False),
        hot_state=hot,
        publisher=LocalBroadcaster(),
    )
    for coin in coins:
        sym = ingestor.symbols.add(coin)
        ingestor.states[sym] = SymbolState(symbol=sym, coin=coin, sigma=ingestor.config.sigma)
    live = {ingestor.symbols.symbol(c) for c in coins[: args.symbols]}
    ingestor.subscribed = set(live)  # type: ignore[arg-type]
    ingestor.live = set(live)  # type: ignore[arg-type]
    ingestor.health.state = "connected"
    interval = ingestor.config.publish_interval_ms / 1000.0

    # Warm-up: the first second of frames (metric children, guards, candle series and caches settle).
    warm = int(args.rate * warm_sec)
    for f in frames[:warm]:
        ingestor.handle_raw(f)
    await ingestor.flush()
    feed = frames[warm:]

    cpu, work, proc, wall, n = await paced(
        feed,
        rate=args.rate,
        seconds=args.seconds,
        handle=ingestor.handle_raw,
        flush=ingestor.flush,
        flush_every=interval,
    )
    base_cpu, _, _, base_wall, base_n = await paced(feed, rate=args.rate, seconds=args.seconds, handle=orjson.loads)
    rejected = sum(ingestor.rejections.values())
    frac, work_frac, proc_frac, base_frac = cpu / wall, work / wall, proc / wall, base_cpu / base_wall
    mix = ", ".join(f"{k} {v / (args.seconds + warm_sec + 1):.0f}/s" for k, v in counts.items())
    print(f"hot state: {args.hot}; live symbols: {args.symbols}; universe: {args.universe}; ", end="")
    print(f"publish every {interval * 1e3:.0f} ms")
    print(f"mix: {mix}")
    print(f"frames fed: {n} in {wall:.2f}s = {n / wall:.0f} msg/s (rejected {rejected})")
    print(f"ingest CPU (event-loop thread): {frac * 100:.2f}% of one core ", end="")
    print(f"({cpu / n * 1e6:.1f} us/msg incl. flush + publish)")
    print(f"  of which handle_raw + flush: {work_frac * 100:.2f}% ({work / n * 1e6:.1f} us/msg); ", end="")
    print(f"process: {proc_frac * 100:.2f}%")
    print(f"baseline (orjson.loads only, same pacing): {base_frac * 100:.2f}% of one core ", end="")
    print(f"({base_cpu / base_n * 1e6:.1f} us/msg)")
    print(f"ratio ingest/baseline: {frac / base_frac if base_frac else float('inf'):.1f}x")
    ok = frac <= 0.15 and n / wall >= args.rate * 0.95
    print("PASS" if ok else "FAIL", f"(budget 15% of one core at {args.rate} msg/s)")
    if isinstance(hot, RedisHotState):
        await hot.aclose()
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
