"""Autonomous-execution gates (seed §22) as one pure function over typed inputs: no ORM, no I/O.

The services gather the inputs server-side (the latest stored reading and its streak, the user's auto mode,
the size computed from the user's equity and limits, the user's recent auto trades, controls and breakers) and
call `gates_evaluate`; every gate is reported, the first failing one is `blocked_by`. Nothing here trusts a
browser: the trigger endpoint only names a symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from kernel.contracts.records import fields_dict

LONG, SHORT, NONE = "LONG", "SHORT", "NONE"

# Gate codes, in evaluation order (stable: the API and the UI show them, tests assert on them).
KILL_SWITCH: Final = "kill_switch_engaged"
AUTO_HALTED: Final = "auto_trading_halted"
TRADING_DISABLED: Final = "server_trading_disabled"
BREAKER: Final = "circuit_breaker_open"
AUTO_MODE: Final = "auto_mode_off"
AGENT: Final = "execution_agent_not_ready"
NO_READING: Final = "conviction_unavailable"
STALE: Final = "conviction_stale"
SCORE: Final = "score_below_threshold"
STREAK: Final = "streak_too_short"
COOLDOWN: Final = "cooldown_active"
CONCURRENCY: Final = "max_concurrent_reached"
DUPLICATE: Final = "signal_already_traded"
SIZE: Final = "size_below_minimum"
VENUE_MIN: Final = "below_venue_minimum"

GATE_ORDER: Final = (
    KILL_SWITCH,
    AUTO_HALTED,
    TRADING_DISABLED,
    BREAKER,
    AUTO_MODE,
    AGENT,
    NO_READING,
    STALE,
    SCORE,
    STREAK,
    COOLDOWN,
    CONCURRENCY,
    DUPLICATE,
    SIZE,
    VENUE_MIN,
)

MESSAGES: Final[dict[str, str]] = {
    KILL_SWITCH: "The kill switch is engaged.",
    AUTO_HALTED: "Auto trading is halted by an operator.",
    TRADING_DISABLED: "Server-side trading is disabled.",
    BREAKER: "A circuit breaker is open.",
    AUTO_MODE: "Auto mode is off for this user (and RISK_AUTO_MODE_ENABLED is false).",
    AGENT: "No approved trading agent.",
    NO_READING: "No conviction reading for the symbol yet.",
    STALE: "The latest conviction reading is too old.",
    SCORE: "The score is not beyond the long/short threshold.",
    STREAK: "Not enough consecutive same-side readings.",
    COOLDOWN: "An auto trade on this symbol happened within the cooldown.",
    CONCURRENCY: "The maximum number of concurrent auto trades is open.",
    DUPLICATE: "This signal already produced an auto trade.",
    SIZE: "The computed size is below the minimum.",
    VENUE_MIN: "The computed size is below the venue minimum notional.",
}


@dataclass(frozen=True, slots=True)
class GateThresholds:
    min_score_long: float = 65.0
    max_score_short: float = 35.0
    min_streak: int = 5
    min_size_usd: Decimal = Decimal("5")
    venue_min_notional_usd: Decimal = Decimal("10")
    cooldown_ms: int = 60_000
    max_concurrent: int = 3
    stale_after_ms: int = 5_000


@dataclass(frozen=True, slots=True)
class GateInputs:
    now_ms: int
    kill_switch: bool = False
    auto_halted: bool = False
    trading_enabled: bool = True
    breakers: tuple[str, ...] = ()
    auto_mode: bool = False
    agent_ready: bool = True
    reading_ts_ms: int | None = None  # None = no reading at all
    score: float | None = None
    streak_side: str = NONE
    streak: int = 0
    last_trade_ms: int | None = None  # newest auto trade of this user on this symbol
    open_trades: int = 0
    already_traded: bool = False
    size_usd: Decimal | None = None  # None = not computed (an earlier gate failed)


@dataclass(frozen=True, slots=True)
class Gate:
    code: str
    ok: bool
    value: Any = None
    threshold: Any = None

    def as_dict(self) -> dict[str, Any]:
        return fields_dict(self)


@dataclass(frozen=True, slots=True)
class GateResult:
    side: str
    gates: tuple[Gate, ...] = field(default_factory=tuple)

    @property
    def blocked_by(self) -> str | None:
        return next((g.code for g in self.gates if not g.ok), None)

    @property
    def ok(self) -> bool:
        return self.blocked_by is None

    def as_dict(self) -> dict[str, Any]:
        blocked = self.blocked_by
        return {
            "ok": blocked is None,
            "side": self.side,
            "blocked_by": blocked,
            "message": MESSAGES.get(blocked, "") if blocked else "",
            "gates": [g.as_dict() for g in self.gates],
        }


def side_for(score: float | None, t: GateThresholds) -> str:
    """LONG at or above the long threshold, SHORT at or below the short one, else NONE."""
    if score is None:
        return NONE
    if score >= t.min_score_long:
        return LONG
    if score <= t.max_score_short:
        return SHORT
    return NONE


def gates_evaluate(inputs: GateInputs, thresholds: GateThresholds) -> GateResult:
    i, t = inputs, thresholds
    side = side_for(i.score, t)
    age = None if i.reading_ts_ms is None else max(0, i.now_ms - i.reading_ts_ms)
    streak = i.streak if i.streak_side == side else 0
    since = None if i.last_trade_ms is None else max(0, i.now_ms - i.last_trade_ms)
    size = i.size_usd
    gates = (
        Gate(KILL_SWITCH, not i.kill_switch, i.kill_switch, False),
        Gate(AUTO_HALTED, not i.auto_halted, i.auto_halted, False),
        Gate(TRADING_DISABLED, i.trading_enabled, i.trading_enabled, True),
        Gate(BREAKER, not i.breakers, list(i.breakers), []),
        Gate(AUTO_MODE, i.auto_mode, i.auto_mode, True),
        Gate(AGENT, i.agent_ready, i.agent_ready, True),
        Gate(NO_READING, i.reading_ts_ms is not None, i.reading_ts_ms, None),
        Gate(STALE, age is not None and age <= t.stale_after_ms, age, t.stale_after_ms),
        Gate(SCORE, side != NONE, i.score, {"long": t.min_score_long, "short": t.max_score_short}),
        Gate(STREAK, side != NONE and streak >= t.min_streak, streak, t.min_streak),
        Gate(COOLDOWN, since is None or since >= t.cooldown_ms, since, t.cooldown_ms),
        Gate(CONCURRENCY, i.open_trades < t.max_concurrent, i.open_trades, t.max_concurrent),
        Gate(DUPLICATE, not i.already_traded, i.already_traded, False),
        Gate(SIZE, size is not None and size >= t.min_size_usd, size, t.min_size_usd),
        Gate(VENUE_MIN, size is not None and size >= t.venue_min_notional_usd, size, t.venue_min_notional_usd),
    )
    return GateResult(side=side, gates=gates)


def general_blockers(
    *, kill_switch: bool, auto_halted: bool, trading_enabled: bool, breakers: tuple[str, ...], auto_mode_global: bool
) -> str | None:
    """What blocks auto trading for everyone (for the public governance view); None when nothing does."""
    if kill_switch:
        return KILL_SWITCH
    if auto_halted:
        return AUTO_HALTED
    if not trading_enabled:
        return TRADING_DISABLED
    if breakers:
        return BREAKER
    if not auto_mode_global:
        return AUTO_MODE
    return None
