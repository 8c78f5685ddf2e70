"""Per-symbol reading bookkeeping (pure): the server-side same-side streak, the last-10 rolling window, and the
wire payload of `alpha_conviction` (which is also what the store keeps for REST and the trigger endpoint)."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any

from alpha.engine import ConvictionResult

ROLLING_WINDOW = 10


@dataclass(slots=True)
class SymbolTrack:
    """Streak of consecutive same-bias readings and the last ROLLING_WINDOW (ts_ms, score, bias)."""

    streak_side: str = "NEUTRAL"
    streak: int = 0
    streak_start_ms: int = 0
    readings: collections.deque[tuple[int, float, str]] = field(
        default_factory=lambda: collections.deque(maxlen=ROLLING_WINDOW)
    )
    last_input_ms: int | None = None  # the snapshot's updated_at last folded in
    last_analyzed: float = 0.0  # monotonic time of the last analyze

    def push(self, *, ts_ms: int, score: float, bias: str) -> None:
        if bias == self.streak_side:
            self.streak += 1
        else:
            self.streak_side, self.streak, self.streak_start_ms = bias, 1, ts_ms
        self.readings.append((ts_ms, round(score, 3), bias))

    def rolling_avg(self) -> float | None:
        if not self.readings:
            return None
        return round(math.fsum(r[1] for r in self.readings) / len(self.readings), 3)


def conviction_payload(
    *,
    result: ConvictionResult,
    track: SymbolTrack,
    price: float | None,
    rv_annual: float | None,
    win_probability: float | None,
) -> dict[str, Any]:
    """`alpha_conviction` data: the engine's wire shape plus streak, rolling window and raw market inputs."""
    data = result.as_dict()
    data["rolling_avg"] = track.rolling_avg()
    data["readings"] = list(track.readings)
    data["streak"] = {"side": track.streak_side, "count": track.streak, "start_ms": track.streak_start_ms}
    data["price"] = price
    data["rv_annual"] = rv_annual
    data["win_probability"] = win_probability
    return data


@dataclass(frozen=True, slots=True)
class Reading:
    """The latest stored reading of a symbol, as the gates see it."""

    symbol: str
    ts_ms: int
    score: float
    bias: str
    rr: float
    streak_side: str
    streak: int
    streak_start_ms: int
    rolling_avg: float | None
    price: float | None
    rv_annual: float | None

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Reading:
        streak = data.get("streak") or {}
        return cls(
            symbol=str(data["symbol"]),
            ts_ms=int(data["ts"]),
            score=float(data["score"]),
            bias=str(data["bias"]),
            rr=float(data.get("rr") or 0.0),
            streak_side=str(streak.get("side", "NEUTRAL")),
            streak=int(streak.get("count", 0)),
            streak_start_ms=int(streak.get("start_ms", 0)),
            rolling_avg=data.get("rolling_avg"),
            price=data.get("price"),
            rv_annual=data.get("rv_annual"),
        )
