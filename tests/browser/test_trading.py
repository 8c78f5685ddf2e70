"""Order entry on /terminal/<SYM> in a real browser: place, see and cancel a limit order; buy at market and close
the position — against `manage.py serve` (temp SQLite, no DATABASE_URL/REDIS_URL) and the venue simulator."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from tests.browser.harness import ARTIFACTS, launch_chromium, manage, run_serve, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, str]]]:
    from hlsim.server import SimConfig, SimulatorThread

    sim_thread = SimulatorThread(SimConfig(port=0, symbols=["BTC", "ETH", "SOL"], backfill_minutes=5, seed=11))
    sim = sim_thread.start()
    try:
        with run_serve(tmp_path_factory.mktemp("trading-serve"), venue_url=sim.base_url) as (base, env):
            yield base, sim.base_url, env
    finally:
        sim_thread.stop()


def _mid(sim: str, coin: str = "BTC") -> Decimal:
    book = requests.post(f"{sim}/info", json={"type": "l2Book", "coin": coin}, timeout=5).json()
    return (Decimal(book["levels"][0][0]["px"]) + Decimal(book["levels"][1][0]["px"])) / 2


def test_place_see_cancel_and_close_from_the_terminal(stack: tuple[str, str, dict[str, str]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, sim, env = stack
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        errors = watch_errors(page, console=False)
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
            manage(env, "killswitch", "on", "--reason", "browser test")
            expect(page.locator("#exec-banner")).to_contain_text("KILL SWITCH ENGAGED", timeout=15_000)
            page.click("#ticket-submit")
            expect(page.locator("#ticket-result")).to_contain_text("kill_switch_engaged", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "trading-killswitch.png"))
            manage(env, "killswitch", "off", "--reason", "browser test done")
            expect(page.locator("#exec-banner")).to_be_hidden(timeout=15_000)
        finally:
            browser.close()
    assert errors == [], errors
