from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.crypto import keyring
from accounts.services import agent_keys_rotate
from kernel.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored agent key with the newest AGENT_WALLET_ENCRYPTION_KEY (the first of the list). "
        "Run after prepending a new key; remove the old key only after this succeeds."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = agent_keys_rotate()
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"re-encrypted {count} agent key(s) with key id {keyring().current_id}")
