"""Small shared pieces: the component output type and window helpers over time-ordered series."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TypeVar

T = TypeVar("T", bound=tuple[Any, ...])
_TS = itemgetter(0)  # the timestamp of a series item; a C-level key for bisect


@dataclass(frozen=True, slots=True)
class ComponentSignal:
    """One component's directional score in [-1, 1] and the raw inputs it was computed from (for the UI)."""

    score: float
    inputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def no_data(cls, reason: str = "no_data") -> ComponentSignal:
        return cls(0.0, {"data": False, "reason": reason})


def clamp(value: float, lo: float = -1.0, hi: float = 1.0) -> float:
    """Clamp; a non-finite value becomes 0.0 (no data) rather than leaking NaN downstream."""
    if not math.isfinite(value):
        return 0.0
    return lo if value < lo else hi if value > hi else value


def sign(value: float) -> float:
    return 1.0 if value > 0 else -1.0 if value < 0 else 0.0


def between(series: Sequence[T], start_ms: int, end_ms: int) -> Sequence[T]:
    """Items with start_ms <= ts <= end_ms (the series is sorted by its first field, epoch ms)."""
    lo = bisect_left(series, start_ms, key=_TS)
    hi = bisect_right(series, end_ms, key=_TS)
    return series[lo:hi]


def at_or_before(series: Sequence[T], ts_ms: int) -> T | None:
    i = bisect_right(series, ts_ms, key=_TS)
    return series[i - 1] if i else None


def rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)
