"""Orders priced off the venue simulator's book, read through the venue plugin's `hot` fixture (which puts a fresh
snapshot in the hot state on each call), and the user's trigger orders as the venue holds them."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import Any

from execution import risk
from kernel.venue import client as vc
from kernel.venue import meta
from kernel.venue.rounding import round_price
from tests.factories import SYMBOL, book_mid

Hot = Callable[..., Any]


def mid(hot: Hot, symbol: str = SYMBOL) -> Decimal:
    """The mid of a fresh book of `symbol`."""
    return book_mid(hot(symbol))


def below_mid(hot: Hot, factor: Decimal, symbol: str = SYMBOL) -> Decimal:
    """`factor` × the mid, rounded down to a valid price of `symbol`."""
    spec = meta.asset_spec(symbol)
    assert spec is not None, f"{symbol} is not listed at the venue"
    return round_price(px=mid(hot, symbol) * factor, spec=spec, mode="down")


def resting_buy(hot: Hot, *, size: Decimal = Decimal("0.0003"), symbol: str = SYMBOL) -> risk.OrderIntent:
    """A limit buy 10 % below mid: it rests, never fills."""
    px = below_mid(hot, Decimal("0.9"), symbol)
    return risk.OrderIntent(symbol=symbol, is_buy=True, order_type="limit", size=size, price=px)


def venue_triggers(user: Any) -> list[dict[str, Any]]:
    """The user's trigger orders (stops, take-profits) open at the venue."""
    orders = vc.info({"type": "frontendOpenOrders", "user": user.address, "dex": ""}, priority="cancel")
    return [o for o in orders if o.get("isTrigger")]  # test plumbing: "cancel" is never budgeted


def trigger_prices(user: Any) -> list[Decimal]:
    return [Decimal(o["triggerPx"]) for o in venue_triggers(user)]


def triggers_at_each_cancel(monkeypatch: Any, service: ModuleType, user: Any) -> list[int]:
    """Spy on `service.order_cancel`: the list gets how many trigger orders the user has at the venue at each call
    (a replacement stop must stand before the old one is cancelled)."""
    seen: list[int] = []
    real = service.order_cancel

    def spy(**kw: Any) -> Any:
        seen.append(len(venue_triggers(user)))
        return real(**kw)

    monkeypatch.setattr(service, "order_cancel", spy)
    return seen
