"""Data-quality guards for venue payloads (architecture seed §8): pure checks plus a throttled rejection log.

A guard returns None when the value is good and a stable reason string when it is not; the reason labels the
`hs_ingest_rejected_total` counter. Nothing here does I/O except `RejectionLog`, which only logs.
"""

from __future__ import annotations

import logging
import math
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)

BAD_PRICE: Final = "bad_price"
BAD_SIZE: Final = "bad_size"
BAD_SIDE: Final = "bad_side"
CROSSED_BOOK: Final = "crossed_book"
UNSORTED_BOOK: Final = "unsorted_book"
PRICE_JUMP: Final = "price_jump"
MALFORMED: Final = "malformed"
REASONS: Final = (BAD_PRICE, BAD_SIZE, BAD_SIDE, CROSSED_BOOK, UNSORTED_BOOK, PRICE_JUMP, MALFORMED)


_INF: Final = float("inf")


def parse_price(raw: object) -> float | None:
    """A venue price string as a float, or None if it is malformed, non-finite or not positive."""
    # Hot path (every level of every book): one float() and one chained comparison; NaN fails `0 < v`.
    if raw.__class__ is str:
        try:
            value = float(raw)  # type: ignore[arg-type]
        except ValueError:
            return None
        return value if 0.0 < value < _INF else None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    value = float(raw)
    return value if 0.0 < value < _INF else None


def parse_size(raw: object) -> float | None:
    """A venue size as a float, or None if negative, zero, NaN, infinite or malformed."""
    return parse_price(raw)


def _check_prices(pxs: Sequence[float], *, descending: bool) -> str | None:
    # C-level pairwise comparison (every book side of every flush runs this).
    ordered = all(map(operator.gt if descending else operator.lt, pxs, pxs[1:]))
    return None if ordered else UNSORTED_BOOK


def check_book_prices(*, bids: Sequence[float], asks: Sequence[float]) -> str | None:
    """Crossed (best bid >= best ask) or unsorted sides (price columns, best first) are rejected; one-sided books
    are allowed."""
    if bids and asks and bids[0] >= asks[0]:
        return CROSSED_BOOK
    return _check_prices(bids, descending=True) or _check_prices(asks, descending=False)


@dataclass(slots=True)
class JumpGuard:
    """Rejects a price whose log return from the last accepted one is beyond `sigma` standard deviations.

    The deviation is an EWMA of squared log returns with a floor (`min_std`, default 5 bp) so a quiet market
    does not reject ordinary ticks. After `max_consecutive` rejections in a row the new level is accepted and
    the guard re-anchors: a real repricing must not freeze the symbol forever.
    """

    sigma: float
    alpha: float = 0.05
    min_std: float = 0.0005
    warmup: int = 20
    max_consecutive: int = 5
    last: float | None = None
    var: float = 0.0
    samples: int = 0
    rejected_in_row: int = 0

    def _outside(self, r: float) -> bool:
        # Compared squared (r² > (sigma·std)²): no sqrt per price. Before warm-up the variance estimate is
        # unreliable: use a generous fixed bound (20 %).
        if self.samples >= self.warmup:
            var = self.var if self.var > self.min_std * self.min_std else self.min_std * self.min_std
            outside = r * r > self.sigma * self.sigma * var
        else:
            outside = r * r > 0.04
        return outside and self.rejected_in_row < self.max_consecutive

    def peek(self, px: float) -> str | None:
        """Would `check` reject `px`? Does not change the state (books are checked against the mid anchor)."""
        last = self.last
        if last is None or px == last:
            return None
        return PRICE_JUMP if self._outside(math.log(px / last)) else None

    def check(self, px: float) -> str | None:
        """Accept (update the state, return None) or reject (return PRICE_JUMP)."""
        last = self.last
        if last is None:
            self.last = px
            return None
        # Hot path (every trade and mid): an unchanged price is the common case and needs no log.
        r = 0.0 if px == last else math.log(px / last)
        if r != 0.0 and self._outside(r):
            self.rejected_in_row += 1
            return PRICE_JUMP
        if self.rejected_in_row:
            if self.rejected_in_row >= self.max_consecutive:
                self.var = max(self.var, r * r)
            self.rejected_in_row = 0
        self.var = (1 - self.alpha) * self.var + self.alpha * r * r if self.samples else r * r
        self.samples += 1
        self.last = px
        return None


class RejectionLog:
    """Logs each (reason, symbol) at most once per `every_sec`, with how many were suppressed meanwhile."""

    def __init__(self, *, every_sec: float) -> None:
        self.every_sec = every_sec
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def warn(self, *, reason: str, symbol: str, detail: str, source: str = "hyperliquid") -> None:
        key = (reason, symbol)
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.every_sec:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        logger.warning(
            "rejected venue payload",
            extra={"reason": reason, "symbol": symbol, "source": source, "detail": detail, "suppressed": suppressed},
        )
