"""The terminal in a real browser against the one-process topology fed by the venue simulator.

`manage.py serve` runs as a subprocess (temp SQLite, no DATABASE_URL/REDIS_URL: in-memory broadcaster and hot
state); the simulator runs as its own process with its control endpoint so the test can stall its feed.
"""

from __future__ import annotations

import json
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


def _wait_http(url: str, timeout: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"process exited with {p.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready within {timeout}s")


@pytest.fixture(scope="module")
def topology() -> Iterator[tuple[str, str]]:
    tmp = tempfile.mkdtemp(prefix="hs-browser-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(ENVIRONMENT="development", SQLITE_PATH=f"{tmp}/db.sqlite3", PYTHONPATH=str(ROOT))
    sim_port, web_port = free_port(), free_port()
    env.update(HYPERSENTRY_VENUE_URL=f"http://127.0.0.1:{sim_port}", HYPERSENTRY_EMBED_SIMULATOR="false")
    env["ALLOWED_ORIGINS"] = f"http://127.0.0.1:{web_port}"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    logs = open(f"{tmp}/logs.txt", "wb")  # noqa: SIM115
    sim = subprocess.Popen(
        [sys.executable, "-m", "hlsim", "--port", str(sim_port), "--control", "--symbols", "BTC,ETH,SOL"],
        cwd=ROOT,
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    web = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(web_port)],
        cwd=ROOT,
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"http://127.0.0.1:{web_port}/readyz", 60, [sim, web])
        yield f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sim_port}"
    finally:
        for p in (web, sim):
            p.terminate()
        for p in (web, sim):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def _control(sim: str, body: dict[str, object]) -> None:
    req = urllib.request.Request(f"{sim}/control", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def test_terminal_is_live_turns_stale_when_the_feed_stalls_and_recovers(topology: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, sim = topology
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{base}/")
            expect(page.locator("#markets tr[data-symbol='BTC']")).to_be_visible()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "overview.png"))
            page.locator("#markets tr[data-symbol='BTC'] a").click()
            page.wait_for_url("**/terminal/BTC")
            expect(page.locator("#conn")).to_have_class("conn conn-live", timeout=10_000)
            expect(page.locator("#sim-or-live, #venue-badge")).to_have_text("SIMULATED VENUE")
            expect(page.locator("#order-entry h2")).to_have_text("Order entry")

            prices = set()
            deadline = time.monotonic() + 15
            while len(prices) < 3 and time.monotonic() < deadline:
                prices.add(page.locator("#last-price").inner_text())
                page.wait_for_timeout(300)
            assert len(prices - {"—"}) >= 2, f"the BTC price did not move: {prices}"
            assert page.locator("#bids .lvl").count() >= 5 and page.locator("#asks .lvl").count() >= 5
            expect(page.locator("#spread")).to_contain_text("bps")
            expect(page.locator("#tape .print").first).to_be_visible(timeout=10_000)
            expect(page.locator("#book-panel")).not_to_have_class("panel book-panel is-stale")
            page.screenshot(path=str(ARTIFACTS / "terminal-live.png"))

            _control(sim, {"action": "stall", "seconds": 9})
            expect(page.locator("#book-panel .stale-badge")).to_be_visible(timeout=9_000)
            expect(page.locator("#ticker .stale-badge")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "terminal-stale.png"))

            expect(page.locator("#book-panel .stale-badge")).to_be_hidden(timeout=20_000)
            expect(page.locator("#ticker .stale-badge")).to_be_hidden()
            page.screenshot(path=str(ARTIFACTS / "terminal-recovered.png"))
        finally:
            browser.close()
    assert errors == [], errors
