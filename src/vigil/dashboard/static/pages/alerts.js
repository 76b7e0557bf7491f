// Alerts: list by state and severity; acknowledge, resolve, silence; silences; rule editor
// with the API's validation messages next to the field they name.
import { ApiError, del, get, post, put } from "../api.js";
import { POLL } from "./config.js";
import { card, errorText, fail, fmt, h, refresh, sev, table, when } from "./common.js";

const STATES = ["", "triggered", "acknowledged", "resolved"];
const SEVERITIES = ["", "low", "medium", "high", "critical"];
const HIDDEN = new Set(["alertname", "severity"]);
const EVENTS = ["alert_triggered", "alert_acknowledged", "alert_resolved", "alert_escalated"];

const labelList = (labels) => Object.entries(labels).filter(([k]) => !HIDDEN.has(k))
  .map(([k, v]) => `${k}=${v}`);

function opt(values, value) {
  return values.map((v) => h("option", { value: v, selected: v === value }, v || "(any)"));
}

// The rule editor: one input per field the API names in its 400 problems.
const FIELDS = [
  ["name", "name", "text"], ["metric", "metric", "text"],
  ["severity", "severity", ["low", "medium", "high", "critical"]],
  ["condition.type", "condition", ["threshold", "change", "anomaly", "absence", "forecast"]],
  ["condition.op", "operator", "text"], ["condition.threshold", "threshold", "text"],
  ["condition.for_s", "for (s)", "text"], ["group_by", "group by (comma-separated)", "text"],
  ["channels", "channels (comma-separated)", "text"],
];

function ruleForm(onSaved) {
  const inputs = {};
  const errs = {};
  const general = h("div", { class: "field-error", id: "rule-error" });
  let editing = null;
  const rows = FIELDS.map(([field, label, kind]) => {
    const id = `rule-${field.replace(".", "-")}`;
    inputs[field] = Array.isArray(kind)
      ? h("select", { id }, kind.map((v) => h("option", { value: v }, v)))
      : h("input", { id, type: "text", size: 18 });
    errs[field] = h("span", { class: "field-error", "data-error-for": field });
    return h("label", {}, label, inputs[field], errs[field]);
  });
  const title = h("strong", { id: "rule-mode" }, "New rule");
  const form = h("form", { class: "controls", id: "rule-form" }, ...rows,
    h("button", { type: "submit", id: "rule-save" }, "Save rule"),
    h("button", { type: "button", onclick: () => load(null) }, "New"));

  function num(v) { return v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v; }
  function list(v) { return v.split(",").map((x) => x.trim()).filter(Boolean); }

  function doc() {
    const v = (f) => inputs[f].value.trim();
    const type = v("condition.type");
    const kept = editing && editing.condition && editing.condition.type === type
      ? editing.condition : {};
    const cond = { ...kept, type };
    for (const f of ["op", "threshold", "for_s"]) delete cond[f];
    if (v("condition.op") && !["anomaly", "absence"].includes(type)) cond.op = v("condition.op");
    if (v("condition.threshold") && type !== "absence") {
      cond.threshold = num(v("condition.threshold"));
    }
    if (v("condition.for_s")) cond.for_s = num(v("condition.for_s"));
    const out = { ...(editing || {}), name: v("name"), metric: v("metric"),
      severity: v("severity"), condition: cond };
    delete out.id;
    if (v("group_by")) out.group_by = list(v("group_by")); else delete out.group_by;
    if (v("channels")) out.channels = list(v("channels")); else delete out.channels;
    return out;
  }

  function load(rule) {
    editing = rule;
    title.textContent = rule ? `Editing rule ${rule.name} (${rule.id})` : "New rule";
    const c = (rule && rule.condition) || {};
    const values = {
      name: rule ? rule.name : "", metric: rule ? rule.metric : "",
      severity: rule ? rule.severity : "high", "condition.type": c.type || "threshold",
      "condition.op": c.op ?? ">", "condition.threshold": c.threshold ?? "",
      "condition.for_s": c.for_s ?? "", group_by: ((rule && rule.group_by) || []).join(", "),
      channels: ((rule && rule.channels) || []).join(", "),
    };
    for (const [f, v] of Object.entries(values)) inputs[f].value = v;
    clear();
  }

  function clear() {
    Object.values(errs).forEach((e) => { e.textContent = ""; });
    general.textContent = "";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear();
    try {
      const body = doc();
      const saved = editing ? await put(`/api/v1/rules/${editing.id}`, body)
        : await post("/api/v1/rules", body);
      load(null);
      general.textContent = "";
      form.dataset.saved = saved.id;
      onSaved();
    } catch (err) {
      if (err instanceof ApiError && err.errors.length) {
        for (const p of err.errors) {
          const key = Object.keys(errs).find((f) => p.field === f || (p.field || "").startsWith(`${f}[`));
          if (key) errs[key].textContent = p.reason;
          else general.textContent += `${p.field ? `${p.field}: ` : ""}${p.reason} `;
        }
      } else {
        general.textContent = errorText(err);
      }
    }
  });
  load(null);
  return { el: h("div", {}, title, form, general), load };
}

export function render(main, params) {
  const stateSel = h("select", { id: "al-state" }, opt(STATES, params.get("state") || ""));
  const sevSel = h("select", { id: "al-severity" }, opt(SEVERITIES, params.get("severity") || ""));
  const listEl = h("div", { id: "alerts-list", class: "scroll" }, h("p", { class: "muted" }, "loading…"));
  const msgEl = h("div", { class: "error", id: "alerts-error" });
  const silencesEl = h("div", { id: "silences-list" });
  const rulesEl = h("div", { id: "rules-list", class: "scroll" });
  const editor = ruleForm(() => rules());
  main.append(
    card("Alerts", h("form", { class: "controls" }, h("label", {}, "state", stateSel),
      h("label", {}, "severity", sevSel)), msgEl, listEl),
    card("Silences", silencesEl),
    card("Rules", rulesEl),
    card("Rule editor", editor.el));

  async function act(fn) {
    msgEl.textContent = "";
    try { await fn(); } catch (err) { msgEl.textContent = errorText(err); }
    await Promise.all([alerts(), silences()]);
  }

  async function alerts() {
    const q = { state: stateSel.value, severity: sevSel.value, limit: 200 };
    history.replaceState(null, "", `#/alerts?state=${q.state}&severity=${q.severity}`);
    try {
      const { alerts: rows } = await get("/api/v1/alerts", q);
      listEl.replaceChildren(rows.length ? table([
        { title: "severity", cell: (a) => sev(a.severity) },
        { title: "state", cell: (a) => a.state + (a.silenced ? " (silenced)" : "") },
        { title: "rule", cell: (a) => a.rule },
        { title: "labels", cell: (a) => labelList(a.labels).join(" ") },
        { title: "value", cell: (a) => fmt(a.value) },
        { title: "since", cell: (a) => when(a.starts_ms) },
        { title: "by", cell: (a) => a.acknowledged_by || a.resolved_by || "" },
        { title: "", cell: (a) => h("span", {},
          a.state === "triggered" ? h("button", { "data-action": "ack", "data-id": a.id,
            onclick: () => act(() => post(`/api/v1/alerts/${a.id}/acknowledge`,
              { by: "dashboard" })) }, "Acknowledge") : null,
          a.state !== "resolved" ? h("button", { "data-action": "resolve", "data-id": a.id,
            onclick: () => act(() => post(`/api/v1/alerts/${a.id}/resolve`,
              { by: "dashboard" })) }, "Resolve") : null,
          a.state !== "resolved" && !a.silenced ? h("button", { "data-action": "silence",
            "data-id": a.id, onclick: () => act(() => post("/api/v1/silences", {
              matchers: [`alertname=${a.labels.alertname || a.rule}`, ...labelList(a.labels)],
              duration_s: 3600, author: "dashboard", comment: `silenced from the dashboard` })),
          }, "Silence 1 h") : null) },
      ], rows, { id: "alerts-table" }) : h("p", { class: "muted" }, "No alerts match."));
    } catch (err) { fail(listEl, err); }
  }

  async function silences() {
    try {
      const { silences: rows } = await get("/api/v1/silences");
      silencesEl.replaceChildren(rows.length ? table([
        { title: "matchers", cell: (s) => (s.matchers || []).join(" ") },
        { title: "ends", cell: (s) => when(s.ends_ms) + (s.ends_ms < Date.now() ? " (expired)" : "") },
        { title: "author", cell: (s) => s.author || "" },
        { title: "comment", cell: (s) => s.comment || "" },
        { title: "", cell: (s) => (s.ends_ms < Date.now() ? "" : h("button", {
          "data-action": "expire", onclick: () => act(() => del(`/api/v1/silences/${s.id}`)) },
        "Expire")) },
      ], rows, { id: "silences-table" }) : h("p", { class: "muted" }, "No silences."));
    } catch (err) { fail(silencesEl, err); }
  }

  async function rules() {
    try {
      const { rules: rows } = await get("/api/v1/rules");
      rulesEl.replaceChildren(rows.length ? table([
        { title: "name", cell: (r) => r.name },
        { title: "metric", cell: (r) => r.metric },
        { title: "severity", cell: (r) => sev(r.severity) },
        { title: "condition", cell: (r) => JSON.stringify(r.condition) },
        { title: "", cell: (r) => h("span", {},
          h("button", { "data-action": "edit", onclick: () => editor.load(r) }, "Edit"),
          h("button", { "data-action": "delete", onclick: async () => {
            try { await del(`/api/v1/rules/${r.id}`); } catch (err) { msgEl.textContent = errorText(err); }
            rules();
          } }, "Delete")) },
      ], rows, { id: "rules-table" }) : h("p", { class: "muted" }, "No rules."));
    } catch (err) { fail(rulesEl, err); }
  }

  stateSel.addEventListener("change", alerts);
  sevSel.addEventListener("change", alerts);
  rules();
  const stops = [refresh(alerts, POLL, EVENTS), refresh(silences, POLL, EVENTS)];
  return () => stops.forEach((s) => s());
}
