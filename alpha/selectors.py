"""Reads: alpha settings, the stored readings (written by the pipeline into the cache — Redis in split
topologies, so every web process reads what the worker computed), auto mode and presence."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Final

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from accounts.models import User
from alpha.engine import AlphaConfig, AlphaConfigError
from alpha.gates import GateThresholds
from alpha.models import ACTIVE_STATUSES, AlphaSettings, AutoTrade, AutoTradeSettings
from kernel import clock
from markets.hotstate import get_hot_state

CONVICTION_KEY: Final = "alpha:conv:{}"
INDEX_KEY: Final = "alpha:index"
PRESENCE_KEY: Final = "alpha:presence"
STORE_TTL_SEC: Final = 600
PRESENCE_TTL_SEC: Final = 60


def alpha_settings_get() -> AlphaSettings:
    """The one settings row, created with the defaults on first use."""
    row = AlphaSettings.objects.filter(pk=1).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return AlphaSettings.objects.create(pk=1)
    except IntegrityError:
        return AlphaSettings.objects.get(pk=1)


def thresholds_from(row: AlphaSettings) -> GateThresholds:
    return GateThresholds(
        min_score_long=float(row.min_score_long),
        max_score_short=float(row.max_score_short),
        min_streak=int(row.min_streak),
        min_size_usd=Decimal(row.min_size_usd),
        venue_min_notional_usd=Decimal(row.venue_min_notional_usd),
        cooldown_ms=int(row.cooldown_sec) * 1000,
        max_concurrent=int(row.max_concurrent),
        stale_after_ms=int(row.stale_after_ms),
    )


def engine_config_from(row: AlphaSettings) -> AlphaConfig:
    """The admin's overrides; a row that somehow holds an invalid config falls back to the defaults."""
    try:
        return AlphaConfig.from_dict(row.engine_config or {})
    except (AlphaConfigError, TypeError, ValueError):
        return AlphaConfig()


# --- stored readings ------------------------------------------------------------------------------------------
def conviction_envelope_get(*, symbol: str) -> dict[str, Any] | None:
    raw = cache.get(CONVICTION_KEY.format(symbol.upper()))
    return None if raw is None else dict(orjson.loads(raw))


def conviction_index_get() -> dict[str, dict[str, Any]]:
    raw = cache.get(INDEX_KEY)
    return {} if raw is None else dict(orjson.loads(raw))


def conviction_get(*, symbol: str, now_ms: int | None = None, stale_after_ms: int = 5000) -> dict[str, Any] | None:
    """The REST view of a symbol's latest reading (None when there is none)."""
    env = conviction_envelope_get(symbol=symbol)
    if env is None:
        return None
    data = env["data"]
    now_ms = now_ms if now_ms is not None else clock.now_ms()
    age = max(0, now_ms - int(env["ts_ms"]))
    return {
        "symbol": data["symbol"],
        "score": data["score"],
        "bias": data["bias"],
        "rolling_avg": data.get("rolling_avg"),
        "rolling_window": len(data.get("readings") or []),
        "readings": [{"ts": r[0], "score": r[1], "bias": r[2]} for r in data.get("readings") or []],
        "streak": data.get("streak"),
        "rr": data.get("rr"),
        "win_probability": data.get("win_probability"),
        "price": data.get("price"),
        "volatility_regime": data.get("volatility_regime"),
        "decay_factor": data.get("decay_factor"),
        "age_s": data.get("age_s"),
        "btc_blend_applied": data.get("btc_blend_applied"),
        "components": data.get("components"),
        "ts": data.get("ts"),
        "signal_ts": data.get("signal_ts"),
        "seq": env.get("seq"),
        "age_ms": age,
        "stale": age > stale_after_ms,
    }


def known_symbol(*, symbol: str) -> bool:
    """A symbol the venue/ingest knows (hot state or universe) or that has a stored reading."""

    sym = symbol.upper()
    state = get_hot_state()
    if state.get_sync(sym) is not None or sym in conviction_index_get():
        return True
    universe = state.get_universe_sync() or []
    return any(str(t.get("name", "")).upper() == sym for t in universe)


# --- users ------------------------------------------------------------------------------------------------------
def auto_mode_get(*, user: User) -> bool:
    """Auto mode for the user: their own switch, or everyone when RISK_AUTO_MODE_ENABLED."""
    if settings.RISK_AUTO_MODE_ENABLED:
        return True
    return AutoTradeSettings.objects.filter(user=user, auto_mode=True).exists()


def auto_mode_user_ids(*, limit: int) -> list[int]:
    return list(
        AutoTradeSettings.objects.filter(auto_mode=True, user__is_active=True).values_list("user_id", flat=True)[:limit]
    )


def presence_user_ids() -> set[int]:
    """Users who had the alpha page open within PRESENCE_TTL_SEC (any web process)."""
    raw = cache.get(PRESENCE_KEY) or {}
    now = time.time()
    return {int(uid) for uid, until in raw.items() if until > now}


def auto_trades_open_count(*, user: User) -> int:
    return AutoTrade.objects.filter(user=user, status__in=ACTIVE_STATUSES).count()


def auto_trades_recent(*, user: User, limit: int = 10) -> list[dict[str, Any]]:
    rows = AutoTrade.objects.filter(user=user).order_by("-created_at")[:limit]
    return [auto_trade_dict(r) for r in rows]


def auto_trade_dict(row: AutoTrade) -> dict[str, Any]:
    return {
        "id": row.pk,
        "symbol": row.symbol,
        "side": row.side,
        "signal_ts": row.signal_ts_ms,
        "reading_ts": row.reading_ts_ms,
        "score": row.score,
        "streak": row.streak,
        "size_usd": str(row.size_usd),
        "order_id": row.order_id,
        "status": row.status,
        "reason": row.reason,
        "trigger": row.trigger,
        "idempotency_key": row.idempotency_key,
        "correlation_id": row.correlation_id,
        "created_at": int(row.created_at.timestamp() * 1000),
    }


def conviction_list(*, now_ms: int) -> dict[str, Any]:
    """Every symbol's latest reading with its age and whether it is stale (the alpha settings' threshold)."""
    row = alpha_settings_get()
    index = conviction_index_get()
    for item in index.values():
        item["age_ms"] = max(0, now_ms - int(item.get("ts") or 0))
        item["stale"] = item["age_ms"] > row.stale_after_ms
    return {"ts": now_ms, "count": len(index), "symbols": index}
