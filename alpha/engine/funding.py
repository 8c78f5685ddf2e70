"""Funding as a contrarian signal: crowded longs (extreme positive funding) are bearish, and vice versa.

Two z-scores: against the symbol's own funding history (when it has `funding_min_samples` points and any
spread), and against an absolute anchor, z_abs = (rate - funding_neutral) / funding_abs_scale, which catches
funding that has been extreme for the whole history (where the history z-score would read ~0). The larger
in magnitude is used: score = -sign(z) × clamp((|z| - z_dead) / (z_full - z_dead), 0, 1).
"""

from __future__ import annotations

from alpha.engine.config import AlphaConfig
from alpha.engine.inputs import SymbolHistory, mean_std
from alpha.engine.signal import ComponentSignal, at_or_before, clamp, rounded, sign


def funding_z(*, history: SymbolHistory, now_ms: int, config: AlphaConfig) -> ComponentSignal:
    cfg = config
    latest = at_or_before(history.funding, now_ms)
    if latest is None:
        return ComponentSignal.no_data()
    rate = latest.value
    z_abs = (rate - cfg.funding_neutral) / cfg.funding_abs_scale
    z_hist: float | None = None
    stats = history.funding_stats
    if stats is not None and stats[0] is history.funding and latest is history.funding[-1]:
        # Every point is at or before now: update()'s statistics over the whole series are exactly these.
        n, mean, std = len(history.funding), stats[1], stats[2]
    else:
        values = [p.value for p in history.funding if p.ts_ms <= now_ms]
        n = len(values)
        mean, std = mean_std(values) if n >= cfg.funding_min_samples else (0.0, 0.0)
    if n >= cfg.funding_min_samples and std > 1e-12:
        z_hist = (rate - mean) / std
    z = z_abs if z_hist is None or abs(z_abs) >= abs(z_hist) else z_hist
    strength = clamp((abs(z) - cfg.funding_z_dead) / (cfg.funding_z_full - cfg.funding_z_dead), 0.0, 1.0)
    return ComponentSignal(
        clamp(-sign(z) * strength),
        {"data": True, "rate": rate, "z": rounded(z, 4), "z_abs": rounded(z_abs, 4), "z_hist": rounded(z_hist, 4)},
    )
