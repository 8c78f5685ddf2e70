"""The terminal in a real browser against the one-process topology fed by the venue simulator.

`manage.py serve` runs as a subprocess (temp SQLite, no DATABASE_URL/REDIS_URL: in-memory broadcaster and hot
state); the simulator runs as its own process with its control endpoint so the test can stall its feed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from deploy.servers import free_port, stop_process
from tests.browser.harness import ARTIFACTS, ROOT, launch_chromium, run_serve, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The simulator runs as its own process with its control endpoint, so the test can stall its feed."""
    tmp = tmp_path_factory.mktemp("terminal-serve")
    sim_port = free_port()
    with open(tmp / "hlsim.log", "wb") as sim_log:
        sim = subprocess.Popen(
            [sys.executable, "-m", "hlsim", "--port", str(sim_port), "--control", "--symbols", "BTC,ETH,SOL"],
            cwd=ROOT,
            stdout=sim_log,
            stderr=subprocess.STDOUT,
        )
        sim_url = f"http://127.0.0.1:{sim_port}"
        try:
            with run_serve(tmp, venue_url=sim_url, ready_path="/readyz", extra_procs=[sim]) as (base, _env):
                yield base, sim_url
        finally:
            stop_process(sim, timeout=15)


def _control(sim: str, body: dict[str, object]) -> None:
    req = urllib.request.Request(f"{sim}/control", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def test_terminal_is_live_turns_stale_when_the_feed_stalls_and_recovers(topology: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, sim = topology
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors = watch_errors(page)
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
