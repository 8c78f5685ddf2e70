"""Orders priced off the venue simulator's book, read through the venue plugin's `hot` fixture (which puts a fresh
snapshot in the hot state on each call)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from execution import risk, venue
from execution.rounding import round_price
from tests.factories import SYMBOL, book_mid

Hot = Callable[..., Any]


def mid(hot: Hot, symbol: str = SYMBOL) -> Decimal:
    """The mid of a fresh book of `symbol`."""
    return book_mid(hot(symbol))


def below_mid(hot: Hot, factor: Decimal, symbol: str = SYMBOL) -> Decimal:
    """`factor` × the mid, rounded down to a valid price of `symbol`."""
    return round_price(px=mid(hot, symbol) * factor, spec=venue.asset_spec(symbol), mode="down")


def resting_buy(hot: Hot, *, size: Decimal = Decimal("0.0003"), symbol: str = SYMBOL) -> risk.OrderIntent:
    """A limit buy 10 % below mid: it rests, never fills."""
    px = below_mid(hot, Decimal("0.9"), symbol)
    return risk.OrderIntent(symbol=symbol, is_buy=True, order_type="limit", size=size, price=px)
