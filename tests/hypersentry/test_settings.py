"""Settings come from the environment through strict readers; production refuses unsafe values."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from kernel.env import Env

ROOT = Path(__file__).resolve().parents[2]
GOOD_PROD = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "q8Zr2!vT7p@Lw4Xy9#Nc6$Hm1^Bf3&Kd5*Gs0(Jt8)Ua2_Ve7+Wi4-Oq9=Rl",
    "FRONTEND_URL": "https://terminal.example.com",
    "ALLOWED_ORIGINS": "https://terminal.example.com",
    "AGENT_WALLET_ENCRYPTION_KEY": "hMpXbgHq2Lr1nYv7o0cZ5kJt3wFq8sUe9aDi4gRb6Ts=",
    "DEBUG": "false",
}


def run_django(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a clean environment (nothing inherited but PATH), the way a deployment starts it."""
    base = {"PATH": os.environ["PATH"], "SQLITE_PATH": os.environ["SQLITE_PATH"]}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# How the configured channel layer carries messages between processes: "redis" (pub/sub) or "memory" (one process).
LAYER_TRANSPORT = "__import__('channels.layers').layers.get_channel_layer().transport"


def settings_value(env: dict[str, str], expr: str) -> str:
    result = run_django(env, "shell", "-c", f"from django.conf import settings as s; print({expr})")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_no_environment_gives_the_embedded_defaults() -> None:
    out = settings_value(
        {},
        "s.ENVIRONMENT, s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        f"{LAYER_TRANSPORT}, "
        "s.HYPERSENTRY_VENUE, s.SESSION_EXPIRE_HOURS, s.ENABLE_SERVER_SIDE_TRADING, s.AGGREGATOR_MAX_SUBSCRIPTIONS",
    )
    assert out == (
        "development django.db.backends.sqlite3 kernel.channel_layer.RealtimeChannelLayer memory sim 168 True 80"
    )


def test_redis_and_database_urls_switch_the_backends() -> None:
    out = settings_value(
        {"REDIS_URL": "redis://127.0.0.1:6399/0", "DATABASE_URL": "postgres://u:p@127.0.0.1:5999/hs"},
        "s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        f"{LAYER_TRANSPORT}, s.CACHES['default']['BACKEND']",
    )
    assert out == (
        "django.db.backends.postgresql kernel.channel_layer.RealtimeChannelLayer redis "
        "django.core.cache.backends.redis.RedisCache"
    )


REAL_VENUE_SAFE = {
    "DEBUG": "false",
    "SECRET_KEY": GOOD_PROD["SECRET_KEY"],
    "AGENT_WALLET_ENCRYPTION_KEY": GOOD_PROD["AGENT_WALLET_ENCRYPTION_KEY"],
}


def test_real_venues_keep_server_side_trading_off_by_default() -> None:
    out = settings_value(
        {"HYPERSENTRY_VENUE": "testnet", **REAL_VENUE_SAFE},
        "s.HYPERSENTRY_VENUE_URL, s.ENABLE_SERVER_SIDE_TRADING, s.REQUIRE_ADMIN_FOR_SERVER_TRADING",
    )
    assert out == "https://api.hyperliquid-testnet.xyz False True"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SESSION_EXPIRE_HOURS", "abc", "SESSION_EXPIRE_HOURS='abc' is invalid: expected an integer"),
        ("HYPERSENTRY_VENUE", "moon", "HYPERSENTRY_VENUE='moon' is invalid: expected one of sim, testnet, mainnet"),
        ("ENABLE_SERVER_SIDE_TRADING", "maybe", "ENABLE_SERVER_SIDE_TRADING='maybe' is invalid"),
        ("AGGREGATOR_OI_HL_WEIGHT", "nan", "AGGREGATOR_OI_HL_WEIGHT='nan' is invalid"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL='localhost:6379' is invalid"),
        ("ALLOWED_ORIGINS", "terminal.example.com", "ALLOWED_ORIGINS='terminal.example.com' is invalid"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_the_variable(variable: str, value: str, expected: str) -> None:
    result = run_django({variable: value}, "check")
    assert result.returncode != 0
    assert expected in result.stderr


def test_check_deploy_reports_nothing_under_a_correct_production_environment() -> None:
    result = run_django(GOOD_PROD, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


# Each starting point is safe as it is (see the tests that start with it); one override alone makes it refuse.
SAFE_STARTS = {
    "production": (GOOD_PROD, ("check", "--deploy"), "Refusing to start with ENVIRONMENT=production"),
    "mainnet": (
        {"HYPERSENTRY_VENUE": "mainnet", **REAL_VENUE_SAFE},
        ("check",),
        "Refusing to start with HYPERSENTRY_VENUE=mainnet",
    ),
}


@pytest.mark.parametrize(
    ("start", "override", "problem"),
    [
        ("production", {"DEBUG": "true"}, "DEBUG is on"),
        ("production", {"SECRET_KEY": ""}, "SECRET_KEY is missing or weak"),
        ("production", {"SECRET_KEY": "short"}, "SECRET_KEY is missing or weak"),
        ("production", {"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS contains a wildcard"),
        ("production", {"ALLOWED_ORIGINS": "*"}, "ALLOWED_ORIGINS contains a wildcard"),
        ("production", {"AGENT_WALLET_ENCRYPTION_KEY": ""}, "AGENT_WALLET_ENCRYPTION_KEY is not set"),
        ("mainnet", {"DEBUG": "true"}, "DEBUG is on"),
        ("mainnet", {"SECRET_KEY": ""}, "SECRET_KEY is the development default"),
        ("mainnet", {"AGENT_WALLET_ENCRYPTION_KEY": ""}, "AGENT_WALLET_ENCRYPTION_KEY is not set"),
    ],
)
def test_production_and_mainnet_refuse_each_unsafe_setting_alone(
    start: str, override: dict[str, str], problem: str
) -> None:
    env, args, refusal = SAFE_STARTS[start]
    result = run_django({**env, **override}, *args)
    assert result.returncode != 0
    assert refusal in result.stderr
    assert problem in result.stderr


@pytest.mark.parametrize("venue", ["testnet", "mainnet"])
def test_a_real_venue_refuses_the_development_defaults_naming_each(venue: str) -> None:
    result = run_django({"HYPERSENTRY_VENUE": venue}, "check")
    assert result.returncode != 0
    assert f"Refusing to start with HYPERSENTRY_VENUE={venue}" in result.stderr
    assert "DEBUG is on" in result.stderr
    assert "SECRET_KEY is the development default" in result.stderr
    assert "AGENT_WALLET_ENCRYPTION_KEY is not set" in result.stderr


def test_mainnet_starts_with_safe_settings() -> None:
    assert settings_value({"HYPERSENTRY_VENUE": "mainnet", **REAL_VENUE_SAFE}, "s.DEBUG") == "False"


class TestEnvReaders:
    def test_empty_values_mean_the_default(self) -> None:
        assert Env({"X": "  "}).integer("X", 5) == 5

    def test_booleans_accept_the_usual_spellings(self) -> None:
        env = Env({"A": "Yes", "B": "off", "C": "1"})
        assert (env.flag("A", False), env.flag("B", True), env.flag("C", False)) == (True, False, True)

    def test_integer_bounds_are_enforced(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="X='0' is invalid: expected an integer between 1 and 9"):
            Env({"X": "0"}).integer("X", 1, min_value=1, max_value=9)

    def test_numbers_refuse_infinity(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="finite"):
            Env({"X": "inf"}).number("X", 1.0)

    def test_decimals_parse_exactly(self) -> None:
        assert Env({"X": "100000.50"}).decimal("X", "0") == Decimal("100000.50")

    def test_origins_must_be_full_origins(self) -> None:
        assert Env({"O": "https://a.example:8443/, http://b.example"}).origin_list("O") == [
            "https://a.example:8443",
            "http://b.example",
        ]
        with pytest.raises(ImproperlyConfigured, match="O='https://a.example/path' is invalid"):
            Env({"O": "https://a.example/path"}).origin_list("O")
