"""The one clock helper: wall-clock milliseconds since the epoch, the unit of every `*_ts` / `ts_ms` on the wire
and in the hot state. (Durations are measured with time.monotonic / perf_counter, never with this.)"""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
