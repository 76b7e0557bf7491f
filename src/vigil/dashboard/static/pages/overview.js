// Overview: health score, ingest rate, key charts, firing alerts.
import { get } from "../api.js";
import { lineChart } from "../chart.js";
import * as live from "../live.js";
import { POLL } from "./config.js";
import { card, fail, fmt, h, refresh, sev, table, when } from "./common.js";

const KEY_METRICS = ["cpu_usage_percent", "memory_used_bytes", "http_request_duration_p95_ms",
  "queue_depth"];

function kpi(id, label) {
  return h("div", { class: "card kpi" }, h("div", { class: "value", id }, "—"),
    h("div", { class: "label" }, label));
}

function set(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

export function render(main) {
  main.append(h("div", { class: "kpis" },
    kpi("kpi-health", "system health score (tasks)"),
    kpi("kpi-ingest", "ingest rate (samples/s)"),
    kpi("kpi-series", "metrics (series)"),
    kpi("kpi-firing", "firing alerts")));
  const charts = h("div", { class: "grid", id: "overview-charts" });
  const alertsBox = h("div", { id: "overview-alerts" }, h("p", { class: "muted" }, "loading…"));
  main.append(charts, card("Firing alerts", alertsBox));

  let lastSamples = null;
  let metrics = [];

  async function status() {
    const [perf, st] = await Promise.allSettled([get("/api/v1/analytics/performance"),
      get("/api/v1/status")]);
    if (perf.status === "fulfilled") {
      const score = perf.value.system_health_score;
      set("kpi-health", score === null || score === undefined ? "no tasks" : fmt(score, 1));
    }
    if (st.status === "fulfilled" && live.status() !== "live") {
      const now = performance.now();
      const samples = st.value.store.committed_samples;
      if (lastSamples) {
        const rate = (samples - lastSamples.samples) / ((now - lastSamples.at) / 1000);
        set("kpi-ingest", fmt(rate, 1));
      } else {
        set("kpi-ingest", "measuring…");
      }
      lastSamples = { samples, at: now };
    }
  }

  async function firing() {
    try {
      const [trig, ack] = await Promise.all([get("/api/v1/alerts", { state: "triggered" }),
        get("/api/v1/alerts", { state: "acknowledged" })]);
      const rows = [...trig.alerts, ...ack.alerts];
      set("kpi-firing", String(rows.length));
      alertsBox.replaceChildren(rows.length ? table([
        { title: "severity", cell: (a) => sev(a.severity) },
        { title: "rule", cell: (a) => a.rule },
        { title: "labels", cell: (a) => Object.entries(a.labels).filter(([k]) =>
          k !== "alertname" && k !== "severity").map(([k, v]) => `${k}=${v}`).join(" ") },
        { title: "state", cell: (a) => a.state },
        { title: "value", cell: (a) => fmt(a.value) },
        { title: "since", cell: (a) => when(a.starts_ms) },
      ], rows.slice(0, 20), { id: "firing-table" }) : h("p", { class: "muted" }, "No firing alerts."));
    } catch (err) { fail(alertsBox, err); }
  }

  async function keyCharts() {
    try {
      if (!metrics.length) {
        const all = (await get("/api/v1/metrics")).metrics;
        set("kpi-series", `${all.length} (${all.reduce((n, m) => n + m.series, 0)})`);
        const names = all.map((m) => m.name);
        metrics = KEY_METRICS.filter((n) => names.includes(n));
        if (!metrics.length) metrics = names.slice(0, 4);
        if (!metrics.length) {
          charts.replaceChildren(card("Key charts", h("p", { class: "muted" },
            "No metrics stored yet.")));
          return;
        }
      }
      // On the 5-minute grid: the server then reads the 5m rollups and keeps all but the
      // fresh tail of the answer in its cache between refreshes.
      const start = Math.floor((Date.now() / 1000 - 6 * 3600) / 300) * 300;
      const results = await Promise.all(metrics.map((name) =>
        get("/api/v1/query", { name, start, step: "5m", fn: "avg" })));
      charts.replaceChildren(...results.map((r) => {
        const el = h("div", { class: "chart", "data-metric": r.name });
        const c = card(`${r.name} (6 h, 5 min avg)`, el);
        requestAnimationFrame(() => lineChart(el, r.series, { height: 200, legend: false }));
        return c;
      }));
    } catch (err) { fail(charts, err); }
  }

  const offLive = live.onEvent((msg) => {
    if (msg.type !== "dashboard_update") return;
    const d = msg.data;
    set("kpi-ingest", fmt(d.ingest_rate, 1));
    set("kpi-firing", String(d.firing_alerts));
    if (d.health && d.health.system_health_score !== undefined) {
      set("kpi-health", fmt(d.health.system_health_score, 1));
    }
  });
  const stops = [
    refresh(status, POLL),
    refresh(firing, POLL, ["alert_triggered", "alert_acknowledged", "alert_resolved",
      "alert_escalated"]),
    refresh(keyCharts, 60000),
  ];
  return () => { offLive(); stops.forEach((s) => s()); };
}
