from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role
from accounts.services import role_grant
from kernel.errors import ApplicationError


class Command(BaseCommand):
    help = "Give a wallet address a role (admin, operator, trader); creates the user if needed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help="EIP-55 checksummed address (0x + 40 hex digits, mixed case)")
        parser.add_argument("role", help=f"one of: {', '.join(Role.values)}")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = role_grant(address=options["address"], role=options["role"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{user.address} is now {user.role}")
