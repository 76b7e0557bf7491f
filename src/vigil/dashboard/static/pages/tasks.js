// Tasks: performance (health score, trends, statistics, processing times) and bottlenecks.
import { get } from "../api.js";
import { POLL } from "./config.js";
import { card, fail, fmt, h, ms, pct, refresh, table } from "./common.js";

function kpi(label, value, id) {
  return h("div", { class: "card kpi" }, h("div", { class: "value", id }, value),
    h("div", { class: "label" }, label));
}

export function render(main) {
  const perfEl = h("div", { id: "tasks-performance" }, h("p", { class: "muted" }, "loading…"));
  const bottEl = h("div", { id: "tasks-bottlenecks" });
  main.append(perfEl, bottEl);

  async function performance() {
    try {
      const p = await get("/api/v1/analytics/performance");
      const st = p.task_statistics || {};
      const pt = p.processing_times || {};
      const trends = Object.entries(p.performance_trends || {}).map(([window, t]) => ({ window, ...t }));
      perfEl.replaceChildren(
        h("div", { class: "kpis" },
          kpi("system health score", fmt(p.system_health_score, 1), "tasks-health"),
          kpi("executions", fmt(st.total_tasks, 0)), kpi("completed", fmt(st.completed, 0)),
          kpi("failed", fmt(st.failed, 0)), kpi("retried", fmt(st.retried, 0)),
          kpi("p50 duration", ms(pt.p50)), kpi("p95 duration", ms(pt.p95)),
          kpi("p99 duration", ms(pt.p99))),
        card("Performance trends", table([
          { title: "window", cell: (t) => t.window },
          { title: "executions", cell: (t) => t.executions },
          { title: "completion rate", cell: (t) => pct(t.completion_rate) },
          { title: "avg duration", cell: (t) => ms(t.avg_duration_ms) },
        ], trends, { id: "tasks-trends" })));
    } catch (err) { fail(perfEl, err); }
  }

  async function bottlenecks() {
    try {
      const b = await get("/api/v1/analytics/bottlenecks");
      const hist = (b.distribution && b.distribution.histogram) || [];
      const maxCount = Math.max(1, ...hist.map((x) => x.count));
      bottEl.replaceChildren(h("div", { class: "grid" },
        card(`Slowest tasks (${b.analysis_period})`, table([
          { title: "namespace", cell: (t) => t.namespace },
          { title: "task", cell: (t) => t.task_name },
          { title: "avg", cell: (t) => ms(t.avg_duration_ms) },
          { title: "p95", cell: (t) => ms(t.p95_duration_ms) },
          { title: "runs", cell: (t) => t.execution_count },
          { title: "failure rate", cell: (t) => pct(t.failure_rate) },
        ], b.slowest_tasks || [], { id: "slowest-tasks" })),
        card("Slowest steps", table([
          { title: "task", cell: (t) => `${t.namespace}/${t.task_name}` },
          { title: "step", cell: (t) => t.step_name },
          { title: "avg", cell: (t) => ms(t.avg_duration_ms) },
          { title: "p95", cell: (t) => ms(t.p95_duration_ms) },
          { title: "retry rate", cell: (t) => pct(t.retry_rate) },
          { title: "timeout", cell: (t) => (t.timeout_s ? `${t.timeout_s} s` : "—") },
        ], b.slowest_steps || [], { id: "slowest-steps" })),
        card("Error patterns", table([
          { title: "error", cell: (e) => e.error_type },
          { title: "count", cell: (e) => e.frequency },
          { title: "affected steps", cell: (e) => h("span", { style: "white-space:normal" },
            (e.affected_steps || []).join(", ")) },
        ], b.error_patterns || [], { id: "error-patterns" })),
        card("Duration distribution", table([
          { title: "≤", cell: (x) => (x.le_ms === null ? "+inf" : ms(x.le_ms)) },
          { title: "count", cell: (x) => x.count },
          { title: "", cell: (x) => h("div", { style: `background:#2563eb;height:10px;width:${
            Math.round((200 * x.count) / maxCount)}px` }) },
        ], hist, { id: "duration-histogram" })),
        card("Recommendations", h("ul", { id: "recommendations" },
          (b.recommendations || []).map((r) => h("li", {}, h("strong", {}, r.type), " ",
            `${r.namespace}/${r.task_name}${r.step ? ` · ${r.step}` : ""}: ${r.rationale}`))))));
    } catch (err) { fail(bottEl, err); }
  }

  const stops = [refresh(performance, POLL), refresh(bottlenecks, 30000)];
  return () => stops.forEach((s) => s());
}
