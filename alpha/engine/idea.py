"""The downstream chain in one pure call: conviction → win probability → size → execution plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alpha.engine.config import DEFAULT_CONFIG, AlphaConfig
from alpha.engine.conviction import NEUTRAL, ConvictionResult
from alpha.engine.inputs import Book
from alpha.engine.plan import ExecutionPlan, plan_execution
from alpha.engine.probability import win_probability
from alpha.engine.sizing import SizingLimits, SizingResult, size_position


@dataclass(frozen=True, slots=True)
class TradeIdea:
    conviction: ConvictionResult
    win_probability: float
    sizing: SizingResult
    plan: ExecutionPlan

    def as_dict(self) -> dict[str, Any]:
        return {
            "conviction": self.conviction.as_dict(),
            "win_probability": self.win_probability,
            "sizing": self.sizing.as_dict(),
            "plan": self.plan.as_dict(),
        }


def trade_idea(
    *,
    conviction: ConvictionResult,
    equity_usd: object,
    price: object,
    book: Book | None,
    realised_vol_annual: object = None,
    current_exposure_usd: object = 0,
    limits: SizingLimits | None = None,
    config: AlphaConfig = DEFAULT_CONFIG,
) -> TradeIdea:
    side = conviction.bias if conviction.bias != NEUTRAL else "NONE"
    p = win_probability(score=conviction.score, side=side, config=config)
    sizing = size_position(
        side=side,
        win_probability=p,
        rr=conviction.rr,
        equity_usd=equity_usd,
        price=price,
        realised_vol_annual=realised_vol_annual,
        current_exposure_usd=current_exposure_usd,
        limits=limits,
        config=config,
    )
    plan = plan_execution(side=sizing.side, size_usd=sizing.size_usd, book=book, config=config)
    return TradeIdea(conviction=conviction, win_probability=p, sizing=sizing, plan=plan)
