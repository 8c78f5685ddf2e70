"""Argument parsing shared by the execution commands: clear CommandErrors instead of tracebacks."""

from __future__ import annotations

from django.core.management.base import CommandError

from accounts.models import User
from kernel.contracts.symbols import SYMBOL_HELP, symbol_valid


def user_by_address(address: str) -> User:
    try:
        return User.objects.get(address=address)
    except User.DoesNotExist:
        raise CommandError(f"--user {address!r}: no user with that EIP-55 address") from None


def symbol_arg(value: str) -> str:
    if not symbol_valid(value):
        raise CommandError(f"--symbol {value!r}: {SYMBOL_HELP}, e.g. BTC")
    return value  # matched against the venue's names case-insensitively (kPEPE)
