from __future__ import annotations

from django.test import override_settings

from hypersentry.checks import check_allowed_hosts_wildcard


def test_wildcard_allowed_hosts_is_an_error() -> None:
    with override_settings(ALLOWED_HOSTS=["*"]):
        errors = check_allowed_hosts_wildcard()
    assert [e.id for e in errors] == ["hypersentry.E001"]


def test_listed_hosts_pass() -> None:
    with override_settings(ALLOWED_HOSTS=["terminal.example.com"]):
        assert check_allowed_hosts_wildcard() == []
