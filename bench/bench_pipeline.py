"""The real alpha pipeline round at 80 symbols × 5 Hz: history update + analyze + encode + publish (memory
broadcaster) + gov_update + store (in-memory cache), CPU time measured with thread_time.

    .venv/bin/python bench/bench_pipeline.py [--symbols 80] [--seconds 10] [--warm-minutes 10]

Snapshots come from hlsim's deterministic MarketEngine (80 symbols: 23 perps + synthetic SYN coins), one per
symbol per 200 ms of simulated time. Baseline in the same run: `SymbolSnapshot.as_dict()` + `orjson.dumps` of
each snapshot (what any consumer of the hot state pays just to copy and encode it once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402

from alpha import metrics  # noqa: E402
from alpha.pipeline import AlphaPipeline, PipelineConfig, Runtime  # noqa: E402
from hlsim.market import MarketEngine  # noqa: E402
from hlsim.universe import DEFAULT_COINS  # noqa: E402
from markets.hotstate import MemoryHotState  # noqa: E402
from tests.alpha.simfeed import MemoryBroadcaster, SimFeed  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def feed_for(n: int) -> SimFeed:
    feed = SimFeed(seed=42)
    if n > len(DEFAULT_COINS):
        from hlsim.universe import resolve_universe

        feed.market = MarketEngine(seed=42, coins=resolve_universe(n_symbols=n))
    feed.coins = tuple(list(feed.market.state)[:n])
    feed._trades = {c: [] for c in feed.coins}
    feed.liquidations = {c: [] for c in feed.coins}
    return feed


async def main(args: argparse.Namespace) -> None:
    feed = feed_for(args.symbols)
    hot, bc = MemoryHotState(), MemoryBroadcaster()
    symbols = tuple(c.upper() for c in feed.coins)
    cfg = PipelineConfig(symbols=symbols, private=False, auto=False, budget_fraction=1e9)
    pipe = AlphaPipeline(config=cfg, hot=hot, broadcaster=bc, runtime=Runtime(), clock=lambda: feed.now_ms / 1000)
    per_symbol: list[float] = []
    orig_score = pipe.score

    def timed_score(*a, **kw):  # type: ignore[no-untyped-def]
        t0 = time.thread_time_ns()
        out = orig_score(*a, **kw)
        per_symbol.append((time.thread_time_ns() - t0) / 1000)
        return out

    pipe.score = timed_score  # type: ignore[method-assign]
    warm_rounds = int(args.warm_minutes * 60 * 5)
    print(f"warming {len(symbols)} symbols with {args.warm_minutes} min of history ({warm_rounds} rounds)...")
    for _ in range(warm_rounds):
        feed.step()
        await hot.put_many(feed.snapshots())
        await pipe.run_once()
        bc.public.clear()
    per_symbol.clear()
    rounds = int(args.seconds * 5)
    round_cpu: list[float] = []
    base_cpu: list[float] = []
    for _ in range(rounds):
        feed.step()
        snaps = feed.snapshots()
        await hot.put_many(snaps)
        t0 = time.thread_time_ns()
        await pipe.run_once()
        round_cpu.append((time.thread_time_ns() - t0) / 1e6)
        t0 = time.thread_time_ns()
        for s in snaps:
            orjson.dumps(s.as_dict())
        base_cpu.append((time.thread_time_ns() - t0) / 1e6)
        bc.public.clear()
    await pipe.flush_store()
    total_ms = sum(round_cpu)
    frac = total_ms / (args.seconds * 1000) * 100
    base_frac = sum(base_cpu) / (args.seconds * 1000) * 100
    print(f"symbols={len(symbols)} rate=5 Hz seconds={args.seconds} rounds={rounds} dropped={pipe.totals.dropped}")
    print(
        f"pipeline round CPU: mean {statistics.mean(round_cpu):.2f} ms, p99 {pct(round_cpu, 0.99):.2f} ms "
        f"→ {frac:.1f} % of one core (budget < 25 %)"
    )
    print(
        f"per-symbol update+analyze+encode CPU: p50 {pct(per_symbol, 0.5):.0f} µs, "
          f"p99 {pct(per_symbol, 0.99):.0f} µs, "
        f"mean {statistics.mean(per_symbol):.0f} µs (n={len(per_symbol)})"
    )
    print(
        f"baseline as_dict+orjson per round: mean {statistics.mean(base_cpu):.2f} ms "
          f"→ {base_frac:.1f} % of one core; "
        f"ratio pipeline/baseline {frac / base_frac:.2f}×"
    )
    print(f"metrics: rounds observed {metrics.ROUND_SECONDS._sum.get():.2f} s total wall")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=80)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warm-minutes", type=float, default=10)
    asyncio.run(main(ap.parse_args()))
