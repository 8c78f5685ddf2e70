import { LiveSocket, bindIndicator, frameScheduler, pageConfig } from "./live.js";
import { age, clock, compact, countdown, num, pct, price, signClass, signedCompact, size } from "./format.js";

const cfg = pageConfig();
const SYMBOL = cfg.symbol; // the venue's name (kPEPE): REST, orders, what the page shows
const STREAM = cfg.stream_symbol || SYMBOL; // the key /ws envelopes carry (KPEPE)
const $ = (id) => document.getElementById(id);
const TS_FIELD = { price: "price_ts", book: "book_ts", trades: "trades_ts", oi: "oi_ts", funding: "funding_ts", cvd: "cvd_ts" };
const BOOK_ROWS = 14, TAPE_ROWS = 60;

const state = { snap: cfg.snapshot || { symbol: SYMBOL }, trades: [], seenTids: new Set(), dirty: new Set(["all"]) };
let interval = cfg.intervals[0];

// --- chart ---------------------------------------------------------------------------------------------------
const chartEl = $("chart");
const chart = LightweightCharts.createChart(chartEl, {
  autoSize: true,
  layout: { background: { color: "#0d1117" }, textColor: "#8b949e", fontFamily: "ui-monospace, Menlo, monospace", fontSize: 11 },
  grid: { vertLines: { color: "#161b22" }, horzLines: { color: "#161b22" } },
  rightPriceScale: { borderColor: "#21262d" },
  timeScale: { borderColor: "#21262d", timeVisible: true, secondsVisible: false },
  crosshair: { mode: 0 },
});
const candles = chart.addCandlestickSeries({
  upColor: "#17c27a", downColor: "#f0475c", borderVisible: false, wickUpColor: "#17c27a", wickDownColor: "#f0475c",
});
const volume = chart.addHistogramSeries({ priceScaleId: "vol", priceFormat: { type: "volume" } });
chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
let lastBar = null;

function toBar(c) {
  return { time: Math.floor(c.t / 1000), open: num(c.o), high: num(c.h), low: num(c.l), close: num(c.c), v: num(c.v) || 0 };
}
function volBar(b) { return { time: b.time, value: b.v, color: b.close >= b.open ? "rgba(23,194,122,.35)" : "rgba(240,71,92,.35)" }; }

let candleRetry = null;
async function loadCandles(attempt = 0) {
  clearTimeout(candleRetry);
  if (attempt === 0) $("chart-source").textContent = "loading…";
  try {
    const r = await fetch(`/trading/candles?coin=${encodeURIComponent(SYMBOL)}&interval=${interval}`, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const body = await r.json();
    const bars = (body.candles || []).map(toBar).filter((b) => b.open !== null).sort((a, b) => a.time - b.time);
    const dedup = bars.filter((b, i) => i === 0 || b.time !== bars[i - 1].time);
    candles.setData(dedup);
    volume.setData(dedup.map(volBar));
    lastBar = dedup.length ? dedup[dedup.length - 1] : null;
    $("chart-source").textContent = `${body.source || ""}${body.stale ? " · stale" : ""}`;
  } catch (err) {
    // Transient (venue budget, ingest still backfilling): retry with backoff instead of leaving a blank chart.
    const delay = Math.min(30000, 2000 * 2 ** attempt);
    $("chart-source").textContent = `candles unavailable (${err.message}) · retry in ${Math.round(delay / 1000)} s`;
    candleRetry = setTimeout(() => loadCandles(attempt + 1), delay);
  }
}
function applyLiveCandle(c) {
  if (!c) return;
  const bar = toBar(c);
  if (bar.open === null || (lastBar && bar.time < lastBar.time)) return;
  candles.update(bar);
  volume.update(volBar(bar));
  lastBar = bar;
}
function applyPriceToBar(p) {
  const px = num(p);
  if (px === null || !lastBar) return;
  const bar = { ...lastBar, close: px, high: Math.max(lastBar.high, px), low: Math.min(lastBar.low, px) };
  candles.update(bar);
  lastBar = bar;
}
$("intervals").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-interval]");
  if (!b || b.dataset.interval === interval) return;
  interval = b.dataset.interval;
  document.querySelectorAll("#intervals button").forEach((x) => x.classList.toggle("active", x === b));
  loadCandles();
});

// --- renderers -------------------------------------------------------------------------------------------------
function setText(id, text) { const el = $(id); if (el && el.textContent !== text) el.textContent = text; return el; }

function renderTicker(s) {
  const el = $("last-price");
  const prev = num(el.dataset.px);
  const cur = num(s.price);
  setText("last-price", price(s.price));
  if (prev !== null && cur !== null && prev !== cur) el.classList.toggle("up", cur > prev), el.classList.toggle("down", cur < prev);
  el.dataset.px = s.price ?? "";
  signClass(setText("chg-24h", pct(s.change_24h)), s.change_24h);
  setText("mark-px", price(s.mark_px));
  setText("oracle-px", price(s.oracle_px));
  setText("vol-24h", compact(s.volume_24h));
  document.title = `${price(s.price)} ${SYMBOL} · HyperSentry`;
}

function ladderRows(levels, side, maxTotal) {
  let total = 0;
  const out = [];
  for (const [px, sz] of levels.slice(0, BOOK_ROWS)) {
    total += num(sz) || 0;
    out.push({ px, sz, total });
  }
  const html = out.map((r) => {
    const w = maxTotal ? Math.min(100, (r.total / maxTotal) * 100) : 0;
    return `<div class="lvl ${side}" style="--depth:${w.toFixed(1)}%"><span class="px">${r.px}</span><span>${size(r.sz)}</span><span>${size(r.total)}</span></div>`;
  });
  return side === "ask" ? html.reverse().join("") : html.join("");
}
function cumulative(levels) { return levels.slice(0, BOOK_ROWS).reduce((a, [, sz]) => a + (num(sz) || 0), 0); }

function renderBook(s) {
  const book = s.book || { bids: [], asks: [] };
  const bids = book.bids || [], asks = book.asks || [];
  const maxTotal = Math.max(cumulative(bids), cumulative(asks));
  $("asks").innerHTML = ladderRows(asks, "ask", maxTotal);
  $("bids").innerHTML = ladderRows(bids, "bid", maxTotal);
  if (bids.length && asks.length) {
    const bb = num(bids[0][0]), ba = num(asks[0][0]);
    const spread = ba - bb, mid = (ba + bb) / 2;
    setText("spread", `spread ${spread.toPrecision(4)} · ${((spread / mid) * 1e4).toFixed(2)} bps`);
  } else setText("spread", "spread —");
}

function addTrades(list) {
  if (!list || !list.length) return;
  const fresh = [];
  for (const t of list) {
    const id = t.tid ?? `${t.time}:${t.px}:${t.sz}`;
    if (state.seenTids.has(id)) continue;
    state.seenTids.add(id);
    fresh.push(t);
  }
  fresh.sort((a, b) => a.time - b.time);
  state.trades = fresh.reverse().concat(state.trades).slice(0, TAPE_ROWS);
  if (state.seenTids.size > 5000) state.seenTids = new Set(state.trades.map((t) => t.tid ?? `${t.time}:${t.px}:${t.sz}`));
}
function renderTape() {
  const notionals = state.trades.map((t) => (num(t.px) || 0) * (num(t.sz) || 0));
  const avg = notionals.length ? notionals.reduce((a, b) => a + b, 0) / notionals.length : 0;
  const large = Math.max(avg * 4, 1);
  $("tape").innerHTML = state.trades.map((t, i) => {
    const cls = (t.side === "B" ? "buy" : "sell") + (notionals[i] >= large ? " large" : "");
    return `<div class="print ${cls}"><span class="px">${t.px}</span><span>${size(t.sz)}</span><span class="muted">${clock(t.time)}</span></div>`;
  }).join("");
}

function nextFundingMs(s) {
  if (num(s.next_funding_ms)) return s.next_funding_ms;
  const hour = 3600000;
  return Math.ceil(Date.now() / hour) * hour; // Hyperliquid funds every hour on the hour
}
function renderStats(s) {
  setText("oi-total", compact(s.oi_total));
  setText("oi-hl", compact(s.oi_hl));
  setText("oi-bn", compact(s.oi_binance_perp));
  setText("oi-source", s.oi_source || "—");
  const fr = num(s.funding_rate);
  signClass(setText("funding-rate", fr === null ? "—" : `${(fr * 100).toFixed(4)}% / h`), fr);
  signClass(setText("funding-ann", pct(s.funding_annualized)), s.funding_annualized);
  setText("premium", s.premium === null || s.premium === undefined ? "—" : `${(num(s.premium) * 100).toFixed(4)}%`);
  signClass(setText("cvd-venue", signedCompact(s.cvd_venue)), s.cvd_venue);
  setText("cvd-venue-w", `${signedCompact(s.cvd_venue_1m)} / ${signedCompact(s.cvd_venue_5m)}`);
  setText("cvd-spot-w", `${signedCompact(s.cvd_spot_1m)} / ${signedCompact(s.cvd_spot_5m)}`);
  setText("cvd-source", s.cvd_source || "—");
}

// Ages and STALE markers are recomputed on a timer: a feed that stops sending must still turn stale.
function renderFreshness() {
  const now = Date.now(), s = state.snap;
  for (const [group, field] of Object.entries(TS_FIELD)) {
    const ts = s[field];
    const ms = ts ? now - ts : null;
    const stale = ms === null || ms > cfg.freshness_ms[group];
    document.querySelectorAll(`[data-age="${group}"]`).forEach((el) => { el.textContent = age(ms); });
    document.querySelectorAll(`[data-group="${group}"]`).forEach((el) => el.classList.toggle("is-stale", stale));
  }
  setText("funding-countdown", countdown(nextFundingMs(s) - now));
}

const render = () => {
  const s = state.snap;
  renderTicker(s);
  renderBook(s);
  renderTape();
  renderStats(s);
  renderFreshness();
};
const schedule = frameScheduler(render);

function onEnvelope(env) {
  if (env.symbol !== STREAM || env.event_type !== "agg_update") return;
  const d = env.data;
  if (d.kind === "candle") { applyLiveCandle(d.candles && d.candles[interval]); return; }
  const prevTs = state.snap.updated_at || 0;
  if (d.updated_at && d.updated_at < prevTs) return; // an older snapshot (e.g. the subscribe snapshot racing an update)
  state.snap = d;
  addTrades(d.trades_batch && d.trades_batch.length ? d.trades_batch : d.trades);
  if (d.candles_live && d.candles_live[interval]) applyLiveCandle(d.candles_live[interval]);
  else applyPriceToBar(d.price);
  schedule();
}

addTrades(state.snap.trades);
render();
setInterval(renderFreshness, 250);
loadCandles();
const live = new LiveSocket({ path: cfg.ws_path, onEnvelope, onState: bindIndicator() });
live.subscribe(STREAM, ["public.market"]);
