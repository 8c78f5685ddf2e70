"""Renamed settings: the old variable names keep working, say what to rename, and never disagree silently."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from hypersentry.settings import RENAMED_SETTINGS
from kernel.env import Env
from tests.hypersentry.test_settings import run_django, settings_value


def test_an_old_name_is_read_as_the_new_one_and_listed_as_deprecated() -> None:
    env = Env({"TRADING_PRICES_CACHE_SEC": "7.5"}, renamed=RENAMED_SETTINGS)
    assert env.number("AGGREGATOR_PRICES_CACHE_SEC", 2.0, min_value=0) == 7.5
    assert env.deprecated == {"TRADING_PRICES_CACHE_SEC": "AGGREGATOR_PRICES_CACHE_SEC"}


def test_the_new_name_wins_quietly_when_both_agree_and_fails_when_they_differ() -> None:
    same = Env({"TRADING_PRICES_CACHE_SEC": "3", "AGGREGATOR_PRICES_CACHE_SEC": "3"}, renamed=RENAMED_SETTINGS)
    assert same.number("AGGREGATOR_PRICES_CACHE_SEC", 2.0) == 3.0
    both = Env({"TRADING_PRICES_CACHE_SEC": "3", "AGGREGATOR_PRICES_CACHE_SEC": "4"}, renamed=RENAMED_SETTINGS)
    with pytest.raises(ImproperlyConfigured, match="AGGREGATOR_PRICES_CACHE_SEC='4' and TRADING_PRICES_CACHE_SEC='3'"):
        both.number("AGGREGATOR_PRICES_CACHE_SEC", 2.0)


def test_a_bad_value_under_an_old_name_names_the_variable_that_was_set() -> None:
    env = Env({"MARKETS_UPSTREAM_BUDGET_CANDLES_PER_MIN": "lots"}, renamed=RENAMED_SETTINGS)
    with pytest.raises(ImproperlyConfigured, match="MARKETS_UPSTREAM_BUDGET_CANDLES_PER_MIN='lots'"):
        env.integer("AGGREGATOR_UPSTREAM_BUDGET_CANDLES_PER_MIN", 60, min_value=1)


def test_every_renamed_setting_is_a_setting_under_its_new_name_only() -> None:
    from django.conf import settings

    for old, new in RENAMED_SETTINGS.items():
        assert hasattr(settings, new), new
        assert not hasattr(settings, old), old


def test_manage_check_warns_about_an_old_name_and_uses_its_value() -> None:
    env = {"TRADING_ORDERBOOK_AGG_FRESH_SEC": "9"}
    assert settings_value(env, "s.AGGREGATOR_ORDERBOOK_FRESH_SEC") == "9.0"
    result = run_django(env, "check")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "hypersentry.W001" in out and "TRADING_ORDERBOOK_AGG_FRESH_SEC" in out
    assert "AGGREGATOR_ORDERBOOK_FRESH_SEC" in out
    assert "hypersentry.W001" not in run_django({}, "check").stdout
