"""Argument parsing shared by the execution commands: clear CommandErrors instead of tracebacks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core.management.base import CommandError

if TYPE_CHECKING:
    from accounts.models import User

_SYMBOL = re.compile(r"^[A-Za-z0-9]{1,20}$")


def user_by_address(address: str) -> User:
    from accounts.models import User

    try:
        return User.objects.get(address=address)
    except User.DoesNotExist:
        raise CommandError(f"--user {address!r}: no user with that EIP-55 address") from None


def symbol_arg(value: str) -> str:
    if not _SYMBOL.match(value):
        raise CommandError(f"--symbol {value!r}: expected 1-20 letters or digits, e.g. BTC")
    return value  # matched against the venue's names case-insensitively (kPEPE)
