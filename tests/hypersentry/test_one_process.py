"""`manage.py serve` (what `make run` starts) serves health and readiness on the embedded defaults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from deploy.servers import free_port
from tests.processes import start_manage

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_serve_answers_healthz_and_readyz_on_embedded_defaults() -> None:
    port = free_port()
    sqlite = str(Path(tempfile.mkdtemp()) / "db.sqlite3")
    env = {
        "PATH": os.environ["PATH"],
        "SQLITE_PATH": sqlite,
        "HYPERSENTRY_VENUE_URL": f"http://127.0.0.1:{free_port()}",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    proc = start_manage("serve", "--port", str(port), env=env, out=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, ready.text if ready is not None else "no answer"
        assert ready.json()["checks"]["database"]["detail"] == "sqlite"
        assert ready.json()["checks"]["channel_layer"]["detail"] == "RealtimeChannelLayer/memory"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


@pytest.mark.slow
def test_daphne_serves_the_same_asgi_application() -> None:
    port = free_port()
    sqlite = str(Path(tempfile.mkdtemp()) / "db.sqlite3")
    env = {"PATH": os.environ["PATH"], "SQLITE_PATH": sqlite}
    daphne = str(Path(sys.executable).with_name("daphne"))
    proc = subprocess.Popen(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "hypersentry.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
            except requests.ConnectionError:
                time.sleep(0.3)
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
