"""Execution commands answer bad flags with a CommandError naming the flag, not a traceback."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_reconcile_names_an_unknown_user() -> None:
    with pytest.raises(CommandError, match="--user 'garbage': no user with that EIP-55 address"):
        call_command("reconcile", "--user", "garbage")


def test_close_all_positions_rejects_a_malformed_symbol() -> None:
    with pytest.raises(CommandError, match=r"--symbol '\?\?\?': must be 1-32 characters"):
        call_command("close_all_positions", "--symbol", "???")


def test_close_all_positions_names_an_unknown_user() -> None:
    with pytest.raises(CommandError, match="--user '0xnope': no user"):
        call_command("close_all_positions", "--user", "0xnope")
