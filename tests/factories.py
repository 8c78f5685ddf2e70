"""Factories for what many tests build: hot-state snapshots, pre-trade risk inputs, users and traders, signed-in API
clients, settings, orders and fills. Plain functions and constants, imported by name; fixtures live in conftest.py files
and the plugins under tests/plugins/."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import agent_approve, agent_prepare
from accounts.services.agents import typed_data_for
from deploy.servers import free_port
from execution import risk
from execution.models import Fill, Order
from kernel.clock import now_ms
from kernel.contracts.snapshot import SymbolSnapshot
from kernel.venue.rounding import AssetSpec

SYMBOL = "BTC"

# --- hot-state snapshots (kernel/contracts/snapshot.py) ---------------------------------------------------------------
BOOK = {"bids": [["67000.0", "1.5"], ["66999.0", "2.0"]], "asks": [["67001.0", "1.0"], ["67002.0", "3.0"]]}


def symbol_snapshot(
    symbol: str = SYMBOL, *, age_ms: int = 0, price: str = "67000.5", book: Any = BOOK, **fields: Any
) -> SymbolSnapshot:
    """A snapshot as ingest writes it: price and book stamped now (less `age_ms`); `fields` set or override the
    others (e.g. `book=None`, `oi_total=...`)."""
    ts = now_ms() - age_ms
    values: dict[str, Any] = {"price": price, "price_ts": ts, "book": book, "book_ts": ts, "updated_at": ts}
    return SymbolSnapshot(symbol=symbol, **(values | fields))


def book_snapshot(symbol: str, *, bids: list[list[str]], asks: list[list[str]], age_ms: int = 0) -> SymbolSnapshot:
    """A snapshot of a venue book (levels as [px, sz] strings), priced at its mid."""
    mid = (Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2
    return symbol_snapshot(symbol, age_ms=age_ms, price=str(mid), book={"bids": bids, "asks": asks})


def book_mid(snap: SymbolSnapshot) -> Decimal:
    return (Decimal(snap.book["bids"][0][0]) + Decimal(snap.book["asks"][0][0])) / 2


# --- pre-trade risk inputs (execution/risk.py) ------------------------------------------------------------------------
RISK_NOW_MS = 1_700_000_000_000
BTC_SPEC = AssetSpec(symbol="BTC", asset_id=0, sz_decimals=5, max_leverage=50)
# A resting BTC buy ($59 at 59000, under the 60000/60001 book) well inside every limit of risk_context().
BUY = risk.OrderIntent(symbol="BTC", is_buy=True, order_type="limit", size=Decimal("0.001"), price=Decimal(59000))


def risk_limits(**overrides: Any) -> risk.Limits:
    """$1000 per position, $5000 in all, $100 daily loss, 10x, 100 bps; no drawdown limit unless given."""
    limits = risk.Limits(
        max_position_usd=Decimal(1000),
        max_total_exposure_usd=Decimal(5000),
        max_daily_loss_usd=Decimal(100),
        max_leverage=10,
        max_slippage_bps=100,
    )
    return replace(limits, **overrides)


def risk_context(**overrides: Any) -> risk.RiskContext:
    """Everything open and fresh at RISK_NOW_MS: trading on, signed in, an agent, BTC_SPEC, a 60000/60001 book
    100 ms old, risk_limits(), no position, no loss; `overrides` replace any field."""
    ctx = risk.RiskContext(
        now_ms=RISK_NOW_MS,
        kill_switch_engaged=False,
        server_trading_enabled=True,
        admin_only=False,
        user_is_admin=False,
        session_authenticated=True,
        execution_agent_ready=True,
        spec=BTC_SPEC,
        book=risk.Book(best_bid=Decimal(60000), best_ask=Decimal(60001), ts_ms=RISK_NOW_MS - 100),
        limits=risk_limits(),
    )
    return replace(ctx, **overrides)


# --- users and traders ------------------------------------------------------------------------------------------------
def make_user(*, role: str = "trader") -> User:
    """A user at a fresh wallet address (no key kept: for tests that never sign)."""
    return User.objects.create_user(Account.create().address, role=role)


def make_trader(*, role: str = "trader") -> tuple[User, LocalAccount]:
    """A user with a wallet we hold the key of (so the test can sign approveAgent like a browser wallet)."""
    wallet = Account.create()
    user = User.objects.create_user(wallet.address, role=role)
    return user, wallet


def approve_agent(user: User, wallet: LocalAccount) -> None:
    """The accounts flow: prepare an agent, sign approveAgent with the user's wallet, post it to the venue."""
    row = agent_prepare(user=user)
    signed = wallet.sign_message(encode_typed_data(full_message=typed_data_for(row)))
    agent_approve(user=user, signature="0x" + signed.signature.hex().removeprefix("0x"))


def approved_trader(*, role: str = "trader") -> User:
    """make_trader() with its agent approved at the venue: ready to trade."""
    user, wallet = make_trader(role=role)
    approve_agent(user, wallet)
    return user


def client_for(user: User) -> APIClient:
    """A DRF test client signed in as `user`."""
    client = APIClient()
    client.force_login(user)
    return client


# --- settings ---------------------------------------------------------------------------------------------------------
def unreachable_redis_caches(*, timeout: float | None = None) -> dict[str, Any]:
    """CACHES for a shared cache nobody answers on (a free port: refused at once, as while Redis restarts);
    `timeout`: the client's connect and read timeouts in seconds."""
    cache: dict[str, Any] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
    }
    if timeout is not None:
        cache["OPTIONS"] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    return {"default": cache}


# --- orders and fills -------------------------------------------------------------------------------------------------
def make_order(user: User, *, cloid: str, **fields: Any) -> Order:
    """An order row as the relay writes it: a 0.001 BTC limit buy at 1000 (state and the rest from `fields`)."""
    values: dict[str, Any] = {
        "correlation_id": "c",
        "symbol": SYMBOL,
        "side": "buy",
        "order_type": "limit",
        "size": Decimal("0.001"),
        "price": Decimal(1000),
    }
    return Order.objects.create(user=user, cloid=cloid, **(values | fields))  # type: ignore[no-any-return]


def make_fill(user: User, *, tid: int, venue_oid: int, time: datetime, closed_pnl: Decimal, **fields: Any) -> Fill:
    """A closing fill as the user feed stores it: a 0.001 BTC sell at 60000 (size, fee and the rest from `fields`)."""
    values: dict[str, Any] = {"symbol": SYMBOL, "side": "sell", "price": Decimal(60000), "size": Decimal("0.001")}
    return Fill.objects.create(  # type: ignore[no-any-return]
        user=user, tid=tid, venue_oid=venue_oid, time=time, closed_pnl=closed_pnl, **(values | fields)
    )
