"""Pure gate evaluation: every gate blocks on its own, and a qualifying input passes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from alpha import gates as g

NOW = 1_763_779_200_000
T = g.GateThresholds()
PASSING = g.GateInputs(
    now_ms=NOW,
    auto_mode=True,
    reading_ts_ms=NOW - 200,
    score=72.0,
    streak_side="LONG",
    streak=6,
    size_usd=Decimal("250"),
)


def test_a_qualifying_long_passes_every_gate() -> None:
    result = g.gates_evaluate(PASSING, T)
    assert result.ok and result.side == "LONG" and result.blocked_by is None
    assert [x.code for x in result.gates] == list(g.GATE_ORDER)


def test_a_qualifying_short_passes_at_or_below_35() -> None:
    result = g.gates_evaluate(replace(PASSING, score=35.0, streak_side="SHORT"), T)
    assert result.ok and result.side == "SHORT"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"score": 64.9, "streak_side": "NEUTRAL"}, g.SCORE),
        ({"score": 35.1, "streak_side": "SHORT"}, g.SCORE),
        ({"streak": 4}, g.STREAK),
        ({"streak_side": "SHORT"}, g.STREAK),  # a SHORT streak does not qualify a LONG
        ({"auto_mode": False}, g.AUTO_MODE),
        ({"size_usd": Decimal("4.99")}, g.SIZE),
        ({"size_usd": None}, g.SIZE),
        ({"last_trade_ms": NOW - 59_999}, g.COOLDOWN),
        ({"open_trades": 3}, g.CONCURRENCY),
        ({"kill_switch": True}, g.KILL_SWITCH),
        ({"breakers": ("error_rate",)}, g.BREAKER),
        ({"auto_halted": True}, g.AUTO_HALTED),
        ({"trading_enabled": False}, g.TRADING_DISABLED),
        ({"agent_ready": False}, g.AGENT),
        ({"reading_ts_ms": None}, g.NO_READING),
        ({"reading_ts_ms": NOW - 5_001}, g.STALE),
        ({"already_traded": True}, g.DUPLICATE),
    ],
)
def test_each_gate_blocks_on_its_own(change: dict[str, object], code: str) -> None:
    result = g.gates_evaluate(replace(PASSING, **change), T)  # type: ignore[arg-type]
    assert not result.ok
    assert result.blocked_by == code
    # Only that gate fails, apart from the gates that depend on it (no side → no streak; no size → no venue
    # minimum; no reading → not fresh).
    dependents = {g.SCORE: {g.STREAK}, g.SIZE: {g.VENUE_MIN}, g.NO_READING: {g.STALE}}
    assert {x.code for x in result.gates if not x.ok} <= {code} | dependents.get(code, set())


def test_the_venue_minimum_blocks_a_size_between_5_and_10_dollars() -> None:
    result = g.gates_evaluate(replace(PASSING, size_usd=Decimal("7")), T)
    assert result.blocked_by == g.VENUE_MIN


def test_cooldown_ends_after_60_seconds() -> None:
    assert g.gates_evaluate(replace(PASSING, last_trade_ms=NOW - 60_000), T).ok


def test_thresholds_are_configurable() -> None:
    t = replace(T, min_score_long=80.0, min_streak=10)
    assert g.gates_evaluate(PASSING, t).blocked_by == g.SCORE
    assert g.gates_evaluate(replace(PASSING, score=85.0), t).blocked_by == g.STREAK


def test_the_answer_names_the_blocking_gate_and_lists_all() -> None:
    body = g.gates_evaluate(replace(PASSING, open_trades=5), T).as_dict()
    assert body["blocked_by"] == "max_concurrent_reached" and body["message"]
    assert {x["code"] for x in body["gates"]} == set(g.GATE_ORDER)
