"""`manage.py close_all_positions [--user 0x...] [--symbol BTC]`: reduce-only market closes from the venue's view."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from execution.management.arguments import symbol_arg, user_by_address
from execution.services.killswitch import trading_users
from execution.services.modify import positions_close_all


class Command(BaseCommand):
    help = "Close positions at market with reduce-only orders (all trading users, or one user / symbol)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="master address")
        parser.add_argument("--symbol")

    def handle(self, *args: Any, **opts: Any) -> None:

        only = symbol_arg(opts["symbol"]) if opts.get("symbol") else None
        users = [user_by_address(opts["user"])] if opts.get("user") else trading_users()
        results = positions_close_all(users=users, symbol=only, run=uuid.uuid4().hex[:12], source="close_all")
        self.stdout.write(json.dumps({"closed": results}, indent=2))
