// HyperSentry header wallet widget: Sign-In with Ethereum through an EIP-1193 provider (window.ethereum) or,
// on the simulator only, a demo wallet whose key is generated in this browser and kept in localStorage.
// The server builds the EIP-4361 message; the browser only signs it. ethers (vendored, no build step) is loaded
// on first use for EIP-55 checksums and the demo wallet's secp256k1/keccak/EIP-712 signing.

const ETHERS_URL = new URL("../vendor/ethers/ethers-6.17.0.min.js", import.meta.url).href;
const DEMO_KEY = "hs.demoWallet.privateKey";
const DEMO_FLAG = "hs.demoWallet.active";

const root = document.getElementById("hs-wallet");
let ethersLib = null;
let state = null;

async function ethers() {
  if (!ethersLib) ethersLib = await import(ETHERS_URL);
  return ethersLib;
}

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRFToken"] = csrfToken();
    init.body = JSON.stringify(body || {});
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.message) || `HTTP ${res.status}`);
    err.code = data && data.code;
    throw err;
  }
  return data;
}

function part(name) { return root.querySelector(`[data-part="${name}"]`); }
function field(name) { return root.querySelector(`[data-field="${name}"]`); }
function action(name) { return root.querySelector(`[data-action="${name}"]`); }

function showError(err) {
  const box = part("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = err.code ? `${err.message} (${err.code})` : String(err.message || err);
}

function short(address) { return `${address.slice(0, 6)}…${address.slice(-4)}`; }

function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function render(next) {
  state = next;
  root.dataset.authenticated = state && state.authenticated ? "1" : "0";
  const signedIn = !!(state && state.authenticated);
  part("signed-out").hidden = signedIn;
  part("signed-in").hidden = !signedIn;
  part("demo-warning").hidden = !(signedIn && state.is_demo) && localStorage.getItem(DEMO_FLAG) !== "1";
  const warnings = part("warnings");
  warnings.hidden = true;
  if (signedIn) {
    field("address").textContent = short(state.address);
    field("address").title = state.address;
    field("address").dataset.address = state.address;
    field("role").textContent = state.role;
    field("expiry").textContent = state.session && state.session.expires_at_ms
      ? `session until ${fmtTime(state.session.expires_at_ms)}` : "";
    const ready = state.capabilities.execution_agent_ready;
    field("agent").textContent = ready ? `trading on · agent until ${fmtTime(state.agent.valid_until_ms)}` : "trading off";
    field("agent").dataset.ready = ready ? "1" : "0";
    action("enable-trading").textContent = ready ? "Replace agent" : "Enable trading";
    action("revoke-agent").hidden = !ready;
    if (state.warnings && state.warnings.length) {
      warnings.hidden = false;
      warnings.textContent = state.warnings.map((w) => w.message).join(" ");
    }
  }
  window.dispatchEvent(new CustomEvent("hs:auth", { detail: state }));
}

function utf8ToHex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- signers: the browser wallet (EIP-1193) or the demo wallet -----------------------------------------------
async function providerSigner() {
  const provider = window.ethereum;
  if (!provider || typeof provider.request !== "function") {
    const demo = root.dataset.demoAllowed === "1" ? " Or use the demo wallet (simulator only)." : "";
    throw new Error("No browser wallet found: install one (e.g. MetaMask)." + demo);
  }
  const { getAddress } = await ethers();
  const accounts = await provider.request({ method: "eth_requestAccounts" });
  if (!accounts || !accounts.length) throw new Error("The wallet returned no account.");
  const address = getAddress(accounts[0]); // wallets often return lowercase; the server wants EIP-55
  let chainId = null;
  try { chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16); } catch (_) { chainId = null; }
  return {
    kind: "wallet",
    address,
    chainId,
    signMessage: (message) => provider.request({ method: "personal_sign", params: [utf8ToHex(message), address] }),
    signTypedData: (typed) =>
      provider.request({ method: "eth_signTypedData_v4", params: [address, JSON.stringify(typed)] }),
  };
}

async function demoSigner() {
  if (root.dataset.demoAllowed !== "1") throw new Error("The demo wallet only works against the simulator.");
  const { Wallet } = await ethers();
  let key = localStorage.getItem(DEMO_KEY);
  const wallet = key ? new Wallet(key) : Wallet.createRandom();
  if (!key) localStorage.setItem(DEMO_KEY, wallet.privateKey);
  return {
    kind: "demo",
    address: wallet.address,
    chainId: null,
    signMessage: (message) => wallet.signMessage(message),
    signTypedData: (typed) => {
      const types = { ...typed.types };
      delete types.EIP712Domain; // ethers derives the domain type itself
      return wallet.signTypedData(typed.domain, types, typed.message);
    },
  };
}

let signer = null;

async function currentSigner() {
  if (signer) return signer;
  signer = localStorage.getItem(DEMO_FLAG) === "1" && state && state.is_demo ? await demoSigner() : await providerSigner();
  return signer;
}

async function signIn(makeSigner) {
  showError(null);
  signer = await makeSigner();
  const params = new URLSearchParams({ address: signer.address });
  if (signer.kind === "demo") params.set("wallet", "demo");
  let challenge;
  try {
    if (signer.chainId) params.set("chain_id", String(signer.chainId));
    challenge = await api(`/auth/nonce?${params}`);
  } catch (err) {
    if (err.code !== "unsupported_chain_id") throw err;
    params.delete("chain_id"); // the wallet sits on a chain we do not list: sign for the default one
    challenge = await api(`/auth/nonce?${params}`);
  }
  const signature = await signer.signMessage(challenge.message);
  const next = await api("/auth/verify", { method: "POST", body: { message: challenge.message, signature } });
  if (signer.kind === "demo") localStorage.setItem(DEMO_FLAG, "1");
  else localStorage.removeItem(DEMO_FLAG);
  render(next);
  const page = document.getElementById("hs-signin");
  if (page && page.dataset.next && page.dataset.next !== window.location.pathname) window.location.assign(page.dataset.next);
}

async function enableTrading() {
  showError(null);
  const s = await currentSigner();
  const prepared = await api("/auth/agent/prepare", { method: "POST" });
  const signature = await s.signTypedData(prepared.typed_data);
  render(await api("/auth/agent/approve", { method: "POST", body: { signature } }));
}

async function revokeAgent() {
  showError(null);
  render(await api("/auth/agent/revoke", { method: "POST" }));
}

async function logout() {
  showError(null);
  signer = null;
  localStorage.removeItem(DEMO_FLAG);
  render(await api("/auth/logout", { method: "POST" }));
}

function guard(fn) {
  return async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try { await fn(); } catch (err) { showError(err); } finally { button.disabled = false; }
  };
}

if (root) {
  action("connect").addEventListener("click", guard(() => signIn(providerSigner)));
  const demo = action("demo");
  if (demo) demo.addEventListener("click", guard(() => signIn(demoSigner)));
  action("enable-trading").addEventListener("click", guard(enableTrading));
  action("revoke-agent").addEventListener("click", guard(revokeAgent));
  action("logout").addEventListener("click", guard(logout));
  if (window.ethereum && typeof window.ethereum.on === "function") {
    window.ethereum.on("accountsChanged", () => { signer = null; });
  }
  api("/auth/session").then(render).catch(showError);
}

export { api, render };
