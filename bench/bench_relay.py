"""Execution relay cost against the venue simulator, with a bare-SDK baseline in the same run.

Run: .venv/bin/python bench/bench_relay.py [--orders 200] [--warmup 20]

Set-up: the simulator runs in-process (its own thread and event loop, HTTP on localhost); a fresh SQLite
database (or DATABASE_URL if set) is migrated; one user approves an agent through the accounts flow; the hot
state holds a fresh book. Every measured order is a resting limit order 10 % below mid (no fills), so each
call does the same work.

Reported (p50 / p99 / mean over --orders calls):
* relay overhead  — `order_submit` entered → the signed POST /exchange leaves (risk context: controls,
  breakers, limits, agent, hot state, cached meta, clearinghouseState (cached 2 s); audit rows; Order insert;
  agent key decryption; signing).
* submit-to-ack   — POST /exchange sent → venue answer received (the relay's own HTTP call).
* relay total     — `order_submit` end to end (adds the answer's persistence, audit and private publish).
* baseline        — a bare SDK `Exchange.order()` with the same agent and cached meta (sign + POST), i.e. what a
  script without checks, persistence or audit pays per order.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(math.ceil(q / 100 * len(ordered))) - 1))]


def line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{name:<16} p50 {pct(ms, 50):7.2f} ms   p99 {pct(ms, 99):7.2f} ms   mean {statistics.fmean(ms):7.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hs-bench-relay-")
    os.environ.setdefault("ENVIRONMENT", "development")
    os.environ.setdefault("SQLITE_PATH", f"{tmp}/db.sqlite3")
    os.environ.setdefault("LOG_LEVEL", "warning")
    os.environ["HYPERSENTRY_VENUE"] = "sim"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")

    from hlsim.server import SimConfig, SimulatorThread

    sim_thread = SimulatorThread(
        SimConfig(port=0, symbols=["BTC", "ETH"], backfill_minutes=5, seed=21, rate_limits=False)
    )
    sim = sim_thread.start()
    os.environ["HYPERSENTRY_VENUE_URL"] = sim.base_url

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", "-v0")

    from asgiref.sync import async_to_sync
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from hyperliquid.utils.types import Cloid

    from accounts.models import User
    from accounts.services import agent_approve, agent_prepare, agent_signing_wallet
    from accounts.services.agents import typed_data_for
    from execution import risk, venue
    from execution.rounding import round_price
    from execution.services import relay
    from hypersentry.contracts.snapshot import SymbolSnapshot
    from markets.hotstate import MemoryHotState, set_hot_state

    wallet = Account.create()
    user = User.objects.create_user(wallet.address)
    row = agent_prepare(user=user)
    agent_approve(
        user=user,
        signature="0x"
        + wallet.sign_message(encode_typed_data(full_message=typed_data_for(row))).signature.hex().removeprefix("0x"),
    )

    state = MemoryHotState()
    set_hot_state(state)

    def feed() -> Decimal:
        book = venue.info({"type": "l2Book", "coin": "BTC"})
        bids = [[lv["px"], lv["sz"]] for lv in book["levels"][0]]
        asks = [[lv["px"], lv["sz"]] for lv in book["levels"][1]]
        now = int(time.time() * 1000)
        async_to_sync(state.put)(
            SymbolSnapshot(
                symbol="BTC",
                book={"bids": bids, "asks": asks},
                book_ts=now,
                price=bids[0][0],
                price_ts=now,
                updated_at=now,
            )
        )
        return (Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2

    spec = venue.asset_spec("BTC")
    assert spec is not None
    px = round_price(px=feed() * Decimal("0.9"), spec=spec, mode="down")
    intent = risk.OrderIntent(symbol="BTC", is_buy=True, order_type="limit", size=Decimal("0.0002"), price=px)

    # Instrument the relay's venue call: when it leaves and when the answer is back.
    marks: dict[str, float] = {}
    real_post = venue.post_signed

    def timed_post(*a, **kw):  # type: ignore[no-untyped-def]
        marks["out"] = time.perf_counter()
        try:
            return real_post(*a, **kw)
        finally:
            marks["back"] = time.perf_counter()

    relay.venue.post_signed = timed_post  # type: ignore[attr-defined]

    overhead, ack, total = [], [], []
    n = args.warmup + args.orders
    last_feed = time.monotonic()
    for i in range(n):
        if time.monotonic() - last_feed > 1.0:  # what the ingest does: keep the book fresh (< 4 s)
            feed()
            last_feed = time.monotonic()
        t0 = time.perf_counter()
        status, body = relay.order_submit(user=user, key=f"bench-{uuid.uuid4()}", intent=intent)
        t1 = time.perf_counter()
        assert status == 201, body
        if i >= args.warmup:
            overhead.append(marks["out"] - t0)
            ack.append(marks["back"] - marks["out"])
            total.append(t1 - t0)
    relay.venue.post_signed = real_post  # type: ignore[attr-defined]

    # Baseline: the bare SDK, same agent, cached meta, same order.
    ex = venue.exchange_for(wallet=agent_signing_wallet(user=user), account_address=user.address)
    baseline = []
    for i in range(n):
        t0 = time.perf_counter()
        reply = ex.order(
            "BTC", True, 0.0002, float(px), {"limit": {"tif": "Gtc"}}, cloid=Cloid("0x" + uuid.uuid4().hex)
        )
        t1 = time.perf_counter()
        assert reply["status"] == "ok", reply
        if i >= args.warmup:
            baseline.append(t1 - t0)
        time.sleep(0.002)  # the SDK's ms-clock nonces must not collide

    from django.db import connection

    print(
        f"bench_relay: {args.orders} resting limit orders (+{args.warmup} warm-up), venue = in-process hlsim, "
        f"database = {connection.vendor}"
    )
    print(line("relay overhead", overhead))
    print(line("submit-to-ack", ack))
    print(line("relay total", total))
    print(line("baseline SDK", baseline))
    print(
        f"relay total / baseline p50 = {pct(total, 50) / pct(baseline, 50):.2f}x; "
        f"overhead share of total p50 = {pct(overhead, 50) / pct(total, 50) * 100:.0f} %"
    )
    sim_thread.stop()


if __name__ == "__main__":
    main()
