"""Execution relay cost against the venue simulator: one user alone vs 20 users at once on PostgreSQL, with a
bare-SDK baseline in the same run.

Run: .venv/bin/python bench/bench_relay.py [--orders 150] [--warmup 20] [--users 20] [--seconds 40]

Set-up: the simulator runs in-process (its own thread and event loop, HTTP on localhost); a throwaway PostgreSQL
server is started and migrated (DATABASE_URL instead when set; `--sqlite` for the one-process database); users
approve agents through the accounts flow; the hot state holds a fresh book. Every measured order is a resting limit
order 10 % below mid (no fills), so each call does the same work. Limits are lifted for the bench users: what is
measured is the cost of the checks, not their verdict.

Phases:
1a. one user, orders back to back (the classic single-user figure; its account state stays cached);
1b. `--users` users, one order at a time round robin, each user every `--interval` s (the serial reference);
2. the same users AT ONCE, each in its own thread, each every ~`--interval` s (jittered): same per-user pace, same
   aggregate load (well below the machine's capacity), only now they overlap — the per-user lock must not make one
   user wait for another;
3. baseline: a bare SDK `Exchange.order()` with the same agent and cached meta (sign + POST).

Reported (p50 / p99 / mean): relay overhead (`order_submit` entered → the signed POST /exchange leaves: lock,
live orders, risk context, audit rows, Order insert, key decryption, signing), submit-to-ack, relay total.
Goal: relay-overhead p50 of phase 2 ≤ 1.5 × phase 1b's in the same run (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

from kernel.venue import client as vc
from kernel.venue import exchange, meta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
GOAL_RATIO = 1.5


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(math.ceil(q / 100 * len(ordered))) - 1))]


def line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name:<28} p50 {pct(ms, 50):7.2f} ms   p99 {pct(ms, 99):7.2f} ms   mean {statistics.fmean(ms):7.2f} ms"
        f"   n={len(ms)}"
    )


def setup_env(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="hs-bench-relay-")
    os.environ.setdefault("ENVIRONMENT", "development")
    os.environ.setdefault("SQLITE_PATH", f"{tmp}/db.sqlite3")
    os.environ.setdefault("LOG_LEVEL", "warning")
    os.environ["HYPERSENTRY_VENUE"] = "sim"
    os.environ["VENUE_WEIGHT_PER_MIN"] = "1200"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")
    if not args.sqlite and not os.environ.get("DATABASE_URL"):
        from deploy.servers import PostgresServer

        server = PostgresServer(scratch=True)
        atexit.register(server.close)  # sys.exit() and failures alike: no server left running
        os.environ["DATABASE_URL"] = server.url


def make_user(limits_row: Any) -> Any:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from accounts.models import User
    from accounts.services import agent_approve, agent_prepare
    from accounts.services.agents import typed_data_for
    from execution.models import RiskLimits

    wallet = Account.create()
    user = User.objects.create_user(wallet.address)
    row = agent_prepare(user=user)
    sig = wallet.sign_message(encode_typed_data(full_message=typed_data_for(row))).signature.hex()
    agent_approve(user=user, signature="0x" + sig.removeprefix("0x"))
    RiskLimits.objects.create(user=user, **limits_row)
    return user


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the concurrent phase")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between one user's orders")
    ap.add_argument("--sqlite", action="store_true", help="SQLite instead of a throwaway PostgreSQL")
    args = ap.parse_args()
    setup_env(args)

    from hlsim.server import SimConfig, SimulatorThread

    sim_thread = SimulatorThread(
        SimConfig(port=0, symbols=["BTC", "ETH"], backfill_minutes=5, seed=21, rate_limits=False)
    )
    sim = sim_thread.start()
    os.environ["HYPERSENTRY_VENUE_URL"] = sim.base_url

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "--noinput", "-v0")

    from asgiref.sync import async_to_sync
    from hyperliquid.exchange import Exchange
    from hyperliquid.utils.types import Cloid

    from accounts.services import agent_signing_wallet
    from execution import risk
    from execution.services import relay
    from kernel.contracts.snapshot import SymbolSnapshot
    from kernel.venue.rounding import round_price
    from markets.hotstate import MemoryHotState, set_hot_state

    lifted = {
        "environment": "sim",
        "max_position_usd": Decimal("1e12"),
        "max_total_exposure_usd": Decimal("1e12"),
        "max_daily_loss_usd": Decimal("1e12"),
        "stop_loss_pct": Decimal(5),
        "max_drawdown_pct": Decimal(100),
        "max_leverage": 10,
        "max_slippage_bps": 100,
    }
    user = make_user(lifted)
    others = [make_user(lifted) for _ in range(args.users)]

    state = MemoryHotState()
    set_hot_state(state)

    def feed() -> Decimal:
        book = vc.info({"type": "l2Book", "coin": "BTC"}, priority="cancel")
        bids = [[lv["px"], lv["sz"]] for lv in book["levels"][0]]
        asks = [[lv["px"], lv["sz"]] for lv in book["levels"][1]]
        now = int(time.time() * 1000)
        snap = SymbolSnapshot(
            symbol="BTC", book={"bids": bids, "asks": asks}, book_ts=now, price=bids[0][0], price_ts=now, updated_at=now
        )
        async_to_sync(state.put)(snap)
        return (Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2

    spec = meta.asset_spec("BTC")
    assert spec is not None
    px = round_price(px=feed() * Decimal("0.9"), spec=spec, mode="down")
    intent = risk.OrderIntent(symbol="BTC", is_buy=True, order_type="limit", size=Decimal("0.0002"), price=px)

    # Instrument the relay's venue call (per thread): when it leaves and when the answer is back.
    marks = threading.local()
    real_post = exchange.post_signed

    def timed_post(*a: Any, **kw: Any) -> Any:
        marks.out = time.perf_counter()
        try:
            return real_post(*a, **kw)
        finally:
            marks.back = time.perf_counter()

    exchange.post_signed = timed_post  # type: ignore[assignment]
    stop_feed = threading.Event()

    def keep_fresh() -> None:  # what the ingest does: keep the book fresh (< 4 s)
        while not stop_feed.wait(1.0):
            feed()

    feeder = threading.Thread(target=keep_fresh, daemon=True)
    feeder.start()

    def one(u: Any) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        outcome = relay.order_submit(user=u, key=f"bench-{uuid.uuid4()}", intent=intent)
        t1 = time.perf_counter()
        assert outcome.result == "done", outcome.to_dict()
        return marks.out - t0, marks.back - marks.out, t1 - t0

    # 1a. One user alone, back to back (the classic figure).
    single = [one(user) for _ in range(args.warmup + args.orders)][args.warmup :]

    # 1b. The same users and the same pace as phase 2, but one order at a time (round robin): the reference for
    # cross-user slowdown — same per-user cache state, same aggregate load, no overlap.
    for u in others:
        one(u)  # warm-up: first account read, key load
    serial: list[tuple[float, float, float]] = []
    gap = args.interval / len(others)
    end = time.monotonic() + args.seconds
    i = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        serial.append(one(others[i % len(others)]))
        i += 1
        time.sleep(max(0.0, gap - (time.monotonic() - t0)))

    # 2. Many users at once, paced.
    concurrent: list[tuple[float, float, float]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds + args.interval

    def trader(u: Any, seed: int) -> None:
        rnd = random.Random(seed)
        time.sleep(rnd.uniform(0, args.interval))
        try:
            while time.monotonic() < deadline:
                time.sleep(rnd.uniform(0.5, 1.5) * args.interval)
                sample = one(u)
                with lock:
                    concurrent.append(sample)
        finally:
            connection.close()

    threads = [threading.Thread(target=trader, args=(u, i)) for i, u in enumerate(others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop_feed.set()
    exchange.post_signed = real_post  # type: ignore[assignment]

    # 3. Baseline: the bare SDK, same agent, cached meta, same order.
    vm = meta.venue_meta()
    ex = Exchange(
        agent_signing_wallet(user=user),
        vc.base_url(),
        meta=vm.meta,
        spot_meta=vm.spot_meta,  # type: ignore[arg-type]
        account_address=user.address,
    )
    baseline = []
    for i in range(args.warmup + args.orders):
        t0 = time.perf_counter()
        reply = ex.order(
            "BTC", True, 0.0002, float(px), {"limit": {"tif": "Gtc"}}, cloid=Cloid("0x" + uuid.uuid4().hex)
        )
        t1 = time.perf_counter()
        assert reply["status"] == "ok", reply
        if i >= args.warmup:
            baseline.append(t1 - t0)
        time.sleep(0.002)  # the SDK's ms-clock nonces must not collide

    print(
        f"bench_relay: resting limit orders, venue = in-process hlsim, database = {connection.vendor}; "
        f"phase 1: 1 user x {args.orders} sequential; phase 2: {args.users} users at once, one order every "
        f"~{args.interval:.0f} s each for {args.seconds:.0f} s"
    )
    print(line("1 user: relay overhead", [s[0] for s in single]))
    print(line("1 user: submit-to-ack", [s[1] for s in single]))
    print(line("1 user: relay total", [s[2] for s in single]))
    print(line(f"{args.users} users serial: overhead", [s[0] for s in serial]))
    print(line(f"{args.users} users serial: total", [s[2] for s in serial]))
    print(line(f"{args.users} users: relay overhead", [s[0] for s in concurrent]))
    print(line(f"{args.users} users: submit-to-ack", [s[1] for s in concurrent]))
    print(line(f"{args.users} users: relay total", [s[2] for s in concurrent]))
    print(line("baseline SDK", baseline))
    p50 = pct([s[0] for s in concurrent], 50) / pct([s[0] for s in serial], 50)
    p99 = pct([s[0] for s in concurrent], 99) / pct([s[0] for s in serial], 99)
    vs_single = pct([s[0] for s in concurrent], 50) / pct([s[0] for s in single], 50)
    ok = p50 <= GOAL_RATIO
    print(
        f"relay overhead, {args.users} users at once / the same orders one at a time: p50 {p50:.2f}x, "
        f"p99 {p99:.2f}x (goal p50 <= {GOAL_RATIO}x: {'met' if ok else 'MISSED'}); "
        f"vs 1 user back to back p50 {vs_single:.2f}x; "
        f"1-user relay total / baseline p50 = {pct([s[2] for s in single], 50) / pct(baseline, 50):.2f}x"
    )
    sim_thread.stop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
