"""Relay events reach the owner's /ws socket only (real gateway, real sockets), with increasing sequence numbers."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from eth_account import Account

from tests.factories import approve_agent
from tests.markets.gateway import connect, fresh_broadcaster, make_user_session, recv_all, recv_json, serve

pytestmark = pytest.mark.django_db(transaction=True)


async def test_fills_reach_only_their_owners_socket(sim_thread: Any, hot: Any) -> None:
    from execution import risk
    from execution.userfeed import _closing
    from tests.execution.answers import order_submit

    alice_wallet, bob_wallet = Account.create(), Account.create()
    alice, alice_key = await make_user_session(alice_wallet.address)
    bob, bob_key = await make_user_session(bob_wallet.address)
    await sync_to_async(_closing(approve_agent), thread_sensitive=False)(alice, alice_wallet)
    async with (
        fresh_broadcaster(),
        serve() as ws_url,
        connect(ws_url, cookie=f"sessionid={alice_key}") as ws_a,
        connect(ws_url, cookie=f"sessionid={bob_key}") as ws_b,
    ):
        for ws in (ws_a, ws_b):
            await ws.send('{"type":"subscribe_private","channels":["private.execution","private.account"]}')
            assert (await recv_json(ws))["type"] == "subscribed_private"
        intent = risk.OrderIntent(symbol="BTC", is_buy=True, order_type="market", size_usd=Decimal(100))
        status, body = await sync_to_async(_closing(order_submit), thread_sensitive=False)(
            user=alice, key=str(uuid.uuid4()), intent=intent
        )
        assert status == 201, body
        frames_a = await recv_all(ws_a, 1.0)
        frames_b = await recv_all(ws_b, 1.0)
    kinds = [f["event_type"] for f in frames_a]
    assert "order_update" in kinds and "fill_update" in kinds and "account_update" in kinds
    seqs = [f["seq"] for f in frames_a]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert frames_b == []
    fill = next(f for f in frames_a if f["event_type"] == "fill_update")
    assert fill["data"]["symbol"] == "BTC" and Decimal(fill["data"]["size"]) > 0
