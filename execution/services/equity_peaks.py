"""The equity high-water mark per user (what max drawdown is measured from): read, cached, re-based.

drawdown % = (peak − equity) / peak × 100. execution.services.drawdown observes equity and trips the breaker;
a reset of that breaker (execution.services.breakers) re-bases the peak here.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.cache import cache
from django.utils import timezone

from accounts.models import User
from execution.audit import audit_append
from execution.models import EquityPeak
from kernel.cache_safe import cache_call

HUNDRED = Decimal(100)


def drawdown_pct(*, peak: Decimal | None, equity: Decimal | None) -> Decimal | None:
    """Pure: percent below the peak (0 at or above it); None when either is unknown or the peak is not positive."""
    if peak is None or equity is None or peak <= 0:
        return None
    return max(Decimal(0), (peak - equity) / peak * HUNDRED)


def _peak_key(user_id: int) -> str:
    return f"exec:peak:{user_id}"


def peak_get(*, user: User) -> Decimal | None:
    cached = cache_call(lambda: cache.get(_peak_key(user.pk)), fallback=None, what="equity_peak")
    if cached is not None:
        return Decimal(cached)
    row = EquityPeak.objects.filter(user=user).first()
    if row is None:
        return None
    peak_cache_set(user.pk, row.peak_equity)
    return row.peak_equity


def peak_cache_set(user_id: int, value: Decimal | None) -> None:
    if value is None:
        cache_call(lambda: cache.delete(_peak_key(user_id)), fallback=False, what="equity_peak")
    else:
        cache_call(lambda: cache.set(_peak_key(user_id), str(value), 300), fallback=None, what="equity_peak")


def peak_rebase(*, user: User, reason: str) -> None:
    """The peak becomes the last observed equity (after a reset or a half-open drawdown breaker)."""
    row = EquityPeak.objects.filter(user=user).first()
    if row is None or row.last_equity is None:
        peak_cache_set(user.pk, None)
        return
    before = row.peak_equity
    EquityPeak.objects.filter(pk=row.pk).update(peak_equity=row.last_equity, peak_at=timezone.now())
    peak_cache_set(user.pk, row.last_equity)
    audit_append(
        event="drawdown.peak_rebased",
        user_id=user.pk,
        actor="system",
        data={"before": str(before), "after": str(row.last_equity), "reason": reason},
    )
