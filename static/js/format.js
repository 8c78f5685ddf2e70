const compactFmt = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

export function num(v) {
  if (v === null || v === undefined || v === "") return null;
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? n : null;
}
export function price(v) {
  const n = num(v);
  if (n === null) return "—";
  if (typeof v === "string") return v;
  const digits = n >= 1000 ? 1 : n >= 1 ? 3 : 6;
  return n.toFixed(digits);
}
export function compact(v) { const n = num(v); return n === null ? "—" : compactFmt.format(n); }
export function pct(v, digits = 2) { const n = num(v); return n === null ? "—" : `${n >= 0 ? "+" : ""}${n.toFixed(digits)}%`; }
export function signedCompact(v) { const n = num(v); return n === null ? "—" : (n >= 0 ? "+" : "") + compactFmt.format(n); }
export function size(v) { const n = num(v); return n === null ? "—" : n >= 100 ? n.toFixed(1) : n.toFixed(4); }
export function age(ms) {
  if (ms === null || ms === undefined) return "no data";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}
export function clock(ms) {
  const d = new Date(ms);
  return d.toISOString().slice(11, 19);
}
export function countdown(ms) {
  if (ms === null || ms === undefined || ms < 0) return "—";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? `${h}:` : "") + `${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
}
export function signClass(el, v) {
  const n = num(v);
  el.classList.toggle("up", n !== null && n > 0);
  el.classList.toggle("down", n !== null && n < 0);
}
