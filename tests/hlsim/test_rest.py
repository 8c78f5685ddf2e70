"""The unmodified SDK against a live simulator: /info shapes, trading flow, venue errors."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import eth_account
import requests
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

from hlsim.accounts import MAKER_FEE, TAKER_FEE
from hlsim.server import Simulator
from tests.hlsim.helpers import post_signed

D = Decimal


def test_info_shapes(sim: Simulator) -> None:
    info = Info(sim.base_url, skip_ws=True)
    meta = info.meta()
    assert meta["universe"][0] == {"name": "BTC", "szDecimals": 5, "maxLeverage": 40}
    assert len(meta["universe"]) >= 20
    mids = info.all_mids()
    assert set(mids) >= {"BTC", "ETH", "kPEPE"} and isinstance(mids["BTC"], str)
    book = info.l2_snapshot("ETH")
    assert book["coin"] == "ETH" and isinstance(book["time"], int)
    bids, asks = book["levels"]
    assert len(bids) == 20 and len(asks) == 20
    assert set(bids[0]) == {"px", "sz", "n"} and D(bids[0]["px"]) < D(asks[0]["px"])
    now = int(time.time() * 1000)
    candles = info.candles_snapshot("BTC", "5m", now - 3_600_000, now)
    assert len(candles) >= 10
    assert set(candles[0]) == {"t", "T", "s", "i", "o", "c", "h", "l", "v", "n"}
    ctxs = info.meta_and_asset_ctxs()
    assert set(ctxs[1][0]) >= {"funding", "openInterest", "markPx", "midPx", "oraclePx", "premium", "impactPxs"}
    agg = info.post("/info", {"type": "l2Book", "coin": "BTC", "nSigFigs": 2})
    assert len(agg["levels"][0]) >= 1
    assert info.funding_history("ETH", now - 3 * 3_600_000)[0]["coin"] == "ETH"


def test_malformed_info_bodies_get_422(sim: Simulator) -> None:
    for body in (
        b"not json",
        b"[1,2]",
        b'{"type":"l2book","coin":"ETH"}',
        b'{"type":"l2Book"}',
        b'{"type":"clearinghouseState","user":42}',
    ):
        r = requests.post(sim.base_url + "/info", data=body, headers={"Content-Type": "application/json"}, timeout=5)
        assert r.status_code == 422, body
        assert r.text == "Failed to deserialize the JSON body into the target type"


def _fills_for(info: Info, user: str, oid: int) -> list[dict]:
    return [f for f in info.user_fills(user) if f["oid"] == oid]


def test_agent_trading_flow_matches_hand_computed_pnl(sim: Simulator, trader: dict[str, Any]) -> None:
    ex: Exchange = trader["exchange"]
    info: Info = trader["info"]
    user = trader["user"].address
    assert info.user_state(user)["marginSummary"]["accountValue"] == "100000.0"
    assert info.post("/info", {"type": "userRole", "user": trader["agent"].address})["role"] == "agent"

    mid = D(info.all_mids()["ETH"])
    rest_px = float(round(mid * D("0.9"), 1))
    cloid = Cloid.from_int(11)
    r = ex.order("ETH", True, 0.05, rest_px, {"limit": {"tif": "Gtc"}}, cloid=cloid)
    resting = r["response"]["data"]["statuses"][0]["resting"]
    assert resting["cloid"] == cloid.to_raw()
    st = info.query_order_by_cloid(user, cloid)
    assert st["status"] == "order" and st["order"]["status"] == "open" and st["order"]["order"]["oid"] == resting["oid"]
    assert [o["oid"] for o in info.open_orders(user)] == [resting["oid"]]
    assert ex.cancel_by_cloid("ETH", cloid)["response"]["data"]["statuses"] == ["success"]
    assert info.query_order_by_oid(user, resting["oid"])["order"]["status"] == "canceled"
    r = ex.order("ETH", True, 0.05, rest_px, {"limit": {"tif": "Gtc"}})
    oid = r["response"]["data"]["statuses"][0]["resting"]["oid"]
    assert ex.cancel("ETH", oid)["response"]["data"]["statuses"] == ["success"]
    assert ex.cancel("ETH", oid)["response"]["data"]["statuses"][0]["error"].startswith("Order was never placed")

    # A big Ioc walks several levels.
    mid = D(info.all_mids()["ETH"])
    size = float((D(120_000) / mid).quantize(D("0.0001")))
    r = ex.order("ETH", True, size, float(round(mid * D("1.02"), 1)), {"limit": {"tif": "Ioc"}})
    filled = r["response"]["data"]["statuses"][0]["filled"]
    fills = _fills_for(info, user, filled["oid"])
    assert len({f["px"] for f in fills}) >= 2
    assert sum(D(f["sz"]) for f in fills) == D(filled["totalSz"])
    for f in fills:
        assert f["crossed"] is True and f["dir"] == "Open Long" and f["side"] == "B"
        assert D(f["fee"]) == (D(f["px"]) * D(f["sz"]) * TAKER_FEE).quantize(D("0.000001"))
    ntl = sum(D(f["px"]) * D(f["sz"]) for f in fills)
    entry = ntl / D(filled["totalSz"])
    pos = info.user_state(user)["assetPositions"][0]["position"]
    assert D(pos["szi"]) == D(filled["totalSz"])
    assert abs(D(pos["entryPx"]) - entry) < D("0.01")

    # market_open adds, market_close flattens: realised PnL and fees add up exactly.
    ex.market_open("ETH", True, 0.5)
    close = ex.market_close("ETH")
    assert "filled" in close["response"]["data"]["statuses"][0]
    state = info.user_state(user)
    assert state["assetPositions"] == []
    all_fills = info.user_fills(user)
    fees = sum(D(f["fee"]) for f in all_fills)
    pnl = sum(D(f["closedPnl"]) for f in all_fills)
    buys = [f for f in all_fills if f["side"] == "B"]
    sells = [f for f in all_fills if f["side"] == "A"]
    bought = sum(D(f["px"]) * D(f["sz"]) for f in buys)
    sold = sum(D(f["px"]) * D(f["sz"]) for f in sells)
    assert sum(D(f["sz"]) for f in buys) == sum(D(f["sz"]) for f in sells)
    assert abs(pnl - (sold - bought)) < D("0.0001")
    assert D(state["marginSummary"]["accountValue"]) == D(100_000) + pnl - fees
    assert sells[0]["dir"] == "Close Long" and D(sells[0]["startPosition"]) > 0
    assert MAKER_FEE < TAKER_FEE


def _state_without_time(info: Info, user: str) -> tuple:
    state = info.user_state(user)
    state.pop("time")
    return state, info.open_orders(user), info.user_fills(user)


def test_venue_errors_leave_the_account_unchanged(sim: Simulator, trader: dict[str, Any]) -> None:
    ex: Exchange = trader["exchange"]
    info: Info = trader["info"]
    user = trader["user"].address
    agent = trader["agent"]
    before = _state_without_time(info, user)
    mid = D(info.all_mids()["BTC"])

    intruder = Exchange(
        eth_account.Account.create(), sim.base_url, account_address=user, meta=info.meta(), spot_meta=info.spot_meta()
    )
    r = intruder.order("BTC", True, 0.001, float(round(mid * D("0.9"))), {"limit": {"tif": "Gtc"}})
    assert r["status"] == "err"
    assert r["response"] == f"User or API Wallet {intruder.wallet.address.lower()} does not exist."

    nonce = int(time.time() * 1000)
    assert ex.noop(nonce) == {"status": "ok", "response": {"type": "default"}}
    assert ex.noop(nonce) == {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}

    order = {"a": 0, "b": True, "p": "60001.5", "s": "0.001", "r": False, "t": {"limit": {"tif": "Gtc"}}}
    r = post_signed(sim.base_url, agent, {"type": "order", "orders": [order], "grouping": "na"}).json()
    assert r["response"]["data"]["statuses"] == [{"error": "Price must be divisible by tick size."}]

    eth = D(info.all_mids()["ETH"])
    low = float(round(eth * D("0.95"), 1))
    small = float((D(5) / D(str(low))).quantize(D("0.0001")))
    r = ex.order("ETH", True, small, low, {"limit": {"tif": "Gtc"}})
    assert r["response"]["data"]["statuses"] == [{"error": "Order must have minimum value of $10."}]

    r = ex.order("ETH", True, 0.01, low, {"limit": {"tif": "Gtc"}}, reduce_only=True)
    assert r["response"]["data"]["statuses"] == [{"error": "Reduce only order would increase position."}]

    ask = D(info.l2_snapshot("ETH")["levels"][1][0]["px"])
    r = ex.order("ETH", True, 0.01, float(round(ask * D("1.01"), 1)), {"limit": {"tif": "Alo"}})
    err = r["response"]["data"]["statuses"][0]["error"]
    assert err.startswith("Post only order would have immediately matched, bbo was ")
    assert "@" in err

    r = ex.order("ETH", True, 1000, float(round(eth * D("0.99"), 1)), {"limit": {"tif": "Gtc"}})
    assert r["response"]["data"]["statuses"] == [{"error": "Insufficient margin to place order."}]
    assert _state_without_time(info, user) == before


def test_trigger_tpsl_modify_leverage_and_schedule_cancel(sim: Simulator, trader: dict[str, Any]) -> None:
    ex: Exchange = trader["exchange"]
    info: Info = trader["info"]
    user = trader["user"].address
    assert ex.update_leverage(5, "ETH") == {"status": "ok", "response": {"type": "default"}}
    assert ex.update_leverage(500, "ETH")["status"] == "err"
    mid = D(info.all_mids()["ETH"])
    parent = {
        "coin": "ETH",
        "is_buy": True,
        "sz": 0.1,
        "limit_px": float(round(mid * D("0.9"), 1)),
        "order_type": {"limit": {"tif": "Gtc"}},
        "reduce_only": False,
    }
    tp = {
        "coin": "ETH",
        "is_buy": False,
        "sz": 0.1,
        "limit_px": float(round(mid * D("1.2"), 1)),
        "order_type": {"trigger": {"triggerPx": float(round(mid * D("1.2"), 1)), "isMarket": True, "tpsl": "tp"}},
        "reduce_only": True,
    }
    r = ex.bulk_orders([parent, tp], grouping="normalTpsl")
    statuses = r["response"]["data"]["statuses"]
    assert "resting" in statuses[0] and statuses[1] == "waitingForFill"
    fe = info.frontend_open_orders(user)
    assert len(fe) == 1 and fe[0]["children"][0]["orderType"] == "Take Profit Market"
    oid = statuses[0]["resting"]["oid"]
    new_px = float(round(mid * D("0.8"), 1))
    r = ex.modify_order(oid, "ETH", True, 0.1, new_px, {"limit": {"tif": "Gtc"}})
    new_oid = r["response"]["data"]["statuses"][0]["resting"]["oid"]
    assert new_oid != oid
    assert info.query_order_by_oid(user, oid)["order"]["status"] == "canceled"
    sl = ex.order(
        "ETH",
        False,
        0.1,
        float(round(mid * D("0.5"), 1)),
        {"trigger": {"triggerPx": float(round(mid * D("0.5"), 1)), "isMarket": True, "tpsl": "sl"}},
        reduce_only=True,
    )
    assert sl["response"]["data"]["statuses"] == ["waitingForTrigger"]
    assert ex.schedule_cancel(int(time.time() * 1000) + 1000)["status"] == "err"
    assert ex.schedule_cancel(int(time.time() * 1000) + 5200) == {"status": "ok", "response": {"type": "default"}}
    deadline = time.monotonic() + 10
    while info.open_orders(user) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert info.open_orders(user) == []
    assert info.query_order_by_oid(user, new_oid)["order"]["status"] == "scheduledCancel"


def test_named_agents_replacement_and_expiry(sim: Simulator) -> None:
    user = eth_account.Account.create()
    owner = Exchange(user, sim.base_url)
    info = Info(sim.base_url, skip_ws=True)
    keys = []
    for name in ("a", "b", "c"):
        r, key = owner.approve_agent(name)
        assert r["status"] == "ok"
        keys.append(key)
    r, _ = owner.approve_agent("d")
    assert r["status"] == "err"
    r, replaced = owner.approve_agent("a")
    assert r["status"] == "ok"
    agents = info.extra_agents(user.address)
    assert len(agents) == 3 and replaced.lower() not in keys
    old = Exchange(eth_account.Account.from_key(keys[0]), sim.base_url, account_address=user.address)
    assert old.noop(int(time.time() * 1000))["response"].startswith("User or API Wallet")
    expiring = int(time.time() * 1000) + 1500
    r, key = owner.approve_agent(f"b valid_until {expiring}")
    assert r["status"] == "ok"
    agent = Exchange(eth_account.Account.from_key(key), sim.base_url, account_address=user.address)
    assert agent.noop(int(time.time() * 1000))["status"] == "ok"
    time.sleep(1.6)
    assert agent.noop(int(time.time() * 1000))["response"].startswith("User or API Wallet")
