"""/alpha in a real browser against the one-process topology (`manage.py serve` with its embedded simulator,
ingest and alpha pipeline; temp SQLite, no DATABASE_URL/REDIS_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.markets.gateway_fixtures import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready within {timeout}s")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="hs-alpha-browser-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(ENVIRONMENT="development", SQLITE_PATH=f"{tmp}/db.sqlite3", PYTHONPATH=str(ROOT))
    sim_port, web_port = free_port(), free_port()
    env.update(HYPERSENTRY_VENUE_URL=f"http://127.0.0.1:{sim_port}", ALLOWED_ORIGINS=f"http://127.0.0.1:{web_port}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    logs = open(f"{tmp}/logs.txt", "wb")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(web_port)],
        cwd=ROOT,
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"http://127.0.0.1:{web_port}/readyz", 90, web)
        yield f"http://127.0.0.1:{web_port}"
    finally:
        web.terminate()
        try:
            web.wait(15)
        except subprocess.TimeoutExpired:
            web.kill()
        print(Path(f"{tmp}/logs.txt").read_text()[-3000:])


def test_alpha_page_shows_live_scores_and_the_blocking_gate(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server}/alpha")
        for sym in ("BTC", "ETH"):
            page.wait_for_function(
                "s => { const r = document.getElementById('row-' + s); "
                "return r && /^\\d+\\.\\d$/.test(r.querySelector('.score').textContent.trim()); }",
                arg=sym,
                timeout=30_000,
            )
        first = page.inner_text("#row-BTC .age")
        # The blocking gate shows once a gov_update arrived (anonymous visitor: the general/market gate).
        page.wait_for_function(
            "() => { const g = document.querySelector('#row-BTC .gate').textContent.trim(); return g && g !== '—'; }",
            timeout=15_000,
        )
        gate = page.inner_text("#row-BTC .gate")
        assert gate in {"auto_mode_off", "score_below_threshold", "streak_too_short", "ready"} or gate.endswith(
            "_engaged"
        ), gate
        assert page.inner_text("#auto-general").strip() != "—"
        # Live: readings keep arriving (age stays fresh) and the component bars are rendered for the selection.
        time.sleep(1.5)
        assert "stale" not in page.inner_text("#row-BTC .age"), first
        assert page.locator("#components .comp").count() == 5
        page.check("#show-raw")
        assert page.locator("#row-ETH .score").inner_text().strip() != "—"
        page.screenshot(path=str(ARTIFACTS / "alpha.png"), full_page=True)
        browser.close()
    assert errors == [], errors
