"""Position sizing: capped fractional Kelly × volatility targeting, clamped by the user's risk limits.

1. Kelly: f* = p - (1 - p) / R (R = reward:risk from the conviction). f* <= 0 → size 0 (no edge).
2. fraction = min(f* × kelly_multiplier, max_equity_fraction) of equity (quarter Kelly, at most 10 %).
3. Volatility targeting: × clamp(target_vol / realised_vol, 0, vol_scale_max); unknown RV → vol_scale_unknown.
4. Limits: <= max_position_usd, <= max_total_exposure_usd - current exposure, <= equity × max_leverage.
5. Below min_order_usd → 0 (the venue rejects it anyway).

Stop and take-profit are intended levels at stop_loss_pct and stop × R from the reference price.
Amounts are Decimal (USD to the cent, sizes/prices to 8 significant digits); the relay applies tick/lot rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alpha.engine.config import DEFAULT_CONFIG, AlphaConfig
from alpha.engine.inputs import finite, positive
from kernel.contracts.records import fields_dict

CENT = Decimal("0.01")
ZERO = Decimal("0")


def to_decimal(value: float, *, digits: int = 8) -> Decimal:
    """A finite float as a Decimal with `digits` significant digits (0 for non-finite)."""
    if not math.isfinite(value):
        return ZERO
    return Decimal(f"{value:.{digits}g}")


def usd(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(CENT) if math.isfinite(value) and value > 0 else ZERO


@dataclass(frozen=True, slots=True)
class SizingLimits:
    """The user's limits. Defaults: the production column of the risk-limits seed (leverage is ours)."""

    max_position_usd: Decimal = Decimal("500")
    max_total_exposure_usd: Decimal = Decimal("2500")
    max_leverage: Decimal = Decimal("3")


@dataclass(frozen=True, slots=True)
class SizingResult:
    side: str  # LONG | SHORT | NONE
    size_usd: Decimal
    size: Decimal  # in coin
    kelly: float  # raw f*
    fraction: float  # of equity after the Kelly multiplier and cap, before vol scaling
    vol_scale: float
    binding: str  # which rule set the final size: kelly | position | exposure | leverage | min_order | no_edge | ...
    stop_px: Decimal | None
    take_profit_px: Decimal | None

    def as_dict(self) -> dict[str, Any]:
        return fields_dict(self)


def kelly_fraction(*, p: object, rr: object) -> float:
    """f* = p - (1 - p) / R; 0.0 for garbage or R <= 0."""
    pf, r = finite(p), positive(rr)
    if pf is None or r is None or not 0.0 <= pf <= 1.0:
        return 0.0
    return pf - (1.0 - pf) / r


def _none(side: str, binding: str, kelly: float = 0.0) -> SizingResult:
    return SizingResult(side, ZERO, ZERO, kelly, 0.0, 0.0, binding, None, None)


def size_position(
    *,
    side: str,
    win_probability: object,
    rr: object,
    equity_usd: object,
    price: object,
    realised_vol_annual: object = None,
    current_exposure_usd: object = 0,
    limits: SizingLimits | None = None,
    config: AlphaConfig = DEFAULT_CONFIG,
) -> SizingResult:
    cfg, lim = config, limits or SizingLimits()
    side_u = side.upper() if isinstance(side, str) else ""
    if side_u not in ("LONG", "SHORT"):
        return _none("NONE", "no_side")
    kelly = kelly_fraction(p=win_probability, rr=rr)
    equity, px = positive(equity_usd), positive(price)
    if kelly <= 0:
        return _none(side_u, "no_edge", kelly)
    if equity is None or px is None:
        return _none(side_u, "no_equity" if equity is None else "no_price", kelly)
    fraction = min(kelly * cfg.kelly_multiplier, cfg.max_equity_fraction)
    rv = positive(realised_vol_annual)
    vol_scale = min(cfg.vol_scale_max, cfg.target_vol_annual / rv) if rv else cfg.vol_scale_unknown
    exposure = max(0.0, finite(current_exposure_usd) or 0.0)
    caps = {
        "kelly": equity * fraction * vol_scale,
        "position": _limit(lim.max_position_usd),
        "exposure": max(0.0, _limit(lim.max_total_exposure_usd) - exposure),
        "leverage": equity * _limit(lim.max_leverage),
    }
    binding = min(caps, key=lambda k: caps[k])
    size = caps[binding]
    if size < cfg.min_order_usd:
        return SizingResult(side_u, ZERO, ZERO, kelly, fraction, vol_scale, "min_order", None, None)
    stop_dist = px * cfg.stop_loss_pct / 100.0
    r = positive(rr) or 0.0
    direction = 1.0 if side_u == "LONG" else -1.0
    size_usd = usd(size)
    return SizingResult(
        side=side_u,
        size_usd=size_usd,
        size=to_decimal(float(size_usd) / px),
        kelly=kelly,
        fraction=fraction,
        vol_scale=vol_scale,
        binding=binding,
        stop_px=to_decimal(px - direction * stop_dist),
        take_profit_px=to_decimal(px + direction * stop_dist * r),
    )


def _limit(value: object) -> float:
    """A user limit; missing/garbage/negative limits allow nothing (fail closed)."""
    out = finite(value)
    return out if out is not None and out > 0 else 0.0
