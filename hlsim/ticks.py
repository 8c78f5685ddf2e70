"""Tick, lot and wire-format rules (pure functions).

Venue rules (protocol reference §5): a price has at most 5 significant figures *and* at most
``MAX_DECIMALS - szDecimals`` decimals (6 for perps); integer prices are always allowed. A size has at most
``szDecimals`` decimals.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

PERP_MAX_DECIMALS = 6
MAX_SIG_FIGS = 5


def price_decimals(*, px: float, sz_decimals: int) -> int:
    """Number of decimals a valid (non-integer) price near `px` may carry."""
    if px <= 0:
        return PERP_MAX_DECIMALS - sz_decimals
    int_digits = math.floor(math.log10(px)) + 1
    return max(0, min(PERP_MAX_DECIMALS - sz_decimals, MAX_SIG_FIGS - int_digits))


def round_px(*, px: float, sz_decimals: int) -> float:
    """Round a float price to the nearest valid venue price."""
    d = price_decimals(px=px, sz_decimals=sz_decimals)
    return round(px, d)


def is_valid_price(*, px: Decimal, sz_decimals: int) -> bool:
    if not px.is_finite() or px <= 0:
        return False
    if px == px.to_integral_value():
        return True  # integer prices are always allowed (123456 ok)
    norm = px.normalize()
    _, digits, exponent = norm.as_tuple()
    decimals = -int(exponent)
    sig_figs = len(digits)
    return sig_figs <= MAX_SIG_FIGS and decimals <= PERP_MAX_DECIMALS - sz_decimals


def is_valid_size(*, sz: Decimal, sz_decimals: int) -> bool:
    if not sz.is_finite() or sz < 0:
        return False
    return sz == sz.quantize(Decimal(1).scaleb(-sz_decimals), rounding=ROUND_DOWN)


def parse_decimal(value: object) -> Decimal | None:
    """Parse a wire decimal string; None when it is not a finite decimal string."""
    if not isinstance(value, str):
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def fmt_decimal(value: Decimal) -> str:
    """Venue-style decimal string: trailing zeros stripped, at least one decimal ("100.0", "0.0", "2.0403")."""
    if value == 0:
        return "0.0"
    text = f"{value.normalize():f}"
    return text if "." in text else text + ".0"


def fmt_float(value: float, decimals: int) -> str:
    """Fast wire formatting of a float rounded to `decimals`, same style as `fmt_decimal`."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    else:
        text += ".0"
    return "0.0" if text in ("-0.0", "0.0") else text


def quantize_usd(value: Decimal) -> Decimal:
    """Money amounts are kept to 6 decimals (USDC precision on the venue)."""
    return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def aggregation_step(*, px: float, n_sig_figs: int, mantissa: int | None) -> float:
    """Bucket width for l2Book `nSigFigs` aggregation (mantissa 2/5 widens the bucket at 5 sig figs)."""
    exponent = math.floor(math.log10(px)) + 1 - n_sig_figs
    return (10.0**exponent) * (mantissa or 1)
