"""Pre-trade checks are pure: every rejection reason from a typed context, no database or network."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from execution import risk
from kernel.venue.rounding import is_valid_price, round_price
from tests.factories import BTC_SPEC, BUY, RISK_NOW_MS, risk_context

D = Decimal


def reason(intent: risk.OrderIntent = BUY, **ctx: object) -> str:
    v = risk.evaluate(intent, risk_context(**ctx))
    return v.reason if not v.ok else "ok"


def test_a_plain_limit_order_passes_every_check() -> None:
    v = risk.evaluate(BUY, risk_context())
    assert v.ok and v.order is not None and v.order.price == D(59000)
    assert v.checks == ("gates", "market_data", "tick_lot", "min_notional", "slippage", "leverage", "exposure")


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        ({"kill_switch_engaged": True}, risk.KILL_SWITCH),
        ({"server_trading_enabled": False}, risk.TRADING_DISABLED),
        ({"admin_only": True}, risk.ADMIN_ONLY),
        ({"session_authenticated": False}, risk.NOT_AUTHENTICATED),
        ({"execution_agent_ready": False}, risk.AGENT_NOT_READY),
        ({"open_breakers": ("error_rate",)}, risk.CIRCUIT_BREAKER),
        ({"spec": None}, risk.SYMBOL_NOT_TRADABLE),
        ({"spec": replace(BTC_SPEC, delisted=True)}, risk.SYMBOL_NOT_TRADABLE),
        ({"book": risk.Book(best_bid=D(60000), best_ask=D(60001), ts_ms=RISK_NOW_MS - 4_001)}, risk.STALE_MARKET_DATA),
        ({"book": None}, risk.STALE_MARKET_DATA),
        ({"book": risk.Book(best_bid=None, best_ask=D(1), ts_ms=RISK_NOW_MS)}, risk.STALE_MARKET_DATA),
        ({"daily_pnl_usd": D(-100)}, risk.MAX_DAILY_LOSS),
        ({"position_size": D("0.016")}, risk.MAX_POSITION),
        ({"total_exposure_usd": D(4990)}, risk.MAX_EXPOSURE),
    ],
)
def test_each_context_gate_has_its_own_reason(ctx: dict[str, object], expected: str) -> None:
    assert reason(**ctx) == expected


def test_admins_pass_admin_only_mode() -> None:
    assert reason(admin_only=True, user_is_admin=True) == "ok"


def test_it_rejects_an_invalid_limit_price_and_names_the_nearest_valid_one() -> None:
    v = risk.evaluate(replace(BUY, price=D("59000.5")), risk_context())  # 6 significant figures
    assert v.reason == risk.INVALID_PRICE and "59000" in v.message


def test_it_rejects_sizes_off_the_lot_and_zero() -> None:
    assert reason(replace(BUY, size=D("0.000001"))) == risk.INVALID_SIZE
    assert reason(replace(BUY, size=D(0))) == risk.INVALID_SIZE
    assert reason(replace(BUY, size=None, size_usd=D("0.1"))) == risk.INVALID_SIZE


def test_it_rejects_orders_under_ten_dollars() -> None:
    assert reason(replace(BUY, size=D("0.0001"))) == risk.MIN_NOTIONAL  # $5.90


def test_it_rejects_an_aggressive_limit_beyond_the_slippage_limit() -> None:
    assert reason(replace(BUY, price=D(61000))) == risk.SLIPPAGE  # 1.7 % above mid > 100 bps
    assert reason(replace(BUY, price=D(60500))) == "ok"  # 0.8 %


def test_it_rejects_leverage_above_the_limit() -> None:
    assert reason(replace(BUY, leverage=11)) == risk.LEVERAGE
    assert reason(replace(BUY, leverage=10)) == "ok"


def test_reduce_only_needs_an_opposite_position_and_skips_exposure_limits() -> None:
    sell = risk.OrderIntent(symbol="BTC", is_buy=False, order_type="market", size=D("0.1"), reduce_only=True)
    assert reason(sell) == risk.REDUCE_ONLY_NO_POSITION
    assert reason(sell, position_size=D("0.1"), daily_pnl_usd=D(-500), total_exposure_usd=D(99999)) == "ok"


def test_market_orders_get_a_bounded_ioc_price_on_a_valid_tick() -> None:
    intent = risk.OrderIntent(symbol="BTC", is_buy=True, order_type="market", size_usd=D(100))
    v = risk.evaluate(intent, risk_context())
    assert v.ok and v.order is not None
    assert v.order.tif == "Ioc"
    assert v.order.price <= D("60000.5") * D("1.01")
    assert is_valid_price(px=v.order.price, spec=BTC_SPEC)
    assert v.order.size == D("0.00166")  # $100 / mid, rounded down to the lot


@pytest.mark.parametrize(
    ("px", "szd", "expected"),
    [
        (D("1234.56"), 0, D("1234.6")),
        (D("0.0012345"), 0, D("0.001234")),  # 6 decimals max for szDecimals 0
        (D("0.012345"), 1, D("0.01234")),
        (D("123456.7"), 0, D("123457")),  # integers always allowed
        (D("99999.6"), 0, D("100000")),
    ],
)
def test_price_rounding_follows_the_five_significant_figure_and_decimal_rules(px: D, szd: int, expected: D) -> None:
    spec = replace(BTC_SPEC, sz_decimals=szd)
    assert round_price(px=px, spec=spec, mode="nearest") == expected
    assert is_valid_price(px=expected, spec=spec)
