"""Execution plan: how to work a sized order against the visible book.

depth = notional on the side we take (asks for a buy, bids for a sell) within plan_depth_bps of mid.
ratio = size / depth:
- ratio <= plan_single_max_ratio (10 %)  → one marketable limit at the touch (best ask / best bid);
- ratio <= plan_ladder_max_ratio (50 %)  → plan_ladder_levels passive limits from our touch to
  plan_ladder_span_bps away (equal USD per level);
- otherwise, or no visible depth          → TWAP: slices of at most plan_twap_slice_ratio × depth, one every
  plan_twap_interval_s, between 2 and plan_twap_max_slices slices; priced at execution time (price None).

Prices are intended levels as Decimal (8 significant digits); the execution relay rounds them to the venue's
tick and lot rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alpha.engine.config import DEFAULT_CONFIG, AlphaConfig
from alpha.engine.inputs import Book, parse_book, positive
from alpha.engine.sizing import ZERO, to_decimal, usd
from kernel.contracts.records import fields_dict

SINGLE, LADDER, TWAP, NONE = "single", "ladder", "twap", "none"


@dataclass(frozen=True, slots=True)
class PlanSlice:
    price: Decimal | None  # None = price at execution time (TWAP)
    size_usd: Decimal
    delay_s: float

    def as_dict(self) -> dict[str, Any]:
        return fields_dict(self)


@dataclass(frozen=True, slots=True)
class ExecutionPlan:
    kind: str  # single | ladder | twap | none
    side: str
    size_usd: Decimal
    depth_usd: Decimal
    depth_ratio: float | None
    slices: tuple[PlanSlice, ...]
    note: str = "intended levels; the relay rounds prices and sizes to tick/lot rules"

    def as_dict(self) -> dict[str, Any]:
        return {**fields_dict(self), "slices": [s.as_dict() for s in self.slices]}


def visible_depth(book: Book, *, buy: bool, bps: float) -> float:
    mid = book.mid()
    if mid is None:
        return 0.0
    if buy:
        return sum(px * sz for px, sz in book.asks if px <= mid * (1 + bps / 1e4))
    return sum(px * sz for px, sz in book.bids if px >= mid * (1 - bps / 1e4))


def plan_execution(
    *, side: str, size_usd: object, book: Book | dict[str, Any] | None, config: AlphaConfig = DEFAULT_CONFIG
) -> ExecutionPlan:
    cfg = config
    side_u = side.upper() if isinstance(side, str) else ""
    size = positive(size_usd)
    if isinstance(book, dict):
        book = parse_book(book, 1, cfg.book_levels)
    if side_u not in ("LONG", "SHORT") or size is None:
        return ExecutionPlan(NONE, side_u or "NONE", ZERO, ZERO, None, ())
    buy = side_u == "LONG"
    depth = visible_depth(book, buy=buy, bps=cfg.plan_depth_bps) if isinstance(book, Book) else 0.0
    ratio = size / depth if depth > 0 else None
    total = usd(size)
    if ratio is not None and ratio <= cfg.plan_single_max_ratio and isinstance(book, Book):
        touch = book.asks[0][0] if buy else book.bids[0][0]
        return ExecutionPlan(SINGLE, side_u, total, usd(depth), ratio, (PlanSlice(to_decimal(touch), total, 0.0),))
    if ratio is not None and ratio <= cfg.plan_ladder_max_ratio and isinstance(book, Book):
        return ExecutionPlan(LADDER, side_u, total, usd(depth), ratio, _ladder(book, buy, size, cfg))
    n = math.ceil(size / (depth * cfg.plan_twap_slice_ratio)) if depth > 0 else cfg.plan_twap_max_slices
    n = max(2, min(cfg.plan_twap_max_slices, n))
    slices = tuple(PlanSlice(None, usd(size / n), i * cfg.plan_twap_interval_s) for i in range(n))
    return ExecutionPlan(TWAP, side_u, total, usd(depth), ratio, slices)


def _ladder(book: Book, buy: bool, size: float, cfg: AlphaConfig) -> tuple[PlanSlice, ...]:
    """Passive levels from our own touch away from the market: a buy ladders down from the best bid."""
    n = cfg.plan_ladder_levels
    touch = book.bids[0][0] if buy else book.asks[0][0]
    step = touch * cfg.plan_ladder_span_bps / 1e4 / max(1, n - 1)
    direction = -1.0 if buy else 1.0
    per = usd(size / n)
    return tuple(PlanSlice(to_decimal(touch + direction * step * i), per, 0.0) for i in range(n))
