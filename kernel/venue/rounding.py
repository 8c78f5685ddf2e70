"""Tick, lot and 5-significant-figure rules of the venue (protocol reference §5) as pure functions.

A price has at most 5 significant figures AND at most MAX_DECIMALS - szDecimals decimals (6 for perps, 8 for
spot); integer prices are always allowed. A size has at most szDecimals decimals. Perp orders need $10 notional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

PERP_MAX_DECIMALS = 6
SPOT_MAX_DECIMALS = 8
MAX_SIG_FIGS = 5
MIN_NOTIONAL_USD = Decimal(10)


@dataclass(frozen=True, slots=True)
class AssetSpec:
    symbol: str
    asset_id: int
    sz_decimals: int
    max_leverage: int
    is_spot: bool = False
    delisted: bool = False

    @property
    def max_decimals(self) -> int:
        return (SPOT_MAX_DECIMALS if self.is_spot else PERP_MAX_DECIMALS) - self.sz_decimals


def price_decimals(*, px: Decimal, spec: AssetSpec) -> int:
    """Decimals a valid non-integer price near `px` may carry."""
    if px <= 0:
        return spec.max_decimals
    int_digits = math.floor(px.log10()) + 1
    return max(0, min(spec.max_decimals, MAX_SIG_FIGS - int_digits))


def is_valid_price(*, px: Decimal, spec: AssetSpec) -> bool:
    if not px.is_finite() or px <= 0:
        return False
    if px == px.to_integral_value():
        return True
    _, digits, exponent = px.normalize().as_tuple()
    return len(digits) <= MAX_SIG_FIGS and -int(exponent) <= spec.max_decimals


def round_price(*, px: Decimal, spec: AssetSpec, mode: str = "nearest") -> Decimal:
    """The nearest valid price (mode "nearest"), or the valid price at or below ("down") / above ("up") `px`."""
    rounding = {"nearest": ROUND_HALF_EVEN, "down": ROUND_FLOOR, "up": ROUND_CEILING}[mode]
    for _ in range(3):  # rounding up across a power of ten changes the allowed decimals: settle in ≤ 2 steps
        d = price_decimals(px=px, spec=spec)
        rounded = px.quantize(Decimal(1).scaleb(-d), rounding=rounding)
        if is_valid_price(px=rounded, spec=spec):
            return rounded.normalize() if rounded != rounded.to_integral_value() else rounded.to_integral_value()
        px = rounded
    return px


def is_valid_size(*, sz: Decimal, spec: AssetSpec) -> bool:
    if not sz.is_finite() or sz <= 0:
        return False
    return sz == sz.quantize(Decimal(1).scaleb(-spec.sz_decimals), rounding=ROUND_DOWN)


def round_size(*, sz: Decimal, spec: AssetSpec) -> Decimal:
    """Round a size down to the lot (never more than asked for)."""
    return sz.quantize(Decimal(1).scaleb(-spec.sz_decimals), rounding=ROUND_DOWN)


def to_wire(value: Decimal | int | str) -> str:
    """Venue wire string: trailing zeros stripped ("1900.5", "3000")."""
    return f"{Decimal(str(value)).normalize():f}"
