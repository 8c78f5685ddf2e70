"""Max drawdown (bot guide: "Account drawdown limit"): the equity high-water mark per user, observed on every fresh
venue read of the account, and the per-user `drawdown` breaker it trips.

drawdown % = (peak − equity) / peak × 100, the peak being the highest equity seen since the breaker was last
reset. At the limit, orders that add risk are refused (`max_drawdown_reached`, and the breaker opens for
BREAKER_DRAWDOWN_COOLDOWN_SEC). When the breaker half-opens or an admin resets it, the peak is re-based to the
equity of that moment — trading resumes from there and a further fall of the limit trips it again.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from execution.models import BreakerKind, CircuitBreaker, EquityPeak
from execution.services import breakers
from execution.services.controls import limits_row_for
from execution.services.equity_peaks import drawdown_pct, peak_cache_set, peak_get

logger = logging.getLogger(__name__)


def equity_observe(*, user: User, equity: Decimal) -> Decimal | None:
    """Raise the high-water mark when equity is above it; trip, close or re-base the drawdown breaker."""
    peak = peak_get(user=user)
    if peak is None:
        try:
            with transaction.atomic():
                EquityPeak.objects.create(user=user, peak_equity=equity, last_equity=equity)
        except IntegrityError:
            pass  # another process created it first
        peak_cache_set(user.pk, equity)
        return Decimal(0)
    if equity > peak:
        EquityPeak.objects.filter(user=user, peak_equity__lt=equity).update(
            peak_equity=equity, peak_at=timezone.now(), last_equity=equity
        )
        peak_cache_set(user.pk, equity)
        peak = equity
    else:
        EquityPeak.objects.filter(user=user).update(last_equity=equity)  # what a re-base starts from
    dd = drawdown_pct(peak=peak, equity=equity)
    limit = limits_row_for(user=user).max_drawdown_pct
    row = CircuitBreaker.objects.filter(kind=BreakerKind.DRAWDOWN, user=user, tripped=True).first()
    now = timezone.now()
    if row is not None and row.cooldown_until is not None and row.cooldown_until <= now:
        # Half-open: trading resumes from today's equity (closing re-bases the peak).
        breakers.breaker_close(kind=BreakerKind.DRAWDOWN, user=user, evidence="cooldown passed; peak re-based")
        return Decimal(0)
    if dd is not None and dd >= limit and row is None:
        breakers.breaker_trip(
            kind=BreakerKind.DRAWDOWN,
            user=user,
            reason=f"equity {equity} is {dd.quantize(Decimal('0.01'))} % below its peak {peak} (limit {limit} %)",
            details={"equity": str(equity), "peak": str(peak), "drawdown_pct": str(dd)},
        )
    return dd
