"""PnL arithmetic (pure): unrealized PnL of a signed position, closing fills and trades, loss streaks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


def unrealized_pnl(*, size: Decimal, entry_price: Decimal, mark_price: Decimal) -> Decimal:
    """Signed size (> 0 long): long gains when the mark rises, short when it falls."""
    return size * (mark_price - entry_price)


def is_closing(*, closed_pnl: Decimal, direction: str) -> bool:
    """A fill that reduces or flips a position (venue `dir` "Close Long", "Long > Short", ...) or realises PnL."""
    return closed_pnl != 0 or direction.startswith("Close") or ">" in direction


def fill_net_pnl(*, closed_pnl: Decimal, fee: Decimal, direction: str) -> Decimal | None:
    """Closed PnL net of the fill's fee for a closing fill (what the fills table shows); None for an opening fill."""
    if not is_closing(closed_pnl=closed_pnl, direction=direction):
        return None
    return closed_pnl - fee


@dataclass(frozen=True, slots=True)
class ClosingFill:
    order_key: str  # the venue oid (one closing order = one trade)
    time_ms: int
    net_pnl: Decimal


def trades_from_fills(fills: Sequence[ClosingFill]) -> list[tuple[int, Decimal]]:
    """Closing fills (oldest first) grouped into trades by order: (time of the last fill, summed net PnL)."""
    trades: dict[str, tuple[int, Decimal]] = {}
    for f in fills:
        t, total = trades.get(f.order_key, (f.time_ms, ZERO))
        trades[f.order_key] = (max(t, f.time_ms), total + f.net_pnl)
    return sorted(trades.values(), key=lambda tr: tr[0])


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
