"""Volatility regime from realised-volatility percentiles. Direction-neutral by construction.

The history keeps the realised volatility (RMS of per-second-normalised log returns) of each completed
`vol_bucket_s` bucket. The current RV is the in-progress bucket once it holds enough returns, else the
newest completed one; its percentile rank among the other completed buckets decides the regime:
<= vol_compression_pct → compression, >= vol_expansion_pct → expansion, else normal; too little history →
unknown. The reading never carries a direction: its component score is always exactly 0.0, and its
`amplifier` multiplies the directional sum of the other components instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alpha.engine.config import AlphaConfig
from alpha.engine.inputs import SymbolHistory
from alpha.engine.signal import ComponentSignal, rounded

SECONDS_PER_YEAR = 365 * 24 * 3600
MIN_RETURNS_IN_BUCKET = 10


@dataclass(frozen=True, slots=True)
class VolatilityReading:
    regime: str  # "compression" | "expansion" | "normal" | "unknown"
    percentile: float | None
    rv_per_sqrt_s: float | None
    amplifier: float

    @property
    def annualised(self) -> float | None:
        return None if self.rv_per_sqrt_s is None else self.rv_per_sqrt_s * math.sqrt(SECONDS_PER_YEAR)

    def signal(self) -> ComponentSignal:
        return ComponentSignal(
            0.0,
            {
                "data": self.regime != "unknown",
                "regime": self.regime,
                "percentile": rounded(self.percentile, 2),
                "rv_annualised": rounded(self.annualised, 4),
                "amplifier": self.amplifier,
            },
        )


def volatility(*, history: SymbolHistory, now_ms: int, config: AlphaConfig) -> VolatilityReading:
    cfg = config
    buckets = history.rv_buckets
    if history.bucket_n >= MIN_RETURNS_IN_BUCKET:
        current, reference = math.sqrt(history.bucket_sum_sq / history.bucket_n), buckets
    elif buckets:
        current, reference = buckets[-1], buckets[:-1]
    else:
        return VolatilityReading("unknown", None, None, 1.0)
    if not math.isfinite(current):
        return VolatilityReading("unknown", None, None, 1.0)
    if len(reference) < cfg.vol_min_buckets:
        return VolatilityReading("unknown", None, current, 1.0)
    below = sum(1 for b in reference if b < current)
    equal = sum(1 for b in reference if b == current)
    pct = 100.0 * (below + 0.5 * equal) / len(reference)
    if pct <= cfg.vol_compression_pct:
        return VolatilityReading("compression", pct, current, cfg.vol_amp_compression)
    if pct >= cfg.vol_expansion_pct:
        return VolatilityReading("expansion", pct, current, cfg.vol_amp_expansion)
    return VolatilityReading("normal", pct, current, 1.0)
