"""Accounts, positions and the pure money math (Decimal): fills, PnL, fees, margin, funding."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hlsim.ticks import fmt_decimal, quantize_usd

ZERO = Decimal(0)
TAKER_FEE = Decimal("0.00045")
MAKER_FEE = Decimal("0.00015")
DEFAULT_LEVERAGE = 20


@dataclass
class Position:
    szi: Decimal = ZERO
    entry_px: Decimal = ZERO
    funding_all_time: Decimal = ZERO
    funding_since_open: Decimal = ZERO
    funding_since_change: Decimal = ZERO


@dataclass(frozen=True)
class FillOutcome:
    start_position: Decimal
    direction: str
    closed_pnl: Decimal
    szi: Decimal
    entry_px: Decimal


@dataclass
class Agent:
    address: str  # lower-case
    name: str
    valid_until: int | None


@dataclass
class Account:
    address: str  # lower-case
    balance: Decimal  # USDC cash: deposits + realised PnL - fees + funding
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, tuple[str, int]] = field(default_factory=dict)  # coin -> ("cross"|"isolated", value)
    fills: list[dict] = field(default_factory=list)
    fundings: list[dict] = field(default_factory=list)
    agents: dict[str, Agent] = field(default_factory=dict)  # name ("" = unnamed) -> agent
    cum_volume: Decimal = ZERO
    n_requests: int = 0
    n_cancel_requests: int = 0
    last_over_cap_ms: int = 0
    schedule_cancel_ms: int | None = None
    schedule_triggers: dict[int, int] = field(default_factory=dict)  # UTC day -> triggers


def fill_direction(*, start: Decimal, is_buy: bool, end: Decimal) -> str:
    """The venue's `dir` strings, including flips ("Long > Short")."""
    if start > 0 and end < 0:
        return "Long > Short"
    if start < 0 and end > 0:
        return "Short > Long"
    if is_buy:
        return "Close Short" if start < 0 else "Open Long"
    return "Close Long" if start > 0 else "Open Short"


def apply_fill(*, szi: Decimal, entry_px: Decimal, is_buy: bool, px: Decimal, sz: Decimal) -> FillOutcome:
    """One-way position update: average entry on increases, realised PnL on reductions, new entry on a flip."""
    signed = sz if is_buy else -sz
    end = szi + signed
    closed = ZERO
    if szi != 0 and (szi > 0) != is_buy:
        closed_sz = min(abs(szi), sz)
        closed = (px - entry_px) * closed_sz if szi > 0 else (entry_px - px) * closed_sz
    if end == 0:
        new_entry = ZERO
    elif szi == 0 or (szi > 0) == (end > 0) and abs(end) > abs(szi):
        new_entry = (abs(szi) * entry_px + sz * px) / abs(end) if szi != 0 else px
    elif (szi > 0) != (end > 0):
        new_entry = px  # flipped: the remainder opened at the fill price
    else:
        new_entry = entry_px
    return FillOutcome(
        start_position=szi,
        direction=fill_direction(start=szi, is_buy=is_buy, end=end),
        closed_pnl=quantize_usd(closed),
        szi=end,
        entry_px=new_entry,
    )


def trade_fee(*, px: Decimal, sz: Decimal, maker: bool) -> Decimal:
    return quantize_usd(px * sz * (MAKER_FEE if maker else TAKER_FEE))


def funding_payment(*, szi: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """USDC credited to the account: longs pay positive funding, shorts receive it."""
    return quantize_usd(-szi * mark * rate)


def unrealized_pnl(*, szi: Decimal, entry_px: Decimal, mark: Decimal) -> Decimal:
    return (mark - entry_px) * szi


def margin_used(*, szi: Decimal, mark: Decimal, leverage: int) -> Decimal:
    return abs(szi) * mark / leverage


@dataclass(frozen=True)
class MarginSummary:
    account_value: Decimal
    total_margin_used: Decimal
    total_ntl_pos: Decimal
    total_raw_usd: Decimal
    maintenance: Decimal
    withdrawable: Decimal


def margin_summary(
    *, balance: Decimal, positions: list[tuple[Decimal, Decimal, Decimal, int, int]], order_margin: Decimal = ZERO
) -> MarginSummary:
    """positions: (szi, entry_px, mark, leverage, max_leverage). accountValue = cash + unrealised PnL."""
    upnl = sum((unrealized_pnl(szi=s, entry_px=e, mark=m) for s, e, m, _, _ in positions), ZERO)
    used = sum((margin_used(szi=s, mark=m, leverage=lev) for s, _, m, lev, _ in positions), ZERO)
    ntl = sum((abs(s) * m for s, _, m, _, _ in positions), ZERO)
    signed_ntl = sum((s * m for s, _, m, _, _ in positions), ZERO)
    maint = sum((abs(s) * m / (2 * mx) for s, _, m, _, mx in positions), ZERO)
    value = balance + upnl
    return MarginSummary(
        account_value=value,
        total_margin_used=used,
        total_ntl_pos=ntl,
        total_raw_usd=value - signed_ntl,
        maintenance=maint,
        withdrawable=max(ZERO, value - used - order_margin),
    )


def liquidation_px(
    *, szi: Decimal, entry_px: Decimal, mark: Decimal, account_value: Decimal, other_maint: Decimal, max_leverage: int
) -> Decimal | None:
    """Approximate cross liquidation price: where account value falls to maintenance margin (None if never)."""
    if szi == 0:
        return None
    mm_rate = Decimal(1) / (2 * max_leverage)
    # value(p) = account_value + szi*(p - mark); maint(p) = other + |szi|*p*mm_rate
    denom = szi - abs(szi) * mm_rate
    if denom == 0:
        return None
    p = (other_maint - account_value + szi * mark) / denom
    return p if p > 0 else None


def usd(value: Decimal) -> str:
    return fmt_decimal(quantize_usd(value))
