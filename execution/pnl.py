"""PnL arithmetic (pure): unrealized PnL of a signed position, realized PnL of a day's fills, loss streaks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FillPnl:
    closed_pnl: Decimal
    fee: Decimal


def unrealized_pnl(*, size: Decimal, entry_price: Decimal, mark_price: Decimal) -> Decimal:
    """Signed size (> 0 long): long gains when the mark rises, short when it falls."""
    return size * (mark_price - entry_price)


def realized_pnl(fills: Iterable[FillPnl]) -> Decimal:
    """Closed PnL net of fees (a negative fee is a rebate)."""
    return sum((f.closed_pnl - f.fee for f in fills), ZERO)


def trailing_losses(closing_pnls: Sequence[Decimal]) -> int:
    """How many of the most recent closing results (oldest first) are losses in a row."""
    streak = 0
    for pnl in reversed(closing_pnls):
        if pnl < 0:
            streak += 1
        else:
            break
    return streak


def notional(*, size: Decimal, price: Decimal) -> Decimal:
    return abs(size) * price
