// The /ws client: reconnects with backoff, resubscribes, reports its state to the header indicator.
export class LiveSocket {
  constructor({ path = "/ws", onEnvelope, onState }) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.onEnvelope = onEnvelope;
    this.onState = onState || (() => {});
    this.subs = new Map(); // coin -> channels
    this.backoff = 500;
    this.ws = null;
    this.lastMessage = 0;
    this.open();
    setInterval(() => this.keepalive(), 15000);
  }
  open() {
    this.onState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.onState("live");
      for (const [coin, channels] of this.subs) this.send({ type: "subscribe", coin, channels });
    };
    ws.onmessage = (ev) => {
      this.lastMessage = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.event_type) this.onEnvelope(msg);
      else if (msg.type === "error") console.warn("ws error frame", msg.code, msg.message);
    };
    ws.onclose = (ev) => {
      this.onState(ev.code === 4001 ? "signed out" : "reconnecting");
      const delay = this.backoff;
      this.backoff = Math.min(this.backoff * 2, 10000);
      setTimeout(() => this.open(), delay);
    };
    ws.onerror = () => {}; // onclose follows and reconnects
  }
  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }
  subscribe(coin, channels = ["public.market"]) {
    this.subs.set(coin, channels);
    this.send({ type: "subscribe", coin, channels });
  }
  unsubscribe(coin) {
    this.subs.delete(coin);
    this.send({ type: "unsubscribe", coin });
  }
  keepalive() { this.send({ type: "ping" }); }
}

export function bindIndicator() {
  const el = document.getElementById("conn");
  if (!el) return () => {};
  el.hidden = false;
  const label = el.querySelector(".conn-label");
  return (state) => {
    el.className = "conn conn-" + state.replace(/\s+/g, "-");
    label.textContent = state;
  };
}

// One render per animation frame, whatever the message rate.
export function frameScheduler(render) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; render(); });
  };
}

export function pageConfig() {
  return JSON.parse(document.getElementById("page-config").textContent);
}
