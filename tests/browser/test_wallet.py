"""The header wallet widget in a real browser against `manage.py serve` (SQLite, in-memory layers, embedded sim)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from tests.browser.harness import ARTIFACTS, launch_chromium, run_serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from hlsim.server import SimConfig, SimulatorThread

    # The venue simulator runs here (in the test process); the server under test is pointed at it.
    sim_thread = SimulatorThread(SimConfig(port=0, n_symbols=2, backfill_minutes=5, seed=5))
    sim = sim_thread.start()
    try:
        with run_serve(tmp_path_factory.mktemp("serve"), venue_url=sim.base_url) as (base, _env):
            yield base
    finally:
        sim_thread.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = launch_chromium(pw)
        yield instance
        instance.close()


INJECTED_PROVIDER = """
window.ethereum = {
  isHyperSentryTest: true,
  async request({ method, params }) {
    const reply = JSON.parse(await window.hsTestWallet(method, JSON.stringify(params || [])));
    if (reply.error) { const e = new Error(reply.error); e.code = 4001; throw e; }
    return reply.result;
  },
  on() {},
};
"""


def _wallet_handler(account):  # type: ignore[no-untyped-def]
    def handle(method: str, params_json: str) -> str:
        params = json.loads(params_json)
        if method in ("eth_requestAccounts", "eth_accounts"):
            return json.dumps({"result": [account.address.lower()]})  # real wallets often answer lowercase
        if method == "eth_chainId":
            return json.dumps({"result": hex(42161)})
        if method == "personal_sign":
            data = bytes.fromhex(params[0].removeprefix("0x"))
            signed = account.sign_message(encode_defunct(primitive=data))
            return json.dumps({"result": "0x" + signed.signature.hex().removeprefix("0x")})
        if method == "eth_signTypedData_v4":
            signed = account.sign_message(encode_typed_data(full_message=json.loads(params[1])))
            return json.dumps({"result": "0x" + signed.signature.hex().removeprefix("0x")})
        return json.dumps({"error": f"unsupported {method}"})

    return handle


def _wait_agent(page, ready: str) -> None:  # type: ignore[no-untyped-def]
    try:
        page.wait_for_selector(f"#hs-wallet [data-field=agent][data-ready='{ready}']", timeout=20_000)
    except Exception as exc:
        error = page.inner_text("#hs-wallet [data-part=error]")
        raise AssertionError(f"agent never became ready={ready}; widget error: {error!r}") from exc


def _session(page) -> dict:  # type: ignore[no-untyped-def]
    return page.evaluate("fetch('/auth/session', {credentials: 'same-origin'}).then(r => r.json())")


def test_sign_in_enable_trading_and_logout_with_an_injected_wallet(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    account = Account.create()
    context = browser.new_context()
    context.expose_function("hsTestWallet", _wallet_handler(account))
    context.add_init_script(INJECTED_PROVIDER)
    page = context.new_page()
    page.goto(f"{server}/alpha")  # a public page with the wallet header (/system is staff only)
    page.click("#hs-wallet [data-action=connect]")
    address = page.locator("#hs-wallet [data-field=address]")
    address.wait_for(state="visible", timeout=15_000)
    assert address.get_attribute("title") == account.address
    assert address.inner_text() == f"{account.address[:6]}…{account.address[-4:]}"
    assert "trader" in page.inner_text("#hs-wallet [data-field=role]")
    assert "session until" in page.inner_text("#hs-wallet [data-field=expiry]")
    assert _session(page)["address"] == account.address

    page.click("#hs-wallet [data-action=enable-trading]")
    _wait_agent(page, "1")
    assert _session(page)["capabilities"] == {"session_authenticated": True, "execution_agent_ready": True}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wallet-injected-signed-in.png"))

    page.reload()  # the header keeps the state across pages
    page.wait_for_selector("#hs-wallet [data-field=agent][data-ready='1']", timeout=10_000)
    page.click("#hs-wallet [data-action=revoke-agent]")
    page.wait_for_selector("#hs-wallet [data-field=agent][data-ready='0']", timeout=10_000)

    page.click("#hs-wallet [data-action=logout]")
    page.locator("#hs-wallet [data-action=connect]").wait_for(state="visible", timeout=10_000)
    assert _session(page)["authenticated"] is False
    context.close()


def test_demo_wallet_signs_in_on_the_simulator(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server}/alpha")  # a public page with the wallet header (/system is staff only)
    assert page.evaluate("typeof window.ethereum") == "undefined"
    page.click("#hs-wallet [data-action=demo]")
    address = page.locator("#hs-wallet [data-field=address]")
    address.wait_for(state="visible", timeout=20_000)
    stored = page.evaluate("localStorage.getItem('hs.demoWallet.privateKey')")
    assert stored and Account.from_key(stored).address == address.get_attribute("title")
    assert page.locator("#hs-wallet [data-part=demo-warning]").is_visible()
    assert _session(page)["is_demo"] is True
    page.click("#hs-wallet [data-action=enable-trading]")
    _wait_agent(page, "1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wallet-demo-signed-in.png"))
    page.click("#hs-wallet [data-action=logout]")
    page.locator("#hs-wallet [data-action=demo]").wait_for(state="visible", timeout=10_000)
    assert _session(page)["authenticated"] is False
    context.close()
