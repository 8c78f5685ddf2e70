"""The real alpha pipeline round at 80 symbols × 5 Hz: history update + analyze + encode + publish (memory
broadcaster) + gov_update + store (in-memory cache), measured in CPU time (not wall time), so other load on a
shared machine does not inflate it.

    .venv/bin/python bench/bench_pipeline.py [--symbols 80] [--seconds 20] [--warm-minutes 2]
                                             [--history-minutes 30] [--every-snapshot-new] [--profile]
                                             [--default-gc]

The process's GC is tuned at start-up as in production (`kernel.runtime.tune_gc()`, called by `serve` and
the workers); `--default-gc` keeps CPython's defaults instead.

Feed: hlsim's deterministic MarketEngine (seed 42; 23 perps + synthetic SYN coins) at the venue's cadence
(alpha/simfeed.py `venue_cadence=True`): price every 500 ms (allMids), a new book when the venue re-quotes
(~every 500 ms per coin, and after sweeps), OI/funding every 1 s, trades as they happen; each snapshot carries the
latest 20 trades newest first (most already seen) and `updated_at` = the newest stamp, so a symbol with nothing
new is skipped by the round exactly as in production. `--every-snapshot-new` instead stamps every field of every
snapshot "now" (the stress case: every symbol re-scored every round).

Histories are steady-state: each symbol first gets `--history-minutes` of 1 Hz price/OI and 8 h of 1/min funding
(a random walk at the coin's volatility ending at the simulator's price), then `--warm-minutes` of the simulator
folded in with `update()` (the last 10 s through the real round) so the trade, flow and sweep windows (120 s) are
full. Then `--seconds` of rounds are measured.

CPU: `time.thread_time_ns()` around each round (the event loop's thread), plus the process CPU of the whole
measured window (`time.process_time_ns()`, which includes the store write's worker thread) minus this thread's
CPU spent generating the feed and running the baseline. The headline is the latter. Baseline in the same run:
`SymbolSnapshot.as_dict()` + `orjson.dumps` of every snapshot each round (what any consumer of the hot state pays
just to copy and encode it once); ratio = pipeline / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from benchkit import parser, percentile, profiled  # noqa: E402 - next to this script

from alpha.engine import empty_history, update  # noqa: E402
from alpha.pipeline import AlphaPipeline, PipelineConfig, PipelineSymbol, Runtime  # noqa: E402
from alpha.simfeed import BASE_MS, MemoryBroadcaster, SimFeed  # noqa: E402
from hlsim.market import MarketEngine  # noqa: E402
from hlsim.universe import resolve_universe  # noqa: E402
from markets.hotstate import MemoryHotState  # noqa: E402

BUDGET_PCT = 25.0
WARM_PIPELINE_ROUNDS = 50  # the last 10 s of the warm-up run through the real round (tracks, results, streaks)
SECONDS_PER_YEAR = 365 * 24 * 3600


def pre_history(feed: SimFeed, coin: str, minutes: float, rng: random.Random) -> Any:
    """`minutes` of 1 Hz price/OI and 8 h of 1/min funding ending just before the simulator's first snapshot."""
    cs = feed.market.state[coin]
    sigma = cs.spec.ann_vol / math.sqrt(SECONDS_PER_YEAR)
    n = int(minutes * 60)
    mid, oi, funding = feed.market.mid(coin), cs.oi * feed.market.mid(coin), feed.market.funding_rate(coin)
    # A walk backwards from the simulator's price and OI, so the history joins the live feed without a jump.
    pxs, ois = [mid], [oi]
    for _ in range(n - 1):
        pxs.append(pxs[-1] * math.exp(-sigma * rng.gauss(0.0, 1.0)))
        ois.append(ois[-1] * math.exp(-2e-4 * rng.gauss(0.0, 1.0)))
    pxs.reverse()
    ois.reverse()
    h = empty_history(coin)
    start = BASE_MS - n * 1000
    for m in range(8 * 60, 0, -1):
        if start - m * 60_000 < start:
            h = update(h, {"funding_rate": funding + rng.gauss(0.0, 5e-6), "funding_ts": start - m * 60_000})
    for i in range(n):
        ts = start + i * 1000
        snap: dict[str, Any] = {"price": f"{pxs[i]:.6g}", "price_ts": ts, "oi_total": ois[i], "oi_ts": ts}
        if i % 60 == 0:
            snap["funding_rate"], snap["funding_ts"] = funding + rng.gauss(0.0, 5e-6), ts
        h = update(h, snap)
    return h


def build(args: argparse.Namespace) -> tuple[SimFeed, AlphaPipeline, MemoryHotState, MemoryBroadcaster]:
    market = MarketEngine(seed=42, coins=resolve_universe(n_symbols=args.symbols))
    feed = SimFeed(seed=42, market=market, venue_cadence=not args.every_snapshot_new)
    hot, bc = MemoryHotState(), MemoryBroadcaster()
    symbols = tuple(c.upper() for c in feed.coins)
    cfg = PipelineConfig(symbols=symbols, private=False, auto=False, budget_fraction=1e9)
    pipe = AlphaPipeline(config=cfg, hot=hot, broadcaster=bc, runtime=Runtime(), clock=lambda: feed.now_ms / 1000)
    rng = random.Random(42)
    for coin in feed.coins:
        pipe.symbols[coin.upper()] = PipelineSymbol(history=pre_history(feed, coin, args.history_minutes, rng))
    return feed, pipe, hot, bc


def fold(pipe: AlphaPipeline, feed: SimFeed) -> None:
    """Warm-up step: fold each symbol's new snapshot into its history as the round would (no analyze)."""
    for snap in feed.snapshots():
        state = pipe.symbols[snap.symbol]
        if snap.updated_at != state.track.last_input_ms:
            state.history = update(state.history, snap)
            state.track.last_input_ms = snap.updated_at


def instrument(pipe: AlphaPipeline) -> tuple[list[float], list[float]]:
    """Per-symbol CPU (µs) of score() (update + analyze + encode) and of analyze() alone."""
    per_symbol: list[float] = []
    per_analyze: list[float] = []
    score, analyze = pipe.score, pipe.engine.analyze

    def timed_score(*a: Any, **kw: Any) -> str:
        t0 = time.thread_time_ns()
        out = score(*a, **kw)
        per_symbol.append((time.thread_time_ns() - t0) / 1000)
        return out

    def timed_analyze(*a: Any, **kw: Any) -> Any:
        t0 = time.thread_time_ns()
        out = analyze(*a, **kw)
        per_analyze.append((time.thread_time_ns() - t0) / 1000)
        return out

    pipe.score = timed_score  # type: ignore[method-assign]
    pipe.engine.analyze = timed_analyze  # type: ignore[method-assign]
    return per_symbol, per_analyze


async def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    if not args.default_gc:
        from kernel.runtime import tune_gc

        tune_gc()  # as every long-running entry point does at start-up (serve, run_alpha: kernel/runtime.py)
    feed, pipe, hot, bc = build(args)
    n = len(feed.coins)
    warm_rounds = int(args.warm_minutes * 60 * 5)
    print(
        f"{n} symbols: {args.history_minutes:g} min pre-history + {warm_rounds} warm rounds "
        f"({time.perf_counter() - t_start:.1f} s so far)..."
    )
    for i in range(warm_rounds):
        feed.step()
        if i < warm_rounds - WARM_PIPELINE_ROUNDS:
            fold(pipe, feed)  # only the histories matter here: update() without analyze/encode (faster)
            continue
        await hot.put_many(feed.snapshots())
        await pipe.run_once()
        bc.public.clear()
    per_symbol, per_analyze = instrument(pipe)
    rounds = int(args.seconds * 5)
    round_cpu: list[float] = []
    base_cpu: list[float] = []
    side_ns = 0  # this thread's CPU spent on the feed and the baseline (not pipeline work)
    scored = published = 0
    with profiled(args.profile):
        p0 = time.process_time_ns()
        for _ in range(rounds):
            t0 = time.thread_time_ns()
            feed.step()
            snaps = feed.snapshots()
            await hot.put_many(snaps)
            t1 = time.thread_time_ns()
            stats = await pipe.run_once()
            t2 = time.thread_time_ns()
            for s in snaps:
                orjson.dumps(s.as_dict())
            t3 = time.thread_time_ns()
            bc.public.clear()
            round_cpu.append((t2 - t1) / 1e6)
            base_cpu.append((t3 - t2) / 1e6)
            side_ns += (t1 - t0) + (t3 - t2)
            scored += stats.scored
            published += stats.published
        await pipe.flush_store()
        process_ms = (time.process_time_ns() - p0 - side_ns) / 1e6

    window_ms = args.seconds * 1000
    frac_round = sum(round_cpu) / window_ms * 100
    frac = process_ms / window_ms * 100
    base_frac = sum(base_cpu) / window_ms * 100
    feed_kind = "every snapshot new (stress)" if args.every_snapshot_new else "venue cadence"
    print(
        f"symbols={n} rate=5 Hz seconds={args.seconds:g} rounds={rounds} feed={feed_kind} dropped={pipe.totals.dropped}"
    )
    print(
        f"scored {scored} of {n * rounds} symbol-rounds ({scored / (n * rounds):.0%}; the rest had no new input "
        f"and were not due a decay refresh); published {published}"
    )
    print(
        f"pipeline CPU: {frac:.1f} % of one core (budget < {BUDGET_PCT:g} %) — process CPU incl. the store thread; "
        f"rounds alone {frac_round:.1f} % (mean {statistics.mean(round_cpu):.2f} ms, "
        f"p99 {percentile(round_cpu, 0.99):.2f} ms per round)"
    )
    print(
        f"per-symbol update+analyze+encode CPU: p50 {percentile(per_symbol, 0.5):.0f} µs, "
        f"p99 {percentile(per_symbol, 0.99):.0f} µs, mean {statistics.mean(per_symbol):.0f} µs (n={len(per_symbol)})"
    )
    print(
        f"per-symbol analyze CPU: p50 {percentile(per_analyze, 0.5):.0f} µs, "
        f"p99 {percentile(per_analyze, 0.99):.0f} µs, mean {statistics.mean(per_analyze):.0f} µs (n={len(per_analyze)})"
    )
    print(
        f"baseline as_dict+orjson of every snapshot: mean {statistics.mean(base_cpu):.2f} ms per round "
        f"→ {base_frac:.1f} % of one core; ratio pipeline / baseline {frac / base_frac:.2f}×"
    )
    gc_kind = "CPython defaults" if args.default_gc else "tune_gc() as in production"
    print(f"gc: {gc_kind}, threshold {gc.get_threshold()}")
    print(
        f"run took {time.perf_counter() - t_start:.1f} s wall; load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )
    if frac >= BUDGET_PCT:
        print(f"FAIL: the pipeline needs {frac:.1f} % of one core (budget < {BUDGET_PCT:g} %)")
        return 1
    return 0


if __name__ == "__main__":
    ap = parser(seconds=20)
    ap.add_argument("--warm-minutes", type=float, default=2)
    ap.add_argument("--history-minutes", type=float, default=30)
    ap.add_argument("--every-snapshot-new", action="store_true")
    ap.add_argument("--default-gc", action="store_true", help="skip kernel.runtime.tune_gc()")
    sys.exit(asyncio.run(run(ap.parse_args())))
