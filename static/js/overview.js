import { LiveSocket, bindIndicator, frameScheduler, pageConfig } from "./live.js";
import { compact, num, pct, price, signClass, signedCompact } from "./format.js";

const cfg = pageConfig();
const tbody = document.querySelector("#markets tbody");
// Rows are keyed by the stream key envelopes carry (KPEPE); they show and link the venue's name (kPEPE).
const rows = new Map(); // stream key -> {el, data}
for (const tr of tbody.querySelectorAll("tr[data-stream]")) {
  rows.set(tr.dataset.stream, { el: tr, data: {}, dirty: false });
  tr.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") location.href = tr.dataset.href; });
  tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") location.href = tr.dataset.href; });
}

const render = () => {
  for (const row of rows.values()) {
    if (!row.dirty) continue;
    row.dirty = false;
    const d = row.data, el = row.el;
    const set = (f, text) => { const c = el.querySelector(`[data-f="${f}"]`); if (c && c.textContent !== text) c.textContent = text; return c; };
    const prev = num(el.dataset.price);
    const cell = set("price", price(d.price));
    if (prev !== null && num(d.price) !== null && num(d.price) !== prev) {
      cell.classList.remove("flash-up", "flash-down");
      void cell.offsetWidth;
      cell.classList.add(num(d.price) > prev ? "flash-up" : "flash-down");
    }
    el.dataset.price = d.price ?? "";
    signClass(set("change_24h", pct(d.change_24h)), d.change_24h);
    set("volume_24h", compact(d.volume_24h));
    signClass(set("funding_annualized", pct(d.funding_annualized)), d.funding_annualized);
    set("oi_total", compact(d.oi_total));
    const cvd = d.cvd_spot_5m ?? d.cvd_venue_5m;
    signClass(set("cvd_5m", signedCompact(cvd)), cvd);
  }
};
const schedule = frameScheduler(render);

function refreshFreshness() {
  const now = Date.now();
  for (const row of rows.values()) {
    const ts = row.data.price_ts;
    const stale = !ts || now - ts > cfg.freshness_ms.price;
    const dot = row.el.querySelector('[data-f="fresh"] .dot');
    dot.className = "dot " + (stale ? "dot-stale" : "dot-ok");
    dot.title = ts ? `price ${((now - ts) / 1000).toFixed(1)} s old` : "no price";
  }
}
setInterval(refreshFreshness, 500);

// Sorting: click a header; numbers descending first.
let sortKey = null, sortDir = -1;
document.querySelectorAll("#markets th[data-sort]").forEach((th) => {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    sortDir = sortKey === key ? -sortDir : (th.dataset.type === "text" ? 1 : -1);
    sortKey = key;
    document.querySelectorAll("#markets th").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
    th.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
    const value = (r) => {
      if (key === "symbol") return r.el.dataset.stream; // the upper-case key: case-insensitive order
      if (key === "age") return -(r.data.price_ts || 0);
      if (key === "cvd_5m") return num(r.data.cvd_spot_5m ?? r.data.cvd_venue_5m);
      return num(r.data[key] ?? r.el.querySelector(`[data-f="${key}"]`)?.textContent);
    };
    const sorted = [...rows.values()].sort((a, b) => {
      const va = value(a), vb = value(b);
      if (va === vb) return 0;
      if (va === null || va === undefined) return 1;
      if (vb === null || vb === undefined) return -1;
      return (va > vb ? 1 : -1) * sortDir;
    });
    for (const r of sorted) tbody.appendChild(r.el);
  });
});

const live = new LiveSocket({
  path: cfg.ws_path,
  onState: bindIndicator(),
  onEnvelope: (env) => {
    if (env.event_type !== "agg_update" || env.data.kind === "candle") return;
    const row = rows.get(env.symbol);
    if (!row) return;
    Object.assign(row.data, env.data);
    row.dirty = true;
    schedule();
  },
});
for (const s of cfg.symbols) live.subscribe(s);
if (!rows.size) setTimeout(() => location.reload(), 3000); // ingest still starting
