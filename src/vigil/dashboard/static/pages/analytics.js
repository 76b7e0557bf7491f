// Analytics: anomalies marked on the chart, forecast bands, correlation heat-map, insights.
import { get } from "../api.js";
import { labelText, lineChart } from "../chart.js";
import { card, errorText, fail, fmt, h, rangeStart } from "./common.js";

const MAX_SERIES = 6;

function nearestColumn(points, key) {
  // A column aligned to x (ms) holding the value at the times in `points` (else null).
  return (x) => {
    const at = new Map(points.map((p) => [p[0], p[key]]));
    return Array.from(x, (t) => (at.has(t) ? at.get(t) : null));
  };
}

function anomalyChart(el, doc) {
  const series = doc.series.slice(0, MAX_SERIES);
  const marks = series.flatMap((s) => s.anomalies.map((a) => [a.t_ms, a.value]));
  el.dataset.anomalies = String(marks.length);
  return lineChart(el, series.map((s) => ({ labels: s.labels, points: s.points })), {
    height: 280,
    extra: [{
      series: { label: "anomaly", stroke: "#dc2626", width: 0, paths: () => null,
        points: { show: true, size: 9, stroke: "#dc2626", fill: "#fecaca" } },
      column: nearestColumn(marks, 1),
    }],
  });
}

function forecastChart(el, observed, fc) {
  const f = fc.forecast;
  const pts = (arr) => f.t_ms.map((t, i) => [t, arr[i]]);
  const series = [{ labels: { ...observed.labels }, points: observed.points.slice(-360) },
    { labels: { forecast: f.method }, points: pts(f.values) }];
  el.dataset.horizon = String(f.t_ms.length);
  // Series 3 and 4 are the lower and upper bounds; the band fills between them.
  return lineChart(el, series, {
    height: 260,
    extra: [
      { series: { label: `lower ${f.interval * 100}%`, stroke: "#93c5fd", width: 1 },
        column: nearestColumn(pts(f.lower), 1) },
      { series: { label: `upper ${f.interval * 100}%`, stroke: "#93c5fd", width: 1 },
        column: nearestColumn(pts(f.upper), 1) },
    ],
    bands: [{ series: [4, 3], fill: "rgba(37, 99, 235, 0.15)" }],
  });
}

function heat(r) {
  if (r === null || r === undefined) return "#f3f4f6";
  const a = Math.min(1, Math.abs(r));
  return r >= 0 ? `rgba(220, 38, 38, ${a})` : `rgba(37, 99, 235, ${a})`;
}

function heatmap(matrix) {
  const labels = matrix.labels.map((l, i) => `${i + 1}`);
  return h("div", {},
    h("table", { class: "heat", id: "corr-heatmap" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), labels.map((l) => h("th", {}, l)))),
      h("tbody", {}, matrix.r.map((row, i) => h("tr", {}, h("th", { title: matrix.labels[i] }, labels[i]),
        row.map((r, j) => h("td", { style: `background:${heat(r)}`,
          title: `${matrix.labels[i]} × ${matrix.labels[j]}: ${r === null ? "—" : r.toFixed(3)}` },
        r === null ? "—" : r.toFixed(2))))))),
    h("ol", { class: "muted" }, matrix.labels.map((l) => h("li", {}, l))),
    h("p", { class: "muted" }, `method: ${matrix.method}`));
}

export function render(main, params) {
  const nameSel = h("select", { id: "an-name" });
  const matchIn = h("input", { id: "an-match", size: 30, value: params.getAll("match").join(", "),
    placeholder: "host=web-1" });
  const rangeSel = h("select", { id: "an-range" }, ["1h", "6h", "24h"].map((r) =>
    h("option", { value: r, selected: r === (params.get("range") || "6h") }, r)));
  const form = h("form", { class: "controls", id: "an-form" }, h("label", {}, "metric", nameSel),
    h("label", {}, "label filters", matchIn), h("label", {}, "range", rangeSel),
    h("button", { type: "submit" }, "Analyse"));
  const anomEl = h("div", { class: "chart", id: "an-anomalies" });
  const fcEl = h("div", { class: "chart", id: "an-forecast" });
  const corrEl = h("div", { id: "an-correlations", class: "scroll" });
  const insEl = h("div", { id: "an-insights", class: "scroll" });
  const healthEl = h("div", { id: "an-health" });
  main.append(card("Analyse", form, healthEl),
    card("Anomalies (red markers)", anomEl), card("Forecast with prediction band", fcEl),
    h("div", { class: "grid" }, card("Correlation heat-map", corrEl), card("Insights", insEl)));
  const plots = [];

  async function run() {
    const name = nameSel.value;
    if (!name) return;
    const match = matchIn.value.split(",").map((m) => m.trim()).filter(Boolean);
    const u = new URLSearchParams({ name, range: rangeSel.value });
    match.forEach((m) => u.append("match", m));
    history.replaceState(null, "", `#/analytics?${u}`);
    const base = { name, match, start: rangeStart(rangeSel.value) };
    plots.splice(0).forEach((p) => p && p.destroy());
    const settle = async (el, fn) => {
      el.replaceChildren(h("p", { class: "muted" }, "loading…"));
      try { await fn(); } catch (err) { fail(el, err); }
    };
    await Promise.all([
      settle(healthEl, async () => {
        const hd = await get("/api/v1/analytics/health", base);
        healthEl.replaceChildren(h("p", { id: "an-health-score" },
          `health ${fmt(hd.score, 1)} (${hd.status}) over ${hd.series} series — `,
          hd.components.map((c) => `${c.name} ${fmt(c.score, 1)}: ${c.detail}`).join("; ")));
      }),
      settle(anomEl, async () => {
        const doc = await get("/api/v1/analytics/anomalies", base);
        anomEl.replaceChildren();
        if (!doc.series.length) { anomEl.append(h("p", { class: "muted" }, "No data in range.")); return; }
        plots.push(anomalyChart(anomEl, doc));
      }),
      settle(fcEl, async () => {
        const obs = await get("/api/v1/query", { ...base });
        if (!obs.series.length) { fcEl.replaceChildren(h("p", { class: "muted" }, "No data in range.")); return; }
        const first = obs.series[0];
        const sel = Object.entries(first.labels).map(([k, v]) => `${k}=${v}`);
        const fc = await get("/api/v1/analytics/forecast", { ...base, match: sel, horizon: 60 });
        fcEl.replaceChildren(h("p", { class: "muted" }, `${labelText(first.labels)}, `
          + `method ${fc.series[0].forecast.method}, next ${fc.series[0].forecast.t_ms.length} steps`));
        const box = h("div");
        fcEl.append(box);
        plots.push(forecastChart(box, first, fc.series[0]));
      }),
      settle(corrEl, async () => {
        const doc = await get("/api/v1/analytics/correlations", base);
        corrEl.replaceChildren(doc.matrix && doc.matrix.labels.length > 1 ? heatmap(doc.matrix)
          : h("p", { class: "muted" }, "Fewer than two series: no correlations."));
      }),
      settle(insEl, async () => {
        const doc = await get("/api/v1/analytics/insights", base);
        insEl.replaceChildren(doc.insights.length ? h("ul", { id: "insights-list" },
          doc.insights.map((i) => h("li", {}, h("strong", {}, `[${i.severity}] ${i.title}`),
            h("div", { class: "muted" }, i.description),
            i.recommendation ? h("div", {}, i.recommendation) : null)))
          : h("p", { class: "muted" }, "No insights for this selection."));
      }),
    ]);
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  get("/api/v1/metrics").then(({ metrics }) => {
    const want = params.get("name");
    for (const m of metrics) nameSel.append(h("option", { value: m.name, selected: m.name === want }, m.name));
    run();
  }).catch((err) => { anomEl.textContent = errorText(err); });
  return () => plots.forEach((p) => p && p.destroy());
}
