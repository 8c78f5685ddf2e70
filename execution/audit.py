"""The append-only, hash-chained audit log.

Every append runs in its own transaction: when the caller is inside `transaction.atomic()` the row is written
from a dedicated thread (Django gives each thread its own connection, in autocommit), so a rollback of the
caller cannot erase it — rejected attempts and failures stay recorded. Appends are serialised with a
transaction-level advisory lock on PostgreSQL (SQLite serialises writers with IMMEDIATE transactions), so
concurrent writers in any process cannot fork the chain.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from execution.models import AuditRecord

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
_ADVISORY_LOCK_ID = 0x48534155  # "HSAU"
_writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False)


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(
    *, prev_hash: str, created_at: datetime, correlation_id: str, user_id: int | None, actor: str, event: str, data: Any
) -> str:
    body = canonical(
        {
            "created_at": _ts(created_at),
            "correlation_id": correlation_id,
            "user_id": user_id,
            "actor": actor,
            "event": event,
            "data": data,
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _append_now(*, event: str, correlation_id: str, user_id: int | None, actor: str, data: Any) -> AuditRecord:
    clean = json.loads(canonical(data))
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_ID])
        last = AuditRecord.objects.order_by("-id").values_list("row_hash", flat=True).first()
        prev = last or GENESIS
        # What the row stores is what its hash covers (with the user id, stored as user_id_ref).
        hashed: dict[str, Any] = {
            "created_at": timezone.now(),
            "correlation_id": correlation_id,
            "actor": actor,
            "event": event,
            "data": clean,
        }
        digest = row_hash(prev_hash=prev, user_id=user_id, **hashed)
        rec = AuditRecord(user_id_ref=user_id, prev_hash=prev, row_hash=digest, **hashed)
        rec.save(force_insert=True)
    return rec


def _append_in_thread(**kw: Any) -> AuditRecord:
    close_old_connections()
    try:
        return _append_now(**kw)
    finally:
        connection.close()


def audit_append(
    *, event: str, correlation_id: str = "", user_id: int | None = None, actor: str = "", data: Any = None
) -> AuditRecord:
    """Append one audit row in its own transaction (never inside the caller's)."""
    kw: dict[str, Any] = {
        "event": event,
        "correlation_id": correlation_id,
        "user_id": user_id,
        "actor": actor,
        "data": data or {},
    }
    if connection.in_atomic_block:
        if connection.vendor == "sqlite":
            # SQLite has one writer: a second connection would wait on the caller's own write lock. The
            # one-process (SQLite) topology records after commit instead; PostgreSQL gets the separate writer.
            transaction.on_commit(lambda: _append_now(**kw))
            return AuditRecord(
                event=event, correlation_id=correlation_id, user_id_ref=user_id, actor=actor, data=kw["data"]
            )
        return _writer.submit(_append_in_thread, **kw).result(timeout=30)
    return _append_now(**kw)


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    count: int
    head_hash: str
    first_bad_id: int | None = None
    problem: str = ""


def _rows() -> Iterator[AuditRecord]:
    return AuditRecord.objects.order_by("id").iterator(chunk_size=2000)


def audit_verify() -> ChainReport:
    """Recompute every row's hash and its link to the previous row."""
    prev = GENESIS
    count = 0
    for rec in _rows():
        if rec.prev_hash != prev:
            return ChainReport(False, count, prev, rec.pk, "prev_hash does not link to the previous row")
        expected = row_hash(
            prev_hash=rec.prev_hash,
            created_at=rec.created_at,
            correlation_id=rec.correlation_id,
            user_id=rec.user_id_ref,
            actor=rec.actor,
            event=rec.event,
            data=rec.data,
        )
        if expected != rec.row_hash:
            return ChainReport(False, count, prev, rec.pk, "row_hash does not match the row's content")
        prev = rec.row_hash
        count += 1
    return ChainReport(True, count, prev)
