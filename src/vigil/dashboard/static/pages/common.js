// Small DOM and formatting helpers shared by the pages.
import * as live from "../live.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function card(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.title)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(r)))))));
}

export function fmt(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(digits)} G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(digits)} M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(digits)} k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

export function ms(v) {
  if (v === null || v === undefined) return "—";
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`;
}

export const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
export const when = (t) => (t ? new Date(t).toISOString().replace("T", " ").slice(0, 19) : "—");

export function sev(s) { return h("span", { class: `sev sev-${s}` }, s); }

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}

export function fail(el, err) {
  el.replaceChildren(h("p", { class: "error" }, errorText(err)));
}

// Run `fn` now and every `everyMs` while the socket is not live (and once more on each
// live event of `types`); returns a stop function.
export function refresh(fn, everyMs, types = []) {
  let timer = null;
  const tick = () => {
    timer = null;
    fn();
    if (live.status() !== "live") timer = setTimeout(tick, everyMs);
  };
  const off = live.onEvent((msg) => {
    if (types.includes(msg.type)) fn();
    if (msg.type === "_state" && msg.data.state === "polling" && timer === null) {
      timer = setTimeout(tick, everyMs);
    }
  });
  tick();
  return () => { clearTimeout(timer); timer = null; off(); };
}

const UNITS = { s: 1, m: 60, h: 3600, d: 86400 };

function seconds(text, fallback) {
  const m = /^(\d+)([smhd])$/.exec(text || "");
  return m ? Number(m[1]) * UNITS[m[2]] : fallback;
}

// Epoch seconds `range` ago; on the grid of `step` when one is given, so the server can
// read a rollup tier and keep all but the fresh tail of the answer cached.
export function rangeStart(range, step) {
  const start = Math.floor(Date.now() / 1000 - seconds(range, 3600));
  const grid = seconds(step, 0);
  return grid ? Math.floor(start / grid) * grid : start;
}
