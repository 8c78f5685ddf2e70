"""`manage.py killswitch on --reason "..." [--flatten]` / `killswitch off --reason "..."` / `killswitch status`."""

from __future__ import annotations

import json
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from execution.selectors import controls_state
from execution.services.killswitch import killswitch_disengage, killswitch_engage
from kernel.errors import ApplicationError


class Command(BaseCommand):
    help = "Engage or lift the kill switch (blocks new orders everywhere; cancels open orders)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("state", choices=["on", "off", "status"])
        parser.add_argument("--reason", default="")
        parser.add_argument("--flatten", action="store_true", help="also close all positions (reduce-only market)")
        parser.add_argument(
            "--actor", default=os.environ.get("USER") or "shell", help="who is acting (recorded in the audit log)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:

        try:
            if opts["state"] == "on":
                result = killswitch_engage(
                    actor=None, actor_label=f"cli:{opts['actor']}", reason=opts["reason"], flatten=opts["flatten"]
                )
            elif opts["state"] == "off":
                result = killswitch_disengage(actor=None, actor_label=f"cli:{opts['actor']}", reason=opts["reason"])
            else:
                result = controls_state(user=None)
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(json.dumps(result, default=str, indent=2))
