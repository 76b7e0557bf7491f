// The dashboard shell: hash routing (#/page?state), the token form, the live indicator.
import { setToken, token } from "./api.js";
import * as live from "./live.js";
import * as overview from "./pages/overview.js";
import * as explorer from "./pages/explorer.js";
import * as alerts from "./pages/alerts.js";
import * as tasks from "./pages/tasks.js";
import * as analytics from "./pages/analytics.js";

const PAGES = { overview, explorer, alerts, tasks, analytics };
import { POLL as POLL_MS } from "./pages/config.js";
let cleanup = null;

function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const name = PAGES[path] ? path : "overview";
  if (cleanup) { cleanup(); cleanup = null; }
  document.querySelectorAll("#nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.page === name));
  const main = document.getElementById("page");
  main.innerHTML = "";
  main.dataset.page = name;
  document.title = `Vigil — ${name}`;
  cleanup = PAGES[name].render(main, new URLSearchParams(query || "")) || null;
}

function showLive({ state }) {
  const el = document.getElementById("live");
  el.classList.toggle("degraded", state !== "live");
  el.textContent = state === "live" ? "● live"
    : state === "polling" ? `live updates unavailable — polling every ${POLL_MS / 1000} s`
    : "connecting…";
  el.dataset.state = state;
}

export function banner(message) {
  const el = document.getElementById("banner");
  el.hidden = !message;
  el.textContent = message || "";
}

live.onEvent((msg) => {
  if (msg.type === "_state") showLive(msg.data);
  if (msg.type === "system_notification") banner(msg.data.message);
});

document.getElementById("token").value = token();
document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  setToken(document.getElementById("token").value.trim());
  location.reload();
});
window.addEventListener("hashchange", route);
showLive({ state: "connecting" });
live.connect();
route();
