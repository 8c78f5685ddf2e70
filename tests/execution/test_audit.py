"""The audit log is append-only on PostgreSQL (triggers) and in the ORM; the hash chain detects edits."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from execution.audit import audit_append, audit_verify
from execution.models import AuditRecord
from tests.concurrency import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(n: int = 3) -> list[AuditRecord]:
    return [audit_append(event="test.event", correlation_id=f"c{i}", data={"i": i, "px": "1.5"}) for i in range(n)]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE execution_auditrecord SET event = 'x'",
        "DELETE FROM execution_auditrecord",
    ],
)
def test_update_and_delete_are_refused_by_the_database(sql: str) -> None:
    _rows()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql)
    assert AuditRecord.objects.count() == 3


@pytest.fixture
def truncate_guarded(transactional_db: None) -> Iterator[None]:
    """Lift the test-database-only exception (Django's flush between tests uses TRUNCATE) for the test."""
    with connection.cursor() as cur:
        cur.execute("SELECT current_database()")
        db = cur.fetchone()[0]
        cur.execute(f'ALTER DATABASE "{db}" RESET hypersentry.audit_truncate_allowed')
    yield
    with connection.cursor() as cur:
        cur.execute(f"ALTER DATABASE \"{db}\" SET hypersentry.audit_truncate_allowed = 'on'")


def test_truncate_is_refused_by_the_database(truncate_guarded: None) -> None:
    _rows()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("TRUNCATE execution_auditrecord")
    assert AuditRecord.objects.count() == 3


def test_a_session_level_setting_cannot_unlock_truncate(truncate_guarded: None) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL hypersentry.audit_truncate_allowed = 'on'")
        cur.execute("TRUNCATE execution_auditrecord")


def test_the_orm_refuses_updates_and_deletes() -> None:
    rec = _rows(1)[0]
    rec.event = "changed"
    with pytest.raises(RuntimeError):
        rec.save()
    with pytest.raises(RuntimeError):
        rec.delete()


def test_verify_audit_passes_then_detects_an_edited_row(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows(5)
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert out.startswith("OK rows=5") and rows[-1].row_hash in out
    with connection.cursor() as cur:  # a superuser bypassing the trigger, as an attacker with DB access would
        cur.execute("SET session_replication_role = replica")
        cur.execute("UPDATE execution_auditrecord SET data = '{\"i\": 99}' WHERE id = %s", [rows[2].pk])
        cur.execute("SET session_replication_role = DEFAULT")
    with pytest.raises(SystemExit) as exc:
        call_command("verify_audit")
    assert exc.value.code == 1
    assert f"first_bad_id={rows[2].pk}" in capsys.readouterr().err


def test_audit_rows_survive_a_rollback_of_the_caller() -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        audit_append(event="order.rejected", correlation_id="rb", data={"why": "test"})
        raise ZeroDivisionError
    assert AuditRecord.objects.filter(correlation_id="rb").count() == 1


def test_concurrent_writers_do_not_fork_the_chain() -> None:
    def write(t: int) -> None:
        for i in range(15):
            audit_append(event="concurrent", correlation_id=f"t{t}-{i}", data={"t": t, "i": i})

    run_in_threads([functools.partial(write, t) for t in range(8)])
    report = audit_verify()
    assert report.ok and report.count == 120
    assert len(set(AuditRecord.objects.values_list("prev_hash", flat=True))) == 120
