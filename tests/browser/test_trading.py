"""Order entry on /terminal/<SYM> in a real browser: place, see and cancel a limit order; buy at market and close
the position — against `manage.py serve` (temp SQLite, no DATABASE_URL/REDIS_URL) and the venue simulator."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, str]]]:
    from hlsim.server import SimConfig, SimulatorThread

    sim_thread = SimulatorThread(SimConfig(port=0, symbols=["BTC", "ETH", "SOL"], backfill_minutes=5, seed=11))
    sim = sim_thread.start()
    port = _free_port()
    tmp = tmp_path_factory.mktemp("trading-serve")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        ENVIRONMENT="development",
        DEBUG="true",
        SQLITE_PATH=str(tmp / "db.sqlite3"),
        FRONTEND_URL=f"http://127.0.0.1:{port}",
        HYPERSENTRY_VENUE="sim",
        HYPERSENTRY_VENUE_URL=sim.base_url.rstrip("/"),
        HYPERSENTRY_EMBED_SIMULATOR="false",
        LOG_LEVEL="warning",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120
    )
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "serve.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield base, sim.base_url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        sim_thread.stop()


def _mid(sim: str, coin: str = "BTC") -> Decimal:
    book = requests.post(f"{sim}/info", json={"type": "l2Book", "coin": coin}, timeout=5).json()
    return (Decimal(book["levels"][0][0]["px"]) + Decimal(book["levels"][1][0]["px"])) / 2


def test_place_see_cancel_and_close_from_the_terminal(stack: tuple[str, str, dict[str, str]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, sim, env = stack
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{base}/terminal/BTC")
            expect(page.locator("#exec-signin")).to_be_visible()
            page.click("#hs-wallet [data-action=demo]")
            page.locator("#hs-wallet [data-field=address]").wait_for(state="visible", timeout=20_000)
            page.click("#hs-wallet [data-action=enable-trading]")
            page.wait_for_selector("#hs-wallet [data-field=agent][data-ready='1']", timeout=20_000)
            expect(page.locator("#exec-grid")).to_be_visible()
            expect(page.locator("#exec-stream-state")).to_have_attribute("data-state", "live", timeout=15_000)
            expect(page.locator("#ticket-submit")).to_be_enabled()

            # A resting limit order far below mid: the risk verdict shows before sending.
            px = int(_mid(sim) * Decimal("0.95"))
            page.fill("#ticket [name=price]", str(px))
            page.fill("#ticket [name=size]", "60")
            expect(page.locator("#ticket-verdict")).to_have_attribute("data-ok", "1", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "trading-ticket.png"))
            page.click("#ticket-submit")
            row = page.locator("#open-orders tbody tr[data-state=resting]")
            expect(row).to_have_count(1, timeout=10_000)
            expect(row).to_contain_text(str(px))
            page.screenshot(path=str(ARTIFACTS / "trading-resting.png"))
            row.locator("[data-cancel]").click()
            expect(page.locator("#open-orders tbody tr[data-order-id]")).to_have_count(0, timeout=10_000)

            # An invalid limit price is refused by the preview with its reason.
            page.fill("#ticket [name=price]", f"{px}.55")
            expect(page.locator("#ticket-verdict")).to_have_attribute("data-reason", "invalid_price", timeout=10_000)

            # Market buy → a position appears (live), with PnL and liquidation price; close it.
            page.click("#ticket [data-type=market]")
            page.fill("#ticket [name=size]", "120")
            expect(page.locator("#ticket-verdict")).to_have_attribute("data-ok", "1", timeout=10_000)
            page.click("#ticket-submit")
            pos = page.locator("#positions tbody tr[data-symbol=BTC]")
            expect(pos).to_have_count(1, timeout=10_000)
            expect(page.locator("#fills tbody tr[data-tid]").first).to_be_visible(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "trading-position.png"))
            pos.locator("[data-close]").click()
            expect(page.locator("#positions tbody tr[data-symbol]")).to_have_count(0, timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "trading-closed.png"))

            # The kill switch engaged from another process: the banner appears and new orders are refused.
            subprocess.run(
                [sys.executable, "manage.py", "killswitch", "on", "--reason", "browser test"],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=60,
                capture_output=True,
            )
            expect(page.locator("#exec-banner")).to_contain_text("KILL SWITCH ENGAGED", timeout=15_000)
            page.click("#ticket-submit")
            expect(page.locator("#ticket-result")).to_contain_text("kill_switch_engaged", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "trading-killswitch.png"))
            subprocess.run(
                [sys.executable, "manage.py", "killswitch", "off", "--reason", "browser test done"],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=60,
                capture_output=True,
            )
            expect(page.locator("#exec-banner")).to_be_hidden(timeout=15_000)
        finally:
            browser.close()
    assert errors == [], errors
