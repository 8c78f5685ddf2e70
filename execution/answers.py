"""The HTTP answer for a trading outcome: how the API speaks what the services decided. The idempotency layer
stores this answer with the key, so a replay answers exactly the same."""

from __future__ import annotations

from typing import Any

from execution.outcomes import Outcome, Result

STATUS = {Result.REFUSED: 422, Result.RATE_LIMITED: 429, Result.PENDING: 202}


def http_status(outcome: Outcome) -> int:
    """201 for an action that placed orders and took effect, 200 for one on an existing order (a cancel), 202 while
    the venue's answer is not known, 422 refused, 429 not executed for pace."""
    if outcome.result == Result.DONE:
        return 201 if outcome.creates else 200
    return STATUS[outcome.result]


def http_answer(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    return http_status(outcome), outcome.to_dict()
