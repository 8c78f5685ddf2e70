"""The accounts tests' fixtures: a fresh wallet and a client that enforces CSRF like the browser's."""

from __future__ import annotations

import pytest
from django.test import Client
from eth_account import Account
from eth_account.signers.local import LocalAccount


@pytest.fixture
def wallet() -> LocalAccount:
    return Account.create()


@pytest.fixture
def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)
