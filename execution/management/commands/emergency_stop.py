"""`manage.py emergency_stop --reason "..."`: the runbook's emergency stop = kill switch + close all positions."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from execution.services.killswitch import killswitch_engage
from kernel.errors import ApplicationError


class Command(BaseCommand):
    help = "Emergency stop: engage the kill switch, cancel all open orders and close all positions at market."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reason", required=True)
        parser.add_argument("--no-flatten", action="store_true", help="keep positions open")

    def handle(self, *args: Any, **opts: Any) -> None:

        try:
            result = killswitch_engage(
                actor=None, actor_label="cli:emergency_stop", reason=opts["reason"], flatten=not opts["no_flatten"]
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(json.dumps(result, default=str, indent=2))
