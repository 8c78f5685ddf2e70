"""Fault injection shared by the control endpoint, CLI flags and the Python API (`sim.faults`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MALFORMED_FRAME = '{"channel":"l2Book","data":{"coin":'


@dataclass
class Faults:
    """Timed faults are deadlines on the monotonic clock; `drop_ws`/`malformed_frame` act immediately."""

    stall_until: float = 0.0
    rate_limit_until: float = 0.0
    latency_ms: int = 0
    blackhole_orders: int = 0
    _drop_cb: Callable[[], None] | None = field(default=None, repr=False)
    _malformed_cb: Callable[[], None] | None = field(default=None, repr=False)

    def drop_ws(self) -> None:
        """Close every WebSocket connection now."""
        if self._drop_cb:
            self._drop_cb()

    def malformed_frame(self) -> None:
        """Send one non-JSON frame to every WebSocket connection."""
        if self._malformed_cb:
            self._malformed_cb()

    def stall(self, seconds: float) -> None:
        """Suppress every WebSocket push for `seconds` (connections stay open)."""
        self.stall_until = time.monotonic() + seconds

    def rate_limit(self, seconds: float) -> None:
        """Answer HTTP 429 to every REST call for `seconds`."""
        self.rate_limit_until = time.monotonic() + seconds

    def latency(self, ms: int) -> None:
        """Delay every REST answer and WebSocket frame by `ms`."""
        self.latency_ms = max(0, int(ms))

    def blackhole(self, count: int) -> None:
        """Process the next `count` order actions but never answer them (the unknown-outcome case)."""
        self.blackhole_orders = max(0, int(count))

    def clear(self) -> None:
        self.stall_until = self.rate_limit_until = 0.0
        self.latency_ms = self.blackhole_orders = 0

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self.stall_until

    @property
    def rate_limited(self) -> bool:
        return time.monotonic() < self.rate_limit_until

    def take_blackhole(self) -> bool:
        if self.blackhole_orders > 0:
            self.blackhole_orders -= 1
            return True
        return False

    def snapshot(self) -> dict:
        now = time.monotonic()
        return {
            "stall_remaining_s": max(0.0, self.stall_until - now),
            "rate_limit_remaining_s": max(0.0, self.rate_limit_until - now),
            "latency_ms": self.latency_ms,
            "blackhole_orders": self.blackhole_orders,
        }
