"""Trading controls (switches, admin-only mode) and risk limits (circuit breakers: execution.services.breakers).

Controls are read from the database on every submit — no in-process copy — so a kill switch engaged by any
process (admin action, management command, operator button) blocks new orders everywhere at once.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import User
from execution.audit import audit_append
from execution.models import RiskLimits, TradingControls
from execution.risk import Limits
from kernel.errors import PermissionDenied

logger = logging.getLogger(__name__)

# Bot guide "Risk Limits (Default)": testnet column for sim/testnet, production column for mainnet.
_TESTNET_LIMITS: dict[str, Any] = {
    "max_position_usd": Decimal(1000),
    "max_total_exposure_usd": Decimal(5000),
    "max_daily_loss_usd": Decimal(100),
    "stop_loss_pct": Decimal(5),
    "max_drawdown_pct": Decimal(15),
    "max_leverage": 10,
    "max_slippage_bps": 100,
}
DEFAULT_LIMITS: dict[str, dict[str, Any]] = {
    "sim": dict(_TESTNET_LIMITS),
    "testnet": dict(_TESTNET_LIMITS),
    "mainnet": {
        "max_position_usd": Decimal(500),
        "max_total_exposure_usd": Decimal(2500),
        "max_daily_loss_usd": Decimal(50),
        "stop_loss_pct": Decimal(3),
        "max_drawdown_pct": Decimal(10),
        "max_leverage": 5,
        "max_slippage_bps": 50,
    },
}


def actor_name(user: User | None, fallback: str = "system") -> str:
    return f"{user.role}:{user.address}" if user is not None else fallback


# --- controls ---------------------------------------------------------------------------------------------
def controls_get() -> TradingControls:
    """The one controls row, created with the settings' defaults on first use."""
    row = TradingControls.objects.filter(pk=1).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return TradingControls.objects.create(
                pk=1,
                server_trading_enabled=settings.ENABLE_SERVER_SIDE_TRADING,
                admin_only=settings.REQUIRE_ADMIN_FOR_SERVER_TRADING,
            )
    except IntegrityError:
        return TradingControls.objects.get(pk=1)


def trading_configure(
    *, actor: User, server_trading_enabled: bool | None = None, admin_only: bool | None = None, reason: str = ""
) -> TradingControls:
    """Admin only: switch server-side trading or admin-only mode at runtime (audited)."""
    if not actor.is_admin:
        raise PermissionDenied("only admins change trading controls")
    controls_get()
    with transaction.atomic():
        row = TradingControls.objects.select_for_update().get(pk=1)
        before = {"server_trading_enabled": row.server_trading_enabled, "admin_only": row.admin_only}
        if server_trading_enabled is not None:
            row.server_trading_enabled = server_trading_enabled
        if admin_only is not None:
            row.admin_only = admin_only
        row.updated_by = actor_name(actor)
        row.save()
    audit_append(
        event="controls.changed",
        user_id=actor.pk,
        actor=actor_name(actor),
        data={
            "before": before,
            "after": {"server_trading_enabled": row.server_trading_enabled, "admin_only": row.admin_only},
            "reason": reason,
        },
    )
    return row


# --- limits -----------------------------------------------------------------------------------------------
def _default_limits_row(environment: str) -> RiskLimits:
    row = RiskLimits.objects.filter(user__isnull=True, environment=environment).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return RiskLimits.objects.create(user=None, environment=environment, **DEFAULT_LIMITS[environment])
    except IntegrityError:
        return RiskLimits.objects.get(user__isnull=True, environment=environment)


def limits_row_for(*, user: User) -> RiskLimits:
    env = settings.HYPERSENTRY_VENUE
    return RiskLimits.objects.filter(user=user, environment=env).first() or _default_limits_row(env)


def limits_for(*, user: User) -> Limits:
    row = limits_row_for(user=user)
    return Limits(
        max_position_usd=row.max_position_usd,
        max_total_exposure_usd=row.max_total_exposure_usd,
        max_daily_loss_usd=row.max_daily_loss_usd,
        max_leverage=row.max_leverage,
        max_slippage_bps=row.max_slippage_bps,
        max_drawdown_pct=row.max_drawdown_pct,
    )
