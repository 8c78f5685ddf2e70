"""Idempotency-Key handling (Stripe semantics / IETF draft), scoped per user.

* missing or malformed key → 400; same key + same payload, finished → the stored first response (even an error);
  same key + different payload → 422; same key while the first is in flight → 409.
* The claim is a unique (user, key) row inserted before any venue call. Keys are kept at least 24 h
  (EXECUTION_IDEMPOTENCY_TTL_HOURS, default 48) and purged by a periodic job after that.
* A 5xx is NEVER stored. If an order of the key reached the venue, the stored answer is 202 with the order as it
  stands (reconciliation resolves it; a client retrying with a NEW key would double the position). If nothing was
  sent, the key is released and the 5xx goes back unstored: the client may retry with the same key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from execution import metrics
from execution.answers import http_answer
from execution.audit import canonical
from execution.models import IdempotencyRecord, IdempotencyStatus
from execution.outcomes import Outcome, Result
from execution.services.orders import order_dict, orders_abandon_unsent, orders_reached_venue
from kernel.errors import ApplicationError, DependencyUnavailable, is_dependency_failure

logger = logging.getLogger(__name__)

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-:.]{7,127}$")


def process_instance() -> str:
    """host:pid of this process — the owner of the requests it claims (as components' heartbeats name it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def key_validate(key: str | None) -> str:
    if key is None or key == "":
        raise ApplicationError("the Idempotency-Key header is required", code="idempotency_key_missing", status=400)
    if not KEY_RE.fullmatch(key):
        raise ApplicationError(
            "Idempotency-Key must be 8-128 characters of letters, digits, '-', '_', ':' or '.' (a UUID works)",
            code="idempotency_key_malformed",
            status=400,
        )
    return key


def request_hash(*, endpoint: str, payload: Any) -> str:
    return hashlib.sha256(f"{endpoint}|{canonical(payload)}".encode()).hexdigest()


def request_hash_safe(*, endpoint: str, payload: Any) -> str:
    try:
        return request_hash(endpoint=endpoint, payload=payload)
    except (UnicodeError, ValueError, TypeError, RecursionError) as exc:
        raise ApplicationError(
            "the request body cannot be encoded (invalid characters or nesting)", code="malformed_body", status=400
        ) from exc


def idempotent(
    *,
    user: User,
    key: str | None,
    endpoint: str,
    payload: Any,
    run: Callable[[str], Outcome],
    before_claim: Callable[[], None] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Claim (user, key) and run once; later calls get the stored answer, 409 or 422. The answer is the outcome's
    HTTP answer (execution.answers): its status and the serialised outcome, stored with the key.

    `before_claim` (e.g. a per-user rate limit) runs once the key is claimed, so only new keys count; a refusal
    there (429) releases the key instead of being stored under it, and replays / 409s cost nothing."""
    key = key_validate(key)
    digest = request_hash_safe(endpoint=endpoint, payload=payload)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                user=user, key=key, endpoint=endpoint, request_hash=digest, owner=process_instance()
            )
    except IntegrityError:
        return _existing(user=user, key=key, digest=digest)
    if before_claim is not None:
        try:
            before_claim()
        except Exception as exc:
            # Refused (rate limit) or failed (a dependency) before any work: release the key so a retry with it is
            # not a replay — and never leave it in flight.
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            if isinstance(exc, ApplicationError):
                raise
            logger.warning("trading request refused before any work", extra={"user_id": user.pk}, exc_info=True)
            raise _unavailable() from exc
    metrics.IDEMPOTENCY.labels(outcome="first").inc()
    status, body = _answer_of(run, key=key, user=user, endpoint=endpoint)
    if status >= 500:
        return _server_error(user=user, key=key, record_id=record.pk, status=status, body=body)
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=IdempotencyStatus.DONE, response_status=status, response_body=body, completed_at=timezone.now()
    )
    return status, body


def _answer_of(run: Callable[[str], Outcome], *, key: str, user: User, endpoint: str) -> tuple[int, dict[str, Any]]:
    """Run the action once: its outcome's answer, an application error's, or (the request boundary: logged) 503 for
    a dependency failure and 500 for anything else — which the caller never stores."""
    try:
        return http_answer(run(key))
    except ApplicationError as exc:
        return exc.status, exc.as_dict()
    except Exception as exc:
        logger.exception("trading request failed", extra={"user_id": user.pk, "endpoint": endpoint})
        if is_dependency_failure(exc):
            return 503, _unavailable().as_dict()
        return 500, {"type": "error", "code": "internal_error", "message": "the request failed"}


def _unavailable() -> ApplicationError:
    return DependencyUnavailable()


def _server_error(
    *, user: User, key: str, record_id: int, status: int, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Never store a 5xx: an order that reached the venue is answered (and stored) as 202 with its state; otherwise
    the key is released and the error goes back unstored, for a retry with the same key."""

    try:
        sent = orders_reached_venue(user=user, key=key)
    except DatabaseError:
        # Nothing can be looked up or stored: the record stays in flight and is finalised from the order's state
        # by reconciliation (execution.services.sync.idempotency_finalize_stale).
        logger.warning("idempotency outcome not stored: database unavailable", extra={"user_id": user.pk})
        return 503, {
            "type": "error",
            "code": "temporarily_unavailable",
            "message": "the outcome could not be recorded; check your orders before retrying",
        }
    if sent:
        answer = {
            "order": order_dict(sent[0]),
            "children": [order_dict(o) for o in sent[1:]],
            "note": "the order reached the venue; its outcome is being confirmed (reconciliation). Do not resend.",
            "warning": body.get("code"),
            "result": Result.PENDING.value,
        }
        IdempotencyRecord.objects.filter(pk=record_id).update(
            status=IdempotencyStatus.DONE, response_status=202, response_body=answer, completed_at=timezone.now()
        )
        metrics.IDEMPOTENCY.labels(outcome="sent_then_failed").inc()
        return 202, answer
    orders_abandon_unsent(user=user, key=key, reason=f"request failed before sending: {body.get('code')}")
    IdempotencyRecord.objects.filter(pk=record_id).delete()
    metrics.IDEMPOTENCY.labels(outcome="released").inc()
    return status, {**body, "retryable": True, "message": f"{body.get('message', 'failed')}; nothing was sent"}


def _existing(*, user: User, key: str, digest: str) -> tuple[int, dict[str, Any]]:
    record = IdempotencyRecord.objects.filter(user=user, key=key).first()
    if record is None:  # purged between our insert attempt and now
        raise ApplicationError("retry the request", code="idempotency_retry", status=409)
    if record.request_hash != digest:
        metrics.IDEMPOTENCY.labels(outcome="mismatch").inc()
        raise ApplicationError(
            "this Idempotency-Key was used with a different request", code="idempotency_key_reused", status=422
        )
    if record.status == IdempotencyStatus.IN_FLIGHT:
        metrics.IDEMPOTENCY.labels(outcome="in_flight").inc()
        raise ApplicationError(
            "a request with this Idempotency-Key is in progress", code="idempotency_in_flight", status=409
        )
    metrics.IDEMPOTENCY.labels(outcome="replayed").inc()
    body = dict(record.response_body or {})
    return int(record.response_status or 200), body


def idempotency_purge(*, now: Any = None) -> int:
    cutoff = (now or timezone.now()) - timedelta(hours=settings.EXECUTION_IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
