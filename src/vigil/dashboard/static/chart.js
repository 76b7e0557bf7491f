// Time-series charts on uPlot (installed by npm, served from /ui/vendor/).
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
  "#db2777", "#4b5563", "#65a30d"];

export function color(i) { return PALETTE[i % PALETTE.length]; }

// Axis ticks: 1.2 G, 350 M, 12 k, 0.5.
export function compact(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  for (const [n, sfx] of [[1e12, " T"], [1e9, " G"], [1e6, " M"], [1e4, " k"]]) {
    if (a >= n) return `${+(v / n).toFixed(2)}${sfx}`.replace(" k", "k");
  }
  return `${+v.toFixed(3)}`;
}

export function labelText(labels) {
  const parts = Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(",") : "(all)";
}

// [{labels, points: [[ms, value, ...], ...]}] -> uPlot's aligned columns (x in seconds).
export function align(series) {
  const xs = new Set();
  for (const s of series) for (const p of s.points) xs.add(p[0]);
  const x = Float64Array.from(xs).sort();
  const index = new Map();
  x.forEach((t, i) => index.set(t, i));
  const cols = series.map((s) => {
    const col = new Array(x.length).fill(null);
    for (const p of s.points) col[index.get(p[0])] = p[1];
    return col;
  });
  return { x, xs: Array.from(x, (t) => t / 1000), cols };
}

// A line chart of query series in `el`; `extra` adds columns and series (markers, bands).
export function lineChart(el, series, { height = 260, extra = [], bands = [], legend = true } = {}) {
  const t0 = performance.now();
  el.innerHTML = "";
  const { xs, cols, x } = align(series);
  const width = Math.max(el.clientWidth || 600, 300);
  const opts = {
    width, height,
    legend: { show: legend && series.length <= 12 },
    cursor: { points: { show: false } },
    series: [{}, ...series.map((s, i) => ({
      label: labelText(s.labels), stroke: color(i), width: 1, points: { show: false },
    })), ...extra.map((e) => e.series)],
    axes: [{}, { size: 64, values: (u, vals) => vals.map(compact) }],
    bands,
  };
  const data = [xs, ...cols, ...extra.map((e) => e.column(x))];
  const plot = new window.uPlot(opts, data, el);
  const ms = performance.now() - t0;
  el.dataset.renderMs = ms.toFixed(1);
  el.dataset.series = String(series.length);
  el.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
  return plot;
}

export function resizeOnWindow(plots, els) {
  const onResize = () => plots.forEach((p, i) => p && p.setSize({
    width: Math.max(els[i].clientWidth, 300), height: p.height }));
  window.addEventListener("resize", onResize);
  return () => window.removeEventListener("resize", onResize);
}
