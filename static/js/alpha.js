// /alpha: live conviction over /ws (public.alpha) and, when signed in, the private stream (exec_plan, risk_update).
// Display smoothing (seed §21): score EMA α 0.08 with a 3 % deadband, bias switches after 5 same-side readings,
// forced raw refresh after 10 s without a displayed change. The "raw values" toggle bypasses it.
import { LiveSocket, bindIndicator, frameScheduler, pageConfig } from "./live.js";

const cfg = pageConfig();
const S = cfg.smoothing;
const state = new Map(); // symbol -> {raw, gov, plan, disp}
let selected = null;
let showRaw = false;
let general = null;

const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(Number(v)) ? "—" : Number(v).toFixed(d));
const usd = (v) => (v === null || v === undefined ? "—" : "$" + Number(v).toLocaleString(undefined, { maximumFractionDigits: 0 }));

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function entry(sym) {
  let e = state.get(sym);
  if (!e) {
    e = { raw: null, gov: null, plan: null, disp: { score: null, shownAt: 0, bias: "NEUTRAL", cand: null, candN: 0 } };
    state.set(sym, e);
  }
  return e;
}

// Seed §21 front-end smoothing, per symbol.
function smooth(e, score, bias, now) {
  const d = e.disp;
  d.ema = d.ema === undefined ? score : d.ema + S.alpha * (score - d.ema);
  if (d.score === null || Math.abs(d.ema - d.score) / Math.max(1, d.score) * 100 >= S.deadband_pct) {
    d.score = d.ema; d.shownAt = now;
  }
  if (bias === d.cand) d.candN += 1; else { d.cand = bias; d.candN = 1; }
  if (d.candN >= S.bias_stability) d.bias = bias;
  if (now - d.shownAt > S.force_refresh_ms) { d.score = score; d.ema = score; d.bias = bias; d.shownAt = now; }
}

function ensureRow(sym) {
  let tr = document.getElementById("row-" + sym);
  if (tr) return tr;
  tr = document.createElement("tr");
  tr.id = "row-" + sym; tr.dataset.symbol = sym;
  tr.innerHTML = `<td class="sym">${sym}</td><td><div class="gauge"><div class="gauge-fill"></div><div class="gauge-mid"></div><div class="gauge-mark"></div></div></td>
    <td class="num score">—</td><td class="num avg">—</td><td class="bias">—</td><td class="num rr">—</td><td class="num prob">—</td>
    <td class="num size">—</td><td class="plan">—</td><td class="gate">—</td><td class="num age">—</td>`;
  document.getElementById("alpha-rows").appendChild(tr);
  return tr;
}

function renderRow(sym, e, now) {
  const tr = ensureRow(sym);
  const r = e.raw;
  if (!r) return;
  const score = showRaw ? r.score : e.disp.score;
  const bias = showRaw ? r.bias : e.disp.bias;
  tr.querySelector(".score").textContent = fmt(score);
  tr.querySelector(".avg").textContent = fmt(r.rolling_avg);
  const gauge = tr.querySelector(".gauge");
  gauge.querySelector(".gauge-fill").style.width = `${Math.max(0, Math.min(100, score))}%`;
  let mark = gauge.querySelector(".gauge-mark");
  if (!mark) { mark = document.createElement("div"); mark.className = "gauge-mark"; gauge.appendChild(mark); }
  mark.style.left = `${r.score}%`;
  const b = tr.querySelector(".bias");
  b.className = "bias " + bias;
  b.textContent = `${bias} · ${r.streak ? r.streak.count : 0}${r.streak && r.streak.side !== bias ? " " + r.streak.side[0] : ""}`;
  tr.querySelector(".rr").textContent = fmt(r.rr, 2);
  const plan = e.plan; const ref = e.gov && e.gov.reference;
  const p = plan ? plan.win_probability : r.win_probability;
  tr.querySelector(".prob").textContent = p === null || p === undefined ? "—" : (p * 100).toFixed(0) + "%";
  const sizing = plan ? plan.sizing : ref && ref.sizing;
  tr.querySelector(".size").textContent = sizing ? usd(sizing.size_usd) + (plan ? "" : " ref") : "—";
  const pl = plan ? plan.plan : ref && ref.plan;
  tr.querySelector(".plan").textContent = pl ? `${pl.kind}${pl.slices && pl.slices.length > 1 ? " ×" + pl.slices.length : ""}` : "—";
  const gate = plan ? plan.auto && plan.auto.blocked_by : e.gov && e.gov.blocked_by;
  const g = tr.querySelector(".gate");
  g.textContent = gate ? gate : (plan || e.gov ? "ready" : "—");
  g.classList.toggle("ok", !gate && !!(plan || e.gov));
  const age = now - r.ts;
  tr.querySelector(".age").textContent = age > 5000 ? "stale" : (age / 1000).toFixed(1) + "s";
  tr.classList.toggle("stale", age > 5000);
  tr.classList.toggle("selected", sym === selected);
}

function renderDetail() {
  const e = selected && state.get(selected);
  document.getElementById("detail-symbol").textContent = selected || "—";
  if (!e || !e.raw) return;
  const r = e.raw;
  document.getElementById("detail-vol").textContent = `vol ${r.volatility_regime} ×${fmt(r.volatility_amplifier, 2)} · decay ${fmt(r.decay_factor, 2)}${r.btc_blend_applied ? " · BTC blend" : ""}`;
  const parts = [];
  for (const [name, c] of Object.entries(r.components || {})) {
    const w = Math.min(50, Math.abs(c.score) * 50);
    const inputs = Object.entries(c.inputs || {}).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(5) : JSON.stringify(v)}`).join(" ");
    parts.push(`<div class="comp" data-component="${name}"><div class="comp-head"><span>${name} <span class="muted">w ${fmt(c.weight * 100, 0)}%</span></span><span>${fmt(c.score, 3)}</span></div>
      <div class="comp-bar"><div class="mid"></div><div class="fill ${c.score >= 0 ? "pos" : "neg"}" style="width:${w}%"></div></div>
      <div class="comp-inputs">${inputs}</div></div>`);
  }
  document.getElementById("components").innerHTML = parts.join("");
  const plan = e.plan ? e.plan.plan : e.gov && e.gov.reference && e.gov.reference.plan;
  const sizing = e.plan ? e.plan.sizing : e.gov && e.gov.reference && e.gov.reference.sizing;
  document.getElementById("plan-note").textContent = e.plan ? `your equity ${usd(e.plan.equity_usd)}` : e.gov ? `reference equity ${usd(e.gov.reference.equity_usd)} — sign in for your own size` : "";
  document.getElementById("plan-detail").textContent = plan && sizing
    ? `${sizing.side} ${usd(sizing.size_usd)} (${sizing.size} coin, binding ${sizing.binding}) · ${plan.kind} ${plan.slices.length} slice(s) · stop ${sizing.stop_px ?? "—"} tp ${sizing.take_profit_px ?? "—"}`
    : "—";
  const gates = e.plan ? e.plan.auto.gates : e.gov ? e.gov.gates : [];
  document.getElementById("gates-detail").innerHTML = `<div class="gate-list">${gates.map((g) => `<span class="${g.ok ? "ok" : "fail"}">${g.ok ? "✓" : "✗"} ${g.code}${g.value !== null && g.value !== undefined && typeof g.value !== "object" ? " (" + g.value + ")" : ""}</span>`).join("")}</div>`;
}

function renderStatus() {
  const el = document.getElementById("auto-general");
  el.textContent = general ? general : "no general blocker";
  el.classList.toggle("ok", !general);
}

const render = frameScheduler(() => {
  const now = Date.now();
  for (const [sym, e] of state) renderRow(sym, e, now);
  renderDetail();
  renderStatus();
});

function onEnvelope(env) {
  const now = Date.now();
  if (env.event_type === "alpha_conviction") {
    const e = entry(env.symbol);
    e.raw = env.data;
    smooth(e, env.data.score, env.data.bias, now);
    if (!selected) selected = env.symbol;
  } else if (env.event_type === "gov_update") {
    entry(env.symbol).gov = env.data;
    general = env.data.general_blocker;
  } else if (env.event_type === "exec_plan") {
    entry(env.symbol).plan = env.data;
  } else if (env.event_type === "risk_update") {
    document.getElementById("equity").textContent = env.data.equity_usd === null ? "unavailable" : usd(env.data.equity_usd);
    document.getElementById("auto-open").textContent = `${env.data.open_auto_trades} open auto trade(s)`;
    document.getElementById("auto-mode").checked = !!env.data.auto_mode;
  }
  render();
}

const indicator = bindIndicator();
const subscribed = new Set();
const socket = new LiveSocket({
  path: cfg.ws_path,
  onEnvelope,
  onState: (s) => {
    indicator(s);
    if (s === "live" && cfg.signed_in) setTimeout(() => socket.send({ type: "subscribe_private", channels: ["private.account"] }), 0);
  },
});

function subscribe(symbols) {
  for (const sym of symbols) {
    if (subscribed.has(sym)) continue;
    subscribed.add(sym);
    entry(sym);
    socket.subscribe(sym, ["public.alpha"]);
  }
}

async function discover() {
  try {
    const resp = await fetch("/alpha/symbols", { headers: { Accept: "application/json" } });
    if (!resp.ok) return;
    const body = await resp.json();
    const syms = Object.keys(body.symbols).sort((a, b) => (a === "BTC" ? -1 : b === "BTC" ? 1 : a === "ETH" ? -1 : b === "ETH" ? 1 : a.localeCompare(b)));
    subscribe(syms.slice(0, 40));
  } catch (err) { /* retried on the next tick */ }
}

async function autoMode(enabled) {
  const init = enabled === undefined ? {} : {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify({ enabled }),
  };
  const resp = await fetch("/alpha/auto-mode", init);
  if (!resp.ok) return;
  const body = await resp.json();
  document.getElementById("auto-mode").checked = body.auto_mode;
  document.getElementById("auto-open").textContent = `${body.open_auto_trades} open auto trade(s)`;
}

document.getElementById("alpha-rows").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr[data-symbol]");
  if (tr) { selected = tr.dataset.symbol; render(); }
});
document.getElementById("show-raw").addEventListener("change", (ev) => { showRaw = ev.target.checked; render(); });
document.getElementById("auto-mode").addEventListener("change", (ev) => { autoMode(ev.target.checked); });

subscribe(cfg.symbols.length ? cfg.symbols : ["BTC", "ETH"]);
discover();
setInterval(discover, 5000);
setInterval(render, 1000); // ages and the 10 s forced refresh advance without traffic
if (cfg.signed_in) { autoMode(); setInterval(() => autoMode(), 20000); }
