"""Score → win probability. An UNCALIBRATED heuristic mapping, not a fitted model.

p_long(score) = floor + (ceiling - floor) / (1 + exp(-slope × (score - 50)))

Centred at 50 (p = 0.5), slope 0.03 so that 65 → ~0.60 (and 35 → ~0.40), bounded to [floor, ceiling] =
[0.05, 0.95] (at 100 it reaches ~0.79). A short's win probability is 1 - p_long. Replace the three numbers
with a fitted calibration (e.g. isotonic or Platt on logged outcomes) once there is trade history.
"""

from __future__ import annotations

import math

from alpha.engine.config import DEFAULT_CONFIG, AlphaConfig
from alpha.engine.inputs import finite

LONG, SHORT = "LONG", "SHORT"


def long_probability(score: object, *, config: AlphaConfig = DEFAULT_CONFIG) -> float:
    """Monotonic non-decreasing in score; garbage or missing score = 0.5 (no information)."""
    s = finite(score)
    if s is None:
        return 0.5
    s = min(100.0, max(0.0, s))
    span = config.prob_ceiling - config.prob_floor
    return config.prob_floor + span / (1.0 + math.exp(-config.prob_slope * (s - 50.0)))


def win_probability(*, score: object, side: str, config: AlphaConfig = DEFAULT_CONFIG) -> float:
    """Probability that a trade on `side` (LONG/SHORT, case-insensitive) wins; 0.5 for anything else."""
    p = long_probability(score, config=config)
    side_u = side.upper() if isinstance(side, str) else ""
    if side_u == LONG:
        return p
    if side_u == SHORT:
        return 1.0 - p
    return 0.5
