"""Per-user serialisation of the pre-trade checks and the order row.

Two orders of one user checked at the same time would each see the other as absent and could together exceed a
limit. Everything between reading the user's live orders and storing the new order row runs under the user's lock,
and the row is committed before the lock is released — so the next check of that user, in any process, sees it.
Different users never wait for each other.

* PostgreSQL: a transaction-level advisory lock keyed by (namespace, user id) — held until the surrounding
  transaction commits, released by the server if the process dies.
* SQLite (the one-process topology: one process): a per-user lock in the process. A SQLite transaction would
  serialise every writer of the process, not just this user's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

# "EXEC" — keeps these keys apart from the audit chain's advisory lock.
_NAMESPACE = 0x45584543
_local_locks: dict[int, threading.Lock] = {}
_local_guard = threading.Lock()


def _local_lock(user_id: int) -> threading.Lock:
    with _local_guard:
        lock = _local_locks.get(user_id)
        if lock is None:
            lock = _local_locks[user_id] = threading.Lock()
        return lock


@contextmanager
def user_serialized(user_id: int) -> Iterator[None]:
    """Run the block alone among this user's order checks (any process on PostgreSQL, this process on SQLite)."""
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, user_id & 0x7FFFFFFF])
            yield
        return
    with _local_lock(user_id):
        yield
