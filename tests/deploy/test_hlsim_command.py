"""`manage.py hlsim` as the split topology runs it: configured from the environment (HLSIM_SEED, HLSIM_SPEED,
HLSIM_PAPER_BALANCE) like the simulator embedded in `serve`, flags winning, and a heartbeat while it answers."""

from __future__ import annotations

import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from deploy.servers import free_port
from hlsim.cli import config_from_options
from hypersentry.management.commands.hlsim import Command
from kernel import components
from tests.processes import start_manage

ROOT = Path(__file__).resolve().parents[2]


def _config(*argv: str):  # type: ignore[no-untyped-def]
    options = vars(Command().create_parser("manage.py", "hlsim").parse_args(list(argv)))
    config, _ = config_from_options(options)
    return config


def test_it_takes_seed_speed_and_balance_from_settings_when_no_flag_is_given(settings: Any) -> None:
    settings.HLSIM_SEED = 42
    settings.HLSIM_SPEED = 5.0
    settings.HLSIM_PAPER_BALANCE = Decimal("2500")
    config = _config()
    assert (config.seed, config.speed, config.default_balance) == (42, 5.0, Decimal("2500"))


def test_flags_win_over_settings(settings: Any) -> None:
    settings.HLSIM_SEED = 42
    settings.HLSIM_SPEED = 5.0
    config = _config("--seed", "3", "--speed", "2", "--balance", "10")
    assert (config.seed, config.speed, config.default_balance) == (3, 2.0, Decimal("10"))


@pytest.mark.slow
def test_the_command_reads_the_environment_and_records_its_heartbeat_while_it_answers() -> None:
    """The heartbeat probes the simulator's unmetered /healthz: it spends none of the per-IP weight the app shares."""
    port = free_port()
    env = {**os.environ, "HLSIM_SEED": "42", "HLSIM_SPEED": "5", "LOG_LEVEL": "warning"}
    proc = start_manage("hlsim", "--port", str(port), "--control", env=env, out=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "seed=42 speed=5.0" in banner, banner
        deadline = time.monotonic() + 20
        row: dict[str, object] = {}
        while time.monotonic() < deadline:
            row = next(r for r in components.component_status() if r["name"] == "hlsim")
            if row["running"]:
                break
            time.sleep(0.3)
        assert row["running"] and row["detail"] == f"http://127.0.0.1:{port}", row
        time.sleep(2.5)  # another probe round
        stats = requests.get(f"http://127.0.0.1:{port}/control/stats", timeout=5).json()
        assert stats["rest_calls"] == {}, stats["rest_calls"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0
