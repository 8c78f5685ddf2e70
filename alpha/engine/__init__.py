"""The pure, ORM-free alpha engine: rolling history → components → conviction → probability → size → plan.

Nothing here does I/O or touches Django; the pipeline worker feeds `update()` and calls `analyze()`.
See docs/alpha.md.
"""

from alpha.engine.config import DEFAULT_CONFIG, AlphaConfig, AlphaConfigError
from alpha.engine.conviction import (
    BtcReference,
    ComponentBreakdown,
    ConvictionEngine,
    ConvictionResult,
    combine,
    decay_factor,
    transform,
)
from alpha.engine.idea import TradeIdea, trade_idea
from alpha.engine.inputs import SymbolHistory, empty_history, update
from alpha.engine.plan import ExecutionPlan, PlanSlice, plan_execution
from alpha.engine.probability import long_probability, win_probability
from alpha.engine.signal import ComponentSignal
from alpha.engine.sizing import SizingLimits, SizingResult, kelly_fraction, size_position
from alpha.engine.volatility import VolatilityReading, volatility

__all__ = [
    "DEFAULT_CONFIG",
    "AlphaConfig",
    "AlphaConfigError",
    "BtcReference",
    "ComponentBreakdown",
    "ComponentSignal",
    "ConvictionEngine",
    "ConvictionResult",
    "ExecutionPlan",
    "PlanSlice",
    "SizingLimits",
    "SizingResult",
    "SymbolHistory",
    "TradeIdea",
    "VolatilityReading",
    "combine",
    "decay_factor",
    "empty_history",
    "kelly_fraction",
    "long_probability",
    "plan_execution",
    "size_position",
    "trade_idea",
    "transform",
    "update",
    "volatility",
    "win_probability",
]
