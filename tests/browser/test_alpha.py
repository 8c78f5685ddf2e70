"""/alpha in a real browser against the one-process topology (`manage.py serve` with its embedded simulator,
ingest and alpha pipeline; temp SQLite, no DATABASE_URL/REDIS_URL)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser.harness import ARTIFACTS, launch_chromium, run_serve, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_serve(tmp_path_factory.mktemp("alpha-serve"), ready_path="/readyz") as (base, _env):
        yield base


def test_alpha_page_shows_live_scores_and_the_blocking_gate(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        errors = watch_errors(page)
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
