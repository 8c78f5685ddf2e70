"""OI regime: how open interest moved against price over a window.

| OI | price | regime           | sign | magnitude            |
|----|-------|------------------|------|----------------------|
| up | up    | long build-up    | +1   | full                 |
| up | down  | short build-up   | -1   | full                 |
| down | up  | short covering   | +1   | × regime_unwind_factor |
| down | down| long liquidation | -1   | × regime_unwind_factor |

magnitude = mean(min(1, |Δprice%| / price_full), min(1, |ΔOI%| / oi_full)); either move under its dead zone = neutral.
"""

from __future__ import annotations

from alpha.engine.config import AlphaConfig
from alpha.engine.inputs import Point, SymbolHistory
from alpha.engine.signal import ComponentSignal, at_or_before, clamp, rounded

LABELS = {
    (1, 1): ("long_buildup", 1.0, False),
    (1, -1): ("short_buildup", -1.0, False),
    (-1, 1): ("short_covering", 1.0, True),
    (-1, -1): ("long_liquidation", -1.0, True),
}


def _change_pct(series: tuple[Point, ...], now_ms: int, cfg: AlphaConfig) -> tuple[float, float] | None:
    """(% change, covered seconds) from the point at the window start to the newest point at or before now."""
    last = at_or_before(series, now_ms)
    if last is None:
        return None
    start = at_or_before(series, now_ms - int(cfg.regime_window_s * 1000)) or series[0]
    covered_s = (last.ts_ms - start.ts_ms) / 1000.0
    if covered_s < cfg.regime_min_window_s or start.value <= 0:
        return None
    return (last.value / start.value - 1.0) * 100.0, covered_s


def oi_regime(*, history: SymbolHistory, now_ms: int, config: AlphaConfig) -> ComponentSignal:
    cfg = config
    price = _change_pct(history.prices, now_ms, cfg)
    oi = _change_pct(history.oi, now_ms, cfg)
    if price is None or oi is None:
        return ComponentSignal.no_data("price" if price is None else "oi")
    dp, doi = price[0], oi[0]
    inputs: dict[str, object] = {
        "data": True,
        "price_change_pct": rounded(dp),
        "oi_change_pct": rounded(doi),
        "window_s": round(min(price[1], oi[1]), 1),
    }
    if abs(dp) < cfg.regime_price_dead_pct or abs(doi) < cfg.regime_oi_dead_pct:
        return ComponentSignal(0.0, {**inputs, "regime": "neutral"})
    label, direction, unwind = LABELS[(1 if doi > 0 else -1, 1 if dp > 0 else -1)]
    magnitude = 0.5 * (min(1.0, abs(dp) / cfg.regime_price_full_pct) + min(1.0, abs(doi) / cfg.regime_oi_full_pct))
    if unwind:
        magnitude *= cfg.regime_unwind_factor
    return ComponentSignal(clamp(direction * magnitude), {**inputs, "regime": label})
