"""`manage.py reconcile [--user 0x...]`: compare the venue's orders, fills and positions with ours; fix and audit."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from execution.management.arguments import user_by_address
from execution.services.sync import reconcile_all, reconcile_user


class Command(BaseCommand):
    help = "Reconcile local execution state with the venue (the venue is the source of truth)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="master address (default: every user with an agent or open orders)")

    def handle(self, *args: Any, **opts: Any) -> None:

        if opts.get("user"):
            fixes = reconcile_user(user=user_by_address(opts["user"]))
            self.stdout.write(json.dumps({"users": 1, "fixes": fixes}))
        else:
            self.stdout.write(json.dumps(reconcile_all()))
