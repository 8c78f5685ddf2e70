"""Per-IP REST weight budget (1200 per minute on the venue), as a token bucket refilling continuously."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class IpWeightLimiter:
    def __init__(self, *, weight_per_minute: int = 1200, enabled: bool = True) -> None:
        self.capacity = float(weight_per_minute)
        self.rate = weight_per_minute / 60.0
        self.enabled = enabled
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, *, ip: str, weight: int, now_s: float) -> bool:
        """Charge `weight` to `ip`; False (→ HTTP 429) when the budget is exhausted."""
        if not self.enabled:
            return True
        b = self._buckets.get(ip)
        if b is None:
            b = self._buckets[ip] = _Bucket(self.capacity, now_s)
        b.tokens = min(self.capacity, b.tokens + (now_s - b.updated) * self.rate)
        b.updated = now_s
        if b.tokens < weight:
            return False
        b.tokens -= weight
        return True

    def charge_after(self, *, ip: str, weight: int) -> None:
        """Extra weight known only after answering (items returned); may take the bucket negative."""
        if self.enabled and ip in self._buckets:
            self._buckets[ip].tokens -= weight


def exchange_weight(*, batch_len: int) -> int:
    return 1 + batch_len // 40
