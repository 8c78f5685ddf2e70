"""Money safety in BOTH topologies, over real HTTP against real processes: `manage.py serve` on SQLite (what
`make run` starts) and the split topology on PostgreSQL + Redis with two web processes, ingest, user feeds and
Celery — the same wallet flow a browser uses, orders racing each other across processes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from eth_account import Account

from tests.e2e.live import Deployment, Trader, one_process, split

pytestmark = pytest.mark.slow
ADMIN = Account.create()


@pytest.fixture(scope="module", params=["one_process", "split"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    if request.param == "one_process":
        with one_process(admin=ADMIN.address) as dep:
            yield dep
    else:
        with split(admin=ADMIN.address, webs=2, celery=True) as dep:
            yield dep


def notional(dep: Deployment, address: str, symbol: str = "BTC") -> Decimal:
    state = dep.venue_info({"type": "clearinghouseState", "user": address, "dex": ""})
    for ap in state["assetPositions"]:
        if ap["position"]["coin"] == symbol:
            return abs(Decimal(ap["position"]["positionValue"]))
    return Decimal(0)


def test_parallel_orders_across_web_processes_never_exceed_the_position_limit(deployment: Deployment) -> None:
    trader = Trader(deployment.web[0]).sign_in().enable_trading()
    sessions = [trader.on(deployment.web[i % len(deployment.web)]) for i in range(20)]
    barrier = threading.Barrier(len(sessions))

    def fire(t: Trader) -> tuple[int, str]:
        barrier.wait(30)
        r = t.post("/trading/order", {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "900"})
        body = r.json()
        return r.status_code, body.get("code") or body["order"]["state"]

    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        results = list(pool.map(fire, sessions))
    assert all(status < 500 for status, _ in results), results
    assert Counter(results)[(201, "filled")] == 1, results
    assert notional(deployment, trader.address) <= Decimal(1000) * Decimal("1.02")


def test_resting_orders_count_and_a_trader_may_close_under_the_kill_switch(deployment: Deployment) -> None:
    trader = Trader(deployment.web[-1]).sign_in().enable_trading()
    book = trader.get("/trading/orderbook?coin=ETH&depth=1").json()["book"]
    bid = book["bids"][0][0]
    codes = []
    for _ in range(4):
        body = {"symbol": "ETH", "side": "buy", "type": "limit", "price": bid, "size_usd": "600", "tif": "Alo"}
        r = trader.post("/trading/order", body)
        codes.append(r.json().get("code") or r.json()["order"]["state"])
    assert codes == ["resting", "max_position_exceeded", "max_position_exceeded", "max_position_exceeded"], codes
    r = trader.post("/trading/order", {"symbol": "SOL", "side": "buy", "type": "market", "size_usd": "100"})
    assert r.status_code == 201, r.json()

    engaged = deployment.manage("killswitch", "on", "--reason", "e2e drill")
    assert engaged.returncode == 0, engaged.stdout + engaged.stderr
    try:
        other = trader.on(deployment.web[0])
        r = other.post("/trading/order", {"symbol": "SOL", "side": "buy", "type": "market", "size_usd": "50"})
        assert r.status_code == 422 and r.json()["code"] == "kill_switch_engaged", r.json()
        r = other.post("/trading/positions/close", {"symbol": "SOL"})
        assert r.status_code == 201 and r.json()["order"]["state"] == "filled", r.json()
        assert notional(deployment, trader.address, "SOL") == 0
    finally:
        lifted = deployment.manage("killswitch", "off", "--reason", "e2e drill over")
        assert lifted.returncode == 0, lifted.stdout + lifted.stderr


def test_a_hammering_user_is_answered_429_by_us_while_another_trades(deployment: Deployment) -> None:
    noisy = Trader(deployment.web[0]).sign_in()
    trader = Trader(deployment.web[-1]).sign_in().enable_trading()
    stop = threading.Event()
    seen: Counter[int] = Counter()

    def hammer(t: Trader) -> None:
        while not stop.is_set():
            seen[t.get("/trading/positions").status_code] += 1

    threads = [
        threading.Thread(target=hammer, args=(noisy.on(deployment.web[i % len(deployment.web)]),)) for i in range(6)
    ]
    for t in threads:
        t.start()
    try:
        answers = []
        for _ in range(6):
            r = trader.post("/trading/order", {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "20"})
            answers.append((r.status_code, r.json().get("code")))
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert answers == [(201, None)] * 6, answers
    assert seen[429] > 0 and all(code < 500 for code in seen), seen
    controls = trader.get("/trading/controls").json()
    assert controls["breakers"] == [], controls


def test_every_safety_job_runs_in_this_topology(deployment: Deployment) -> None:
    """Reconciliation and kill-switch upkeep run at start; trailing stops every 5 s — under Celery beat + worker in
    the split topology, in serve's own scheduler in one process. The admin sees each last run on /system."""
    admin = Trader(deployment.web[0], ADMIN).sign_in()
    wanted = ("execution.reconcile", "execution.killswitch_maintain", "execution.trailing_stops")
    deadline = time.monotonic() + 60
    rows: dict[str, str] = {}
    while time.monotonic() < deadline:
        html = admin.get("/system").text
        rows = {name: html.split(f'data-job="{name}"')[1].split("</tr>")[0] for name in wanted}
        if all("s ago" in row and "dot-ok" in row for row in rows.values()):
            break
        time.sleep(2)
    for name, row in rows.items():
        assert "s ago" in row and "dot-ok" in row, f"{name} did not run OK in {deployment.name}: {row}"


def test_no_stored_answer_is_a_server_error(deployment: Deployment) -> None:
    out = deployment.manage(
        "shell",
        "-c",
        "from execution.models import IdempotencyRecord as R; "
        "print(R.objects.filter(response_status__gte=500).count())",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0"
    audit = deployment.manage("verify_audit")
    assert audit.returncode == 0 and "OK" in audit.stdout, audit.stdout + audit.stderr
