"""Liquidation imbalance from real exchange liquidation events. No data is exactly 0.0 (seed §21, v2 #2).

Momentum reading: liquidated shorts are forced buys (bullish), liquidated longs forced sells (bearish).
imbalance = (short_notional - long_notional) / total; score = imbalance × min(1, total / liquidation_full_notional)
so a couple of small liquidations cannot produce a strong signal.
"""

from __future__ import annotations

from alpha.engine.config import AlphaConfig
from alpha.engine.inputs import SymbolHistory
from alpha.engine.signal import ComponentSignal, between, clamp, rounded


def liquidation_imbalance(*, history: SymbolHistory, now_ms: int, config: AlphaConfig) -> ComponentSignal:
    window = between(history.liquidations, now_ms - int(config.liquidation_window_s * 1000), now_ms)
    if not window:
        return ComponentSignal.no_data()
    long_ntl = sum(liq.notional for liq in window if liq.side > 0)
    short_ntl = sum(liq.notional for liq in window if liq.side < 0)
    total = long_ntl + short_ntl
    if total <= 0:
        return ComponentSignal.no_data()
    imbalance = (short_ntl - long_ntl) / total
    score = clamp(imbalance * min(1.0, total / config.liquidation_full_notional))
    return ComponentSignal(
        score,
        {
            "data": True,
            "count": len(window),
            "long_notional": rounded(long_ntl, 2),
            "short_notional": rounded(short_ntl, 2),
            "imbalance": rounded(imbalance),
        },
    )
