"""WebSocket protocol (SDK manager + raw client), fault injection, rate limits, and the command's validation."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import eth_account
import pytest
import requests
import websockets
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError
from hyperliquid.utils.types import Cloid

from hlsim.cli import CliError, config_from_options
from hlsim.server import SimConfig, Simulator, SimulatorThread
from tests.hlsim.helpers import wait_for


def test_sdk_websocket_manager_receives_pushes(sim: Simulator, trader: dict[str, Any]) -> None:
    got: dict[str, list] = {"l2Book": [], "trades": [], "allMids": [], "userFills": []}
    lock = threading.Lock()

    def collect(kind: str) -> Any:
        def cb(msg: dict) -> None:
            with lock:
                got[kind].append(msg)

        return cb

    info = Info(sim.base_url)
    user = trader["user"].address
    try:
        info.subscribe({"type": "l2Book", "coin": "ETH"}, collect("l2Book"))
        info.subscribe({"type": "trades", "coin": "BTC"}, collect("trades"))
        info.subscribe({"type": "allMids"}, collect("allMids"))
        info.subscribe({"type": "userFills", "user": user}, collect("userFills"))
        assert wait_for(lambda: all(got[k] for k in ("l2Book", "trades", "allMids", "userFills")))
        assert got["userFills"][0]["data"]["isSnapshot"] is True
        trader["exchange"].market_open("ETH", True, 0.01)
        assert wait_for(lambda: len(got["userFills"]) >= 2)
        push = got["userFills"][-1]["data"]
        assert push["user"] == user.lower() and push["fills"][0]["coin"] == "ETH"
        assert got["l2Book"][-1]["data"]["coin"] == "ETH"
        assert got["trades"][-1]["data"][0]["coin"] == "BTC"
        assert "BTC" in got["allMids"][-1]["data"]["mids"]
    finally:
        info.disconnect_websocket()


async def _recv_channel(ws: Any, channel: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if msg["channel"] == channel:
            return msg


async def test_raw_client_sees_ack_pong_errors_and_limits(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        sub = {"type": "l2Book", "coin": "ETH", "nSigFigs": 3}
        await ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
        ack = await _recv_channel(ws, "subscriptionResponse")
        assert ack == {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": sub}}
        book = await _recv_channel(ws, "l2Book")
        assert book["data"]["coin"] == "ETH"
        await ws.send(json.dumps({"method": "ping"}))
        assert await _recv_channel(ws, "pong") == {"channel": "pong"}
        await ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
        assert (await _recv_channel(ws, "error"))["data"].startswith("Already subscribed")
        await ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "NOPE"}}))
        assert "NOPE" in (await _recv_channel(ws, "error"))["data"]
        await ws.send("not json")
        assert (await _recv_channel(ws, "error"))["data"].startswith("Error parsing JSON")
        await ws.send(
            json.dumps({"method": "subscribe", "subscription": {"type": "candle", "coin": "BTC", "interval": "1m"}})
        )
        await _recv_channel(ws, "subscriptionResponse")
        candle = await _recv_channel(ws, "candle")
        assert isinstance(candle["data"], dict) and candle["data"]["s"] == "BTC"
        await ws.send(json.dumps({"method": "unsubscribe", "subscription": sub}))
        ack = await _recv_channel(ws, "subscriptionResponse")
        assert ack["data"]["method"] == "unsubscribe"


async def test_user_cap_and_idle_close() -> None:
    sim = Simulator(SimConfig(port=0, seed=2, speed=5, ws_idle_timeout=1.0, backfill_minutes=60))
    await sim.start()
    try:
        async with websockets.connect(sim.ws_url) as ws:
            for i in range(11):
                user = eth_account.Account.create().address
                await ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "userFills", "user": user}}))
                if i < 10:
                    await _recv_channel(ws, "subscriptionResponse")
            assert (await _recv_channel(ws, "error"))["data"] == "Cannot track more than 10 total users."
            t0 = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert time.monotonic() - t0 < 3
    finally:
        await sim.stop()


async def test_drop_and_malformed_frame(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}}))
        await _recv_channel(ws, "subscriptionResponse")
        r = await asyncio.to_thread(requests.post, sim.base_url + "/control", json={"action": "malformed_frame"})
        assert r.json()["ok"] is True
        seen_bad = False
        for _ in range(50):
            raw = await asyncio.wait_for(ws.recv(), 5)
            try:
                json.loads(raw)
            except json.JSONDecodeError:
                seen_bad = True
                break
        assert seen_bad
        await asyncio.to_thread(requests.post, sim.base_url + "/control", json={"action": "drop_ws"})
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)


def test_rate_limit_fault_then_recovery_and_stats(fresh_sim: SimulatorThread) -> None:
    sim = fresh_sim.sim
    info = Info(sim.base_url, skip_ws=True)
    fresh_sim.call(sim.faults.rate_limit, 1.0)
    with pytest.raises(ClientError) as exc:
        info.all_mids()
    assert exc.value.status_code == 429
    time.sleep(1.1)
    assert "BTC" in info.all_mids()
    stats = requests.get(sim.base_url + "/control/stats", timeout=5).json()
    assert stats["rate_limited"] >= 1 and stats["rest_calls"]["info:allMids"] >= 2
    assert set(stats["regimes"]) == set(info.all_mids())


def test_ip_weight_limit_answers_429() -> None:
    runner = SimulatorThread(SimConfig(port=0, seed=3, ip_weight_per_minute=30, backfill_minutes=30))
    sim = runner.start()
    try:
        codes = [requests.post(sim.base_url + "/info", json={"type": "meta"}, timeout=5).status_code for _ in range(3)]
        assert codes == [200, 429, 429]
        assert requests.post(sim.base_url + "/info", json={"type": "meta"}, timeout=5).text == "null"
    finally:
        runner.stop()


def test_blackholed_order_rests_and_is_queryable(fresh_sim: SimulatorThread) -> None:
    sim = fresh_sim.sim
    user = eth_account.Account.create()
    requests.post(sim.base_url + "/control", json={"action": "fund", "user": user.address, "usdc": 50000}, timeout=5)
    info = Info(sim.base_url, skip_ws=True)
    assert info.user_state(user.address)["marginSummary"]["accountValue"] == "50000.0"
    ex = Exchange(user, sim.base_url, timeout=1.0)
    requests.post(sim.base_url + "/control", json={"action": "blackhole_orders", "count": 1}, timeout=5)
    cloid = Cloid.from_int(99)
    px = round(float(info.all_mids()["ETH"]) * 0.9, 1)
    with pytest.raises(requests.exceptions.Timeout):
        ex.order("ETH", True, 0.01, px, {"limit": {"tif": "Gtc"}}, cloid=cloid)
    st = info.query_order_by_cloid(user.address, cloid)
    assert st["status"] == "order" and st["order"]["status"] == "open"
    assert sim.stats["orders_by_cloid"][cloid.to_raw()] == 1


def test_the_accounts_control_shows_open_orders_and_positions_outside_the_rate_limit(
    fresh_sim: SimulatorThread,
) -> None:
    sim = fresh_sim.sim
    user = eth_account.Account.create()
    requests.post(sim.base_url + "/control", json={"action": "fund", "user": user.address, "usdc": 50000}, timeout=5)
    info = Info(sim.base_url, skip_ws=True)
    ex = Exchange(user, sim.base_url, timeout=5.0)
    px = round(float(info.all_mids()["ETH"]) * 0.9, 1)
    ex.order("ETH", True, 0.01, px, {"limit": {"tif": "Gtc"}}, cloid=Cloid.from_int(7))
    ex.market_open("BTC", True, 0.001)
    fresh_sim.call(sim.faults.rate_limit, 5.0)  # REST refuses now; the control view does not
    view = requests.post(sim.base_url + "/control", json={"action": "accounts"}, timeout=5).json()["accounts"]
    mine = view[user.address.lower()]
    assert [o["cloid"] for o in mine["open_orders"]] == [Cloid.from_int(7).to_raw()]
    assert float(mine["positions"]["BTC"]) == 0.001 and "ETH" not in mine["positions"]
    fresh_sim.call(sim.faults.clear)


def test_command_rejects_bad_flags() -> None:
    with pytest.raises(CliError, match="--fund"):
        config_from_options({"fund": ["garbage"]})
    with pytest.raises(CliError, match="--speed"):
        config_from_options({"speed": -1})
    with pytest.raises(CliError, match="--symbols"):
        config_from_options({"symbols": "BTC,NOPE"})
    config, _ = config_from_options({"fund": ["0x" + "ab" * 20 + "=2500"], "symbols": "BTC,ETH", "speed": 10})
    assert config.fund == {"0x" + "ab" * 20: 2500} and config.symbols == ["BTC", "ETH"]


def test_django_command_reports_clear_errors() -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--fund expects"):
        call_command("hlsim", fund=["garbage"])
    with pytest.raises(CommandError, match="--speed must be > 0"):
        call_command("hlsim", speed=-1)
