// The live connection: the WebSocket at /api/v1/ws, or REST polling when it is missing.
import { token } from "./api.js";

const listeners = new Set();
let ws = null;
let state = "connecting";   // connecting | live | polling
let nextSub = 0;
const pending = new Map();   // request tag -> callback awaiting "subscribed"
const subscriptions = new Map();   // server id -> callback

export function status() { return state; }
export function onEvent(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function emit(msg) { listeners.forEach((fn) => fn(msg)); }

function setState(s) {
  state = s;
  emit({ type: "_state", data: { state: s } });
}

export function send(type, data) {
  if (state !== "live" || !ws) return false;
  ws.send(JSON.stringify(data === undefined ? { type } : { type, data }));
  return true;
}

// Subscribe to metric selectors; `cb` gets each metrics_update. Returns an unsubscribe
// function, or null when the socket is not live (the caller polls REST instead).
export function subscribe(metrics, updateFrequency, cb) {
  if (state !== "live") return null;
  const tag = ++nextSub;
  let id = null;
  pending.set(tag, (sid) => { id = sid; subscriptions.set(sid, cb); });
  send("subscribe", { metrics, updateFrequency });
  return () => {
    pending.delete(tag);
    if (id) { subscriptions.delete(id); send("unsubscribe", { id }); }
  };
}

export function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let opened = false;
  try {
    ws = new WebSocket(`${proto}//${location.host}/api/v1/ws`);
  } catch {
    setState("polling");
    return;
  }
  ws.onopen = () => {
    opened = true;
    if (token()) ws.send(JSON.stringify({ type: "auth", token: token() }));
    setState("live");
    send("subscribe_alerts");
    send("getDashboardStream", { updateFrequency: 5 });
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === "subscribed") {
      const [tag, cb] = pending.entries().next().value || [];
      if (cb) { pending.delete(tag); cb(msg.data.id); }
    } else if (msg.type === "metrics_update") {
      const cb = subscriptions.get(msg.data.id);
      if (cb) cb(msg.data);
    }
    emit(msg);
  };
  ws.onclose = (ev) => {
    ws = null;
    subscriptions.clear();
    pending.clear();
    // Never opened (404, handshake refused) or closed by the server: poll REST.
    setState("polling");
    emit({ type: "_closed", data: { code: ev.code, reason: ev.reason, opened } });
  };
  ws.onerror = () => {};
}
