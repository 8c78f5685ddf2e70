"""`manage.py close_all_positions [--user 0x...] [--symbol BTC]`: reduce-only market closes from the venue's view."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Close positions at market with reduce-only orders (all trading users, or one user / symbol)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="master address")
        parser.add_argument("--symbol")

    def handle(self, *args: Any, **opts: Any) -> None:
        from execution.management.arguments import symbol_arg, user_by_address
        from execution.services.killswitch import _trading_users
        from execution.services.relay import _positions_from_state, account_invalidate, account_state, position_close

        only = symbol_arg(opts["symbol"]) if opts.get("symbol") else None
        users = [user_by_address(opts["user"])] if opts.get("user") else _trading_users()
        results = []
        run = uuid.uuid4().hex[:12]
        for user in users:
            account_invalidate(user=user)
            for symbol in _positions_from_state(account_state(user=user, max_age=0)):
                if only is not None and symbol.upper() != only:
                    continue
                status, body = position_close(
                    user=user,
                    key=f"close-all-{run}-{user.pk}-{symbol}",
                    symbol=symbol,
                    bypass_gates=True,
                    source="close_all",
                )
                results.append(
                    {
                        "user": user.address,
                        "symbol": symbol,
                        "status": status,
                        "state": (body.get("order") or {}).get("state"),
                    }
                )
        self.stdout.write(json.dumps({"closed": results}, indent=2))
