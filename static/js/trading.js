// Order entry and the private panels of /terminal/<SYM>: ticket with a live risk verdict (POST /trading/preview),
// positions (close), open orders (cancel), fills, account, and the kill-switch / breaker banner.
// Live over the private stream: a /ws socket that sends subscribe_private once signed in, with a REST resync
// (GET /trading/stream/resync?since=<seq>) when the per-user sequence shows a gap or after a reconnect.
// Every state-changing click sends a fresh Idempotency-Key (crypto.randomUUID()) and the CSRF token.
import { LiveSocket } from "./live.js";

const grid = document.getElementById("exec-grid");
const SYMBOL = grid ? grid.dataset.symbol : "";
const $ = (sel, root = document) => root.querySelector(sel);
const ticket = $("#ticket");
const state = { side: "buy", type: "limit", authed: false, agentReady: false, lastSeq: 0, socket: null, controls: null };

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "k" + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
}

async function api(path, { method = "GET", body, idempotent = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRFToken"] = csrfToken();
    if (idempotent) init.headers["Idempotency-Key"] = newKey();
    init.body = JSON.stringify(body || {});
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  return { status: res.status, ok: res.ok, data: data || {} };
}

function fmt(v, digits) {
  if (v === null || v === undefined || v === "") return "—";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return digits === undefined ? String(v) : n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: Math.min(2, digits) });
}
function cls(v) { const n = Number(v); return n > 0 ? "up" : n < 0 ? "down" : ""; }
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

// --- ticket -----------------------------------------------------------------------------------------------
function orderBody() {
  const f = new FormData(ticket);
  const body = { symbol: SYMBOL, side: state.side, type: state.type, reduce_only: f.get("reduce_only") === "on" };
  const size = (f.get("size") || "").trim();
  if (f.get("unit") === "usd") body.size_usd = size || null; else body.size = size || null;
  if (state.type === "limit") { body.price = (f.get("price") || "").trim() || null; body.tif = f.get("tif"); }
  const lev = (f.get("leverage") || "").trim();
  if (lev) body.leverage = Number(lev);
  for (const k of ["tp_price", "sl_price"]) { const v = (f.get(k) || "").trim(); if (v) body[k] = v; }
  return body;
}

let previewTimer = null;
let previewSeq = 0;
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 250);
}

async function preview() {
  const box = $("#ticket-verdict");
  if (!state.authed) return;
  const body = orderBody();
  if (!body.size && !body.size_usd) { box.dataset.ok = ""; box.textContent = "Risk check: enter a size"; return; }
  if (state.type === "limit" && !body.price) { box.dataset.ok = ""; box.textContent = "Risk check: enter a price"; return; }
  const seq = ++previewSeq;
  const r = await api("/trading/preview", { method: "POST", body });
  if (seq !== previewSeq) return;
  if (r.status === 400) { box.dataset.ok = "0"; box.textContent = `Risk check: ${r.data.message || "invalid input"}`; return; }
  const v = r.data;
  box.dataset.ok = v.ok ? "1" : "0";
  box.dataset.reason = v.reason || "";
  if (v.ok) {
    const o = v.order;
    box.textContent = `Risk check: OK — ${o.side} ${o.size} @ ${o.price}${o.type === "market" ? " (IOC bound)" : ""} ≈ $${v.notional_usd}`;
  } else {
    box.textContent = `Risk check: ${v.reason} — ${v.message}`;
  }
}

async function submitOrder(ev) {
  ev.preventDefault();
  const btn = $("#ticket-submit");
  const out = $("#ticket-result");
  btn.disabled = true;
  try {
    const r = await api("/trading/order", { method: "POST", body: orderBody(), idempotent: true });
    const o = r.data.order;
    if (r.ok && o) {
      out.className = "ticket-result ok";
      out.textContent = `${o.side} ${o.size} ${o.symbol}: ${o.state}${o.venue_oid ? " (oid " + o.venue_oid + ")" : ""}`;
    } else {
      out.className = "ticket-result err";
      out.textContent = `${r.data.code || r.status}: ${r.data.message || "refused"}`;
    }
    refreshAll();
  } finally {
    btn.disabled = false;
  }
}

function bindTicket() {
  for (const b of ticket.querySelectorAll("[data-side]")) {
    b.addEventListener("click", () => {
      state.side = b.dataset.side;
      ticket.querySelectorAll("[data-side]").forEach((x) => x.classList.toggle("active", x === b));
      const submit = $("#ticket-submit");
      submit.classList.toggle("buy", state.side === "buy");
      submit.classList.toggle("sell", state.side === "sell");
      schedulePreview();
    });
  }
  for (const b of ticket.querySelectorAll("[data-type]")) {
    b.addEventListener("click", () => {
      state.type = b.dataset.type;
      ticket.querySelectorAll("[data-type]").forEach((x) => x.classList.toggle("active", x === b));
      ticket.querySelectorAll("[data-for='limit']").forEach((x) => { x.hidden = state.type !== "limit"; });
      schedulePreview();
    });
  }
  ticket.addEventListener("input", schedulePreview);
  ticket.addEventListener("change", schedulePreview);
  ticket.addEventListener("submit", submitOrder);
}

// --- panels -----------------------------------------------------------------------------------------------
function renderPositions(positions) {
  const tb = $("#positions tbody");
  tb.innerHTML = positions.length ? positions.map((p) => `<tr data-symbol="${esc(p.symbol)}">
    <td>${esc(p.symbol)}</td><td class="${cls(p.size)}">${fmt(p.size)}</td><td>${fmt(p.entry_price)}</td>
    <td>${fmt(p.position_value, 2)}</td><td class="${cls(p.unrealized_pnl)}">${fmt(p.unrealized_pnl, 4)}</td>
    <td class="${cls(p.return_on_equity)}">${p.return_on_equity ? (Number(p.return_on_equity) * 100).toFixed(2) + "%" : "—"}</td>
    <td>${fmt(p.liquidation_price)}</td>
    <td><button type="button" class="hs-btn hs-btn-ghost" data-close="${esc(p.symbol)}">Close</button></td></tr>`).join("")
    : `<tr><td colspan="8" class="muted">No open positions</td></tr>`;
}

function renderOrders(orders) {
  const tb = $("#open-orders tbody");
  tb.innerHTML = orders.length ? orders.map((o) => `<tr data-order-id="${o.id}" data-state="${esc(o.state)}">
    <td>${esc(o.symbol)}</td><td class="${o.side === "buy" ? "up" : "down"}">${esc(o.side)}</td><td>${esc(o.type)}${o.reduce_only ? " · RO" : ""}</td>
    <td>${fmt(o.size)}</td><td>${fmt(o.price)}</td><td>${fmt(o.trigger_price)}</td><td>${esc(o.state)}</td>
    <td><button type="button" class="hs-btn hs-btn-ghost" data-cancel="${o.id}">Cancel</button></td></tr>`).join("")
    : `<tr><td colspan="8" class="muted">No open orders</td></tr>`;
}

function renderFills(fills) {
  const tb = $("#fills tbody");
  tb.innerHTML = fills.length ? fills.slice(0, 30).map((f) => `<tr data-tid="${f.tid}">
    <td>${new Date(f.time_ms).toISOString().slice(11, 19)}</td><td>${esc(f.symbol)}</td>
    <td class="${f.side === "buy" ? "up" : "down"}">${esc(f.side)}</td><td>${fmt(f.size)}</td><td>${fmt(f.price)}</td>
    <td>${fmt(f.fee, 4)}</td><td class="${cls(f.net_pnl)}" title="closed PnL ${fmt(f.closed_pnl, 4)} − fee">${f.net_pnl == null ? "—" : fmt(f.net_pnl, 4)}</td></tr>`).join("")
    : `<tr><td colspan="7" class="muted">No fills yet</td></tr>`;
}

function renderAccount(a) {
  for (const el of document.querySelectorAll("[data-acct]")) {
    if (!(el.dataset.acct in a)) continue; // stream updates carry the venue fields only
    const v = a[el.dataset.acct];
    el.textContent = fmt(v, 2);
    el.className = el.dataset.acct.includes("pnl") ? cls(v) : "";
  }
}

function renderControls(c) {
  state.controls = c;
  const banner = $("#exec-banner");
  const msgs = [];
  let severe = false;
  if (c.kill_switch.engaged) { severe = true; msgs.push(`KILL SWITCH ENGAGED — new positions blocked; closing and stops still work (${c.kill_switch.reason || "no reason"}, by ${c.kill_switch.by})`); }
  if (!c.server_trading_enabled) { severe = true; msgs.push("Server-side trading is disabled"); }
  if (c.admin_only) msgs.push("Admin-only trading mode");
  for (const b of c.breakers || []) {
    if (b.state === "half_open") { msgs.push(`Breaker ${b.kind} half-open: orders pass again (${b.reason})`); continue; }
    severe = true;
    const until = b.cooldown_until_ms ? ` — reopens on its own at ${new Date(b.cooldown_until_ms).toLocaleTimeString()}` : "";
    msgs.push(`Circuit breaker ${b.kind}${b.scope === "user" ? " (yours)" : ""} tripped: ${b.reason}${until}; closing still works`);
  }
  banner.hidden = msgs.length === 0;
  banner.className = "exec-banner" + (severe ? "" : " warn");
  banner.textContent = msgs.join(" · ");
  const perms = c.permissions || {};
  $("#exec-kill").hidden = !(perms.engage_kill_switch && !c.kill_switch.engaged);
  $("#exec-unkill").hidden = !(perms.disengage_kill_switch && c.kill_switch.engaged);
}

let refreshTimer = null;
function refreshAll() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(doRefresh, 120);
}

async function doRefresh() {
  if (!state.authed) return;
  const [orders, fills, positions, account, controls] = await Promise.all([
    api("/trading/orders?open=1"), api("/trading/fills"), api("/trading/positions"), api("/trading/account"),
    api("/trading/controls"),
  ]);
  if (orders.ok) renderOrders(orders.data.orders);
  if (fills.ok) renderFills(fills.data.fills);
  if (positions.ok) renderPositions(positions.data.positions);
  if (account.ok) renderAccount(account.data);
  const staleNote = $("#exec-stale");
  if (staleNote && account.ok) {
    staleNote.hidden = !account.data.stale;
    staleNote.textContent = account.data.stale
      ? `venue busy: figures as of ${new Date(account.data.as_of_ms).toLocaleTimeString()}` : "";
  }
  if (controls.ok) renderControls(controls.data);
}

function bindTables() {
  document.getElementById("exec-grid").addEventListener("click", async (ev) => {
    const cancel = ev.target.closest("[data-cancel]");
    const close = ev.target.closest("[data-close]");
    if (cancel) {
      cancel.disabled = true;
      const r = await api("/trading/cancel", { method: "POST", body: { order_id: Number(cancel.dataset.cancel) }, idempotent: true });
      if (!r.ok) $("#ticket-result").textContent = `cancel: ${r.data.code}: ${r.data.message}`;
      refreshAll();
    } else if (close) {
      close.disabled = true;
      const r = await api("/trading/positions/close", { method: "POST", body: { symbol: close.dataset.close }, idempotent: true });
      const out = $("#ticket-result");
      out.className = "ticket-result " + (r.ok ? "ok" : "err");
      out.textContent = r.ok ? `close ${close.dataset.close}: ${r.data.order.state}` : `close: ${r.data.code}: ${r.data.message}`;
      refreshAll();
    }
  });
  $("#exec-kill").addEventListener("click", async () => {
    const reason = window.prompt("Kill switch: reason (blocks every order that adds risk, everywhere, and cancels them; closes and stops still work)");
    if (!reason) return;
    await api("/trading/killswitch", { method: "POST", body: { action: "engage", reason } });
    refreshAll();
  });
  $("#exec-unkill").addEventListener("click", async () => {
    const reason = window.prompt("Re-enable trading: reason");
    if (!reason) return;
    await api("/trading/killswitch", { method: "POST", body: { action: "disengage", reason } });
    refreshAll();
  });
}

// --- private stream ---------------------------------------------------------------------------------------
class PrivateSocket extends LiveSocket {
  open() {
    super.open();
    const ws = this.ws;
    const baseOpen = ws.onopen;
    ws.onopen = () => {
      baseOpen();
      this.send({ type: "subscribe_private", channels: ["private.execution", "private.account"] });
      resync(); // anything missed while the socket was down
    };
    const baseMessage = ws.onmessage;
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string" && ev.data.includes('"subscribed_private"')) setStream("live");
      baseMessage(ev);
    };
    const baseClose = ws.onclose;
    ws.onclose = (ev) => { setStream("reconnecting"); if (!this.closed) baseClose(ev); };
  }
  shutdown() { this.closed = true; if (this.ws) this.ws.close(); }
}

function setStream(s) {
  const el = $("#exec-stream-state");
  el.dataset.state = s;
  el.textContent = s === "live" ? "private stream live" : `private stream ${s}`;
}

function onEnvelope(env) {
  if (!env.seq || !["order_update", "fill_update", "execution_event", "account_update", "risk_update"].includes(env.event_type)) return;
  if (state.lastSeq && env.seq > state.lastSeq + 1) { resync(); return; }
  if (env.seq <= state.lastSeq) return;
  state.lastSeq = env.seq;
  apply(env);
}

function apply(env) {
  if (env.event_type === "account_update") {
    renderAccount(env.data);
    renderPositions(env.data.positions || []);
  } else if (env.event_type === "risk_update") {
    api("/trading/controls").then((r) => r.ok && renderControls(r.data));
  } else {
    refreshAll();
  }
}

let resyncing = false;
async function resync() {
  if (resyncing || !state.authed) return;
  resyncing = true;
  try {
    const r = await api(`/trading/stream/resync?since=${state.lastSeq}`);
    if (r.ok) {
      for (const env of r.data.events) if (env.seq > state.lastSeq) { state.lastSeq = env.seq; }
      refreshAll();
    }
  } finally {
    resyncing = false;
  }
}

// --- auth -------------------------------------------------------------------------------------------------
function onAuth(s) {
  const authed = !!(s && s.authenticated);
  const ready = !!(authed && s.capabilities && s.capabilities.execution_agent_ready);
  const changed = authed !== state.authed;
  state.authed = authed;
  state.agentReady = ready;
  $("#exec-signin").hidden = authed && ready;
  $("#exec-signin").textContent = authed ? "Enable trading (header) to approve a trading agent." : "Sign in (header) and enable trading to place orders.";
  grid.hidden = !authed;
  $("#ticket-submit").disabled = !ready;
  if (changed) {
    if (state.socket) { state.socket.shutdown(); state.socket = null; }
    state.lastSeq = 0;
    if (authed) {
      // The socket authenticates at connect: open it after sign-in so it carries the session.
      state.socket = new PrivateSocket({ onEnvelope, onState: () => {} });
      refreshAll();
      schedulePreview();
    } else {
      setStream("off");
      $("#exec-banner").hidden = true;
    }
  }
}

if (grid && ticket) {
  bindTicket();
  bindTables();
  window.addEventListener("hs:auth", (ev) => onAuth(ev.detail));
  api("/auth/session").then((r) => r.ok && onAuth(r.data));
  setInterval(() => state.authed && refreshAll(), 10000);
}
