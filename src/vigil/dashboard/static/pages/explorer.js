// Metrics explorer: metric, label filters, range, step, aggregation; chart, table, export.
// The state lives in the URL (#/explorer?name=...&match=...), so a view can be shared.
import { ApiError, download, get } from "../api.js";
import { labelText, lineChart } from "../chart.js";
import * as live from "../live.js";
import { POLL } from "./config.js";
import { card, errorText, fmt, h, rangeStart, refresh, table, when } from "./common.js";

const RANGES = ["15m", "1h", "6h", "24h", "7d", "30d"];
const FNS = ["", "avg", "sum", "min", "max", "count", "last", "rate", "increase"];

function readState(params) {
  return {
    name: params.get("name") || "",
    match: params.getAll("match").filter(Boolean),
    range: params.get("range") || "1h",
    step: params.get("step") || "",
    fn: params.get("fn") || "",
    group_by: params.get("group_by") ?? null,
  };
}

function writeState(s) {
  const u = new URLSearchParams();
  if (s.name) u.set("name", s.name);
  s.match.forEach((m) => u.append("match", m));
  u.set("range", s.range);
  if (s.step) u.set("step", s.step);
  if (s.fn) u.set("fn", s.fn);
  if (s.group_by !== null) u.set("group_by", s.group_by);
  history.replaceState(null, "", `#/explorer?${u}`);
}

function queryParams(s) {
  const p = { name: s.name, match: s.match, start: rangeStart(s.range, s.step), step: s.step, fn: s.fn };
  if (s.group_by !== null) p.group_by = s.group_by;
  return p;
}

function select(id, options, value) {
  return h("select", { id }, options.map((o) =>
    h("option", { value: o, selected: o === value }, o || "default")));
}

export function render(main, params) {
  const s = readState(params);
  const nameSel = h("select", { id: "ex-name" }, h("option", { value: "" }, "choose a metric…"));
  const matchIn = h("input", { id: "ex-match", size: 30, value: s.match.join(", "),
    placeholder: "host=web-1, region=~eu.*" });
  const rangeSel = select("ex-range", RANGES, s.range);
  const stepIn = h("input", { id: "ex-step", size: 6, value: s.step, placeholder: "auto" });
  const fnSel = select("ex-fn", FNS, s.fn);
  const groupIn = h("input", { id: "ex-group", size: 12, value: s.group_by ?? "",
    placeholder: "each series" });
  const labelsHint = h("span", { class: "muted", id: "ex-labels" });
  const errorEl = h("div", { class: "error", id: "ex-error" });
  const form = h("form", { class: "controls", id: "ex-form" },
    h("label", {}, "metric", nameSel), h("label", {}, "label filters", matchIn),
    h("label", {}, "range", rangeSel), h("label", {}, "step", stepIn),
    h("label", {}, "aggregation", fnSel), h("label", {}, "group by", groupIn),
    h("button", { type: "submit" }, "Run"),
    ...["csv", "json", "parquet"].map((f) => h("button", { type: "button", "data-export": f,
      onclick: () => exportAs(f) }, `Export ${f.toUpperCase()}`)));
  const chartEl = h("div", { class: "chart", id: "ex-chart" });
  const tableEl = h("div", { class: "scroll", id: "ex-table" });
  main.append(card("Query", form, labelsHint, errorEl), card("Chart", chartEl),
    card("Series (latest point)", tableEl));

  let plot = null;
  let unsub = null;
  let current = null;

  function readForm() {
    s.name = nameSel.value;
    s.match = matchIn.value.split(",").map((m) => m.trim()).filter(Boolean);
    s.range = rangeSel.value;
    s.step = stepIn.value.trim();
    s.fn = fnSel.value;
    s.group_by = groupIn.value.trim() === "" ? null : groupIn.value.trim();
  }

  function showError(err) {
    const fields = err instanceof ApiError && err.errors.length
      ? err.errors.map((e) => `${e.field || "request"}: ${e.reason}`).join("; ") : errorText(err);
    errorEl.textContent = fields;
  }

  async function run() {
    if (!s.name) return;
    errorEl.textContent = "";
    try {
      const r = await get("/api/v1/query", queryParams(s));
      current = r;
      if (plot) plot.destroy();
      plot = r.series.length ? lineChart(chartEl, r.series, { height: 320 }) : null;
      if (!r.series.length) chartEl.replaceChildren(h("p", { class: "muted" }, "No data in range."));
      chartEl.dataset.tier = r.tier;
      const rows = r.series.map((x) => ({ labels: x.labels, n: x.points.length,
        last: x.points[x.points.length - 1] }));
      tableEl.replaceChildren(table([
        { title: "series", cell: (x) => labelText(x.labels) },
        { title: "points", cell: (x) => x.n },
        { title: "last time", cell: (x) => (x.last ? when(x.last[0]) : "—") },
        { title: "last value", cell: (x) => (x.last ? fmt(x.last[1], 3) : "—") },
      ], rows, { id: "ex-series" }));
      liveSubscribe();
    } catch (err) { showError(err); }
  }

  // Live: each metrics_update of the selector re-runs the query (at most once a second),
  // so the chart keeps its step and aggregation.
  let subscribed = "";
  let again = null;
  function liveSubscribe() {
    const key = JSON.stringify([s.name, s.match]);
    if (key === subscribed && unsub) return;
    if (unsub) { unsub(); unsub = null; }
    subscribed = key;
    unsub = live.subscribe([{ name: s.name, match: s.match }], 1, () => {
      if (again === null) again = setTimeout(() => { again = null; run(); }, 1000);
    });
  }

  async function exportAs(format) {
    readForm();
    errorEl.textContent = "";
    try {
      const size = await download("/api/v1/query", { ...queryParams(s), format },
        `${s.name}.${format}`);
      form.dataset.lastExport = `${format}:${size}`;
    } catch (err) { showError(err); }
  }

  async function labelHint() {
    if (!s.name) return;
    try {
      const { labels } = await get("/api/v1/labels", { name: s.name });
      labelsHint.textContent = labels.length ? `labels: ${labels.join(", ")}` : "";
    } catch { labelsHint.textContent = ""; }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    readForm();
    writeState(s);
    labelHint();
    run();
  });
  nameSel.addEventListener("change", () => form.requestSubmit());

  let stop = () => {};
  let closed = false;
  get("/api/v1/metrics").then(({ metrics }) => {
    if (closed) return;
    for (const m of metrics) {
      nameSel.append(h("option", { value: m.name, selected: m.name === s.name },
        `${m.name} (${m.series})`));
    }
    if (!s.name && metrics.length) { s.name = metrics[0].name; nameSel.value = s.name; }
    writeState(s);
    labelHint();
    stop = refresh(() => { if (!unsub) run(); }, POLL);
  }).catch(showError);
  return () => {
    closed = true;
    stop();
    clearTimeout(again);
    if (unsub) unsub();
    if (plot) plot.destroy();
  };
}
