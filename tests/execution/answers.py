"""The trading services return outcomes (execution.outcomes); these helpers give the answer the API gives for
them (execution.answers: status and serialised outcome), which is what the tests that use them assert on."""

from __future__ import annotations

from typing import Any

from execution.answers import http_answer
from execution.services import cancels, protection, relay


def order_submit(**kw: Any) -> tuple[int, dict[str, Any]]:
    return http_answer(relay.order_submit(**kw))


def order_cancel(**kw: Any) -> tuple[int, dict[str, Any]]:
    return http_answer(cancels.order_cancel(**kw))


def protection_set(**kw: Any) -> tuple[int, dict[str, Any]]:
    return http_answer(protection.protection_set(**kw))
