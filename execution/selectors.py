"""Reads of the execution app (API and template context)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from execution.models import OPEN_STATES, CircuitBreaker, Fill, Order, PositionSnapshot
from execution.services.controls import controls_get, limits_row_for


def order_list(*, user: User, open_only: bool = False, limit: int = 100) -> QuerySet[Order]:
    qs = Order.objects.filter(user=user)
    if open_only:
        qs = qs.filter(state__in=[*OPEN_STATES, "unknown"])
    return qs.order_by("-created_at")[:limit]


def fill_list(*, user: User, limit: int = 100) -> QuerySet[Fill]:
    return Fill.objects.filter(user=user).order_by("-time", "-id")[:limit]


def position_list(*, user: User) -> QuerySet[PositionSnapshot]:
    return PositionSnapshot.objects.filter(user=user).order_by("symbol")


def controls_state(*, user: User | None) -> dict[str, Any]:
    """Kill switch, switches and the breakers that apply to `user` (global + own), for the banner."""
    c = controls_get()
    breakers = CircuitBreaker.objects.filter(tripped=True)
    rows = [
        {
            "kind": b.kind,
            "scope": "global" if b.user_id is None else "user",
            "reason": b.reason,
            "tripped_at_ms": int(b.tripped_at.timestamp() * 1000) if b.tripped_at else None,
        }
        for b in breakers
        if b.user_id is None or (user is not None and b.user_id == user.pk) or (user is not None and user.is_staff)
    ]
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
        }
        out["permissions"] = {
            "engage_kill_switch": user.role in ("admin", "operator"),
            "disengage_kill_switch": user.is_admin,
            "reset_breakers": user.is_admin,
        }
    return out
