"""Reads of the execution app (API and template context)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import User
from execution import pnl
from execution.models import OPEN_STATES, Fill, Order
from execution.services.controls import controls_get, limits_row_for

ZERO = Decimal(0)


def order_list(*, user: User, open_only: bool = False, limit: int = 100) -> QuerySet[Order]:
    qs = Order.objects.filter(user=user)
    if open_only:
        qs = qs.filter(state__in=[*OPEN_STATES, "unknown"])
    return qs.order_by("-created_at")[:limit]


def fill_list(*, user: User, limit: int = 100) -> QuerySet[Fill]:
    return Fill.objects.filter(user=user).order_by("-time", "-id")[:limit]


def daily_pnl(*, user: User) -> Decimal:
    """Today's (UTC) realised PnL net of every fee paid today."""
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    agg = Fill.objects.filter(user=user, time__gte=start).aggregate(p=Sum("closed_pnl"), f=Sum("fee"))
    return (agg["p"] or ZERO) - (agg["f"] or ZERO)


def closing_trades(*, user: User, limit: int = 200) -> list[tuple[datetime, Decimal]]:
    """The user's recent closing trades, oldest first: (time, net PnL) — one closing order is one trade."""
    rows = list(
        Fill.objects.filter(user=user)
        .order_by("-time", "-id")
        .values_list("venue_oid", "tid", "time", "closed_pnl", "fee", "direction")[:limit]
    )
    closing = [
        pnl.ClosingFill(
            order_key=str(oid if oid is not None else f"t{tid}"),
            time_ms=int(t.timestamp() * 1000),
            net_pnl=closed - fee,
        )
        for oid, tid, t, closed, fee, direction in reversed(rows)
        if pnl.is_closing(closed_pnl=closed, direction=direction)
    ]
    return [(datetime.fromtimestamp(ms / 1000, tz=UTC), net) for ms, net in pnl.trades_from_fills(closing)]


def controls_state(*, user: User | None) -> dict[str, Any]:
    """Kill switch, switches and the breakers that apply to `user` (global + own), for the banner."""
    from execution.services.breakers import breaker_rows  # services import these selectors

    c = controls_get()
    rows = breaker_rows(user=user, staff=user is not None and user.is_staff)
    out: dict[str, Any] = {
        "server_trading_enabled": c.server_trading_enabled,
        "admin_only": c.admin_only,
        "auto_trading_halted": c.auto_trading_halted,
        "kill_switch": {
            "engaged": c.kill_switch_engaged,
            "reason": c.kill_reason,
            "by": c.kill_by,
            "at_ms": int(c.kill_at.timestamp() * 1000) if c.kill_at else None,
        },
        "breakers": rows,
    }
    if user is not None:
        lim = limits_row_for(user=user)
        out["limits"] = {
            "environment": lim.environment,
            "max_position_usd": str(lim.max_position_usd),
            "max_total_exposure_usd": str(lim.max_total_exposure_usd),
            "max_daily_loss_usd": str(lim.max_daily_loss_usd),
            "max_leverage": lim.max_leverage,
            "max_slippage_bps": lim.max_slippage_bps,
            "stop_loss_pct": str(lim.stop_loss_pct),
            "max_drawdown_pct": str(lim.max_drawdown_pct),
            "consecutive_losses": lim.consecutive_losses,
        }
        out["permissions"] = {
            "engage_kill_switch": user.role in ("admin", "operator"),
            "disengage_kill_switch": user.is_admin,
            "reset_breakers": user.is_admin,
        }
    return out
