"""`manage.py verify_audit`: recompute the audit hash chain; print the head hash; non-zero exit + first bad row id."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from execution.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the execution audit hash chain and print its head hash (export it elsewhere periodically)."

    def handle(self, *args: Any, **opts: Any) -> None:

        report = audit_verify()
        if report.ok:
            self.stdout.write(f"OK rows={report.count} head={report.head_hash}")
            return
        self.stderr.write(
            f"BROKEN first_bad_id={report.first_bad_id} verified_rows={report.count} problem={report.problem}"
        )
        sys.exit(1)
