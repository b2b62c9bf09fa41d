// The Usage page: what the current tenant uses of the shared Aileron. Numbers
// now (tries running, queued and waiting, memory held, CPU in the last hour
// against its budget, totals) and a chart of the last hour by minute (guest CPU
// seconds as bars, tries as a line), refreshed every few seconds.

import { get, p } from "./api.js";
import { h, s, replace, errorBox, loading, fmtBytes } from "./dom.js";
import { whoami } from "./session.js";

const REFRESH_MS = 5000;
const MINUTES = 60;

export function mount(root) {
  document.title = "Usage · Aileron";
  const tenant = (whoami() || {}).tenant || "default";
  const body = h("div", {}, loading());
  root.append(h("section", { class: "page", "data-testid": "usage-page" },
    h("div", { class: "page-head" }, h("h1", {}, "Usage of ", h("code", {}, tenant))),
    h("p", { class: "muted" }, "Guest CPU is metered inside the sandbox (epoch ticks of 10 ms the guest ran through); ",
      "host calls (XCom, variables, connections, outbound HTTP) are counted apart. ",
      "Limits are set by a platform admin."),
    body));

  let timer = null;
  let alive = true;
  async function load() {
    try {
      const u = await get(p`/tenants/${tenant}/usage`);
      if (!alive) return;
      replace(body, summary(u), chart(u));
    } catch (e) {
      if (!alive) return;
      replace(body, errorBox(e));
    }
    timer = setTimeout(load, REFRESH_MS);
  }
  load();
  return { update() {}, destroy() { alive = false; clearTimeout(timer); } };
}

function stat(label, value, testid) {
  return h("div", { class: "stat" }, h("div", { class: "muted small" }, label),
    h("div", { class: "stat-value", "data-testid": testid }, value));
}

function summary(u) {
  const cpu = `${u.cpu_seconds_last_hour.toFixed(1)} s` + (u.cpu_per_hour == null ? "" : ` of ${u.cpu_per_hour} s`);
  return h("div", {},
    u.held_back_reason ? h("div", { class: "alert alert-warn", role: "status", "data-testid": "usage-held-back" }, u.held_back_reason) : null,
    h("div", { class: "stats", "data-testid": "usage-stats" },
      stat("Running", String(u.running), "usage-running"),
      stat("Queued", String(u.queued), "usage-queued"),
      stat("Waiting to be admitted", String(u.waiting), "usage-waiting"),
      stat("Memory in use", fmtBytes(u.memory_in_use_bytes), "usage-memory"),
      stat("CPU, last hour", cpu, "usage-cpu-hour"),
      stat("CPU, total", `${u.cpu_seconds_total.toFixed(1)} s`, "usage-cpu-total"),
      stat("Host calls, total", `${u.host_call_seconds_total.toFixed(1)} s`, "usage-host-total"),
      stat("Tries run", String(u.tries_total), "usage-tries"),
      stat("Refused allocations", String(u.refused_allocations_total), "usage-refused")));
}

/** Bars of CPU seconds per minute over the last hour, with tries as a line. */
function chart(u) {
  const W = 720, H = 180, PAD = 28;
  const now = Math.floor(Date.now() / 60000);
  const byMinute = new Map(u.minutes.map((m) => [Math.floor(Date.parse(m.start) / 60000), m]));
  const slots = [];
  for (let i = MINUTES - 1; i >= 0; i--) slots.push(byMinute.get(now - i) || null);
  const maxCpu = Math.max(0.01, ...slots.map((m) => (m ? m.cpu_seconds : 0)));
  const maxTries = Math.max(1, ...slots.map((m) => (m ? m.tries : 0)));
  const bw = (W - 2 * PAD) / MINUTES;
  const y = (v, max) => H - PAD - (v / max) * (H - 2 * PAD);
  const bars = slots.map((m, i) => m && m.cpu_seconds > 0
    ? s("rect", { x: PAD + i * bw + 1, y: y(m.cpu_seconds, maxCpu), width: Math.max(1, bw - 2), height: H - PAD - y(m.cpu_seconds, maxCpu), class: "usage-bar" },
      s("title", {}, `${new Date(Date.parse(m.start)).toLocaleTimeString()}: ${m.cpu_seconds.toFixed(2)} CPU s, ${m.tries} tries`))
    : null);
  const points = slots.map((m, i) => `${PAD + i * bw + bw / 2},${y(m ? m.tries : 0, maxTries)}`).join(" ");
  return h("figure", { class: "usage-chart" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "data-testid": "usage-chart",
      "aria-label": `CPU seconds and tries per minute over the last hour; at most ${maxCpu.toFixed(2)} CPU s and ${maxTries} tries in a minute` },
      s("line", { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, class: "axis" }),
      s("text", { x: PAD, y: H - 8, class: "axis-label" }, "60 min ago"),
      s("text", { x: W - PAD, y: H - 8, "text-anchor": "end", class: "axis-label" }, "now"),
      s("text", { x: PAD, y: PAD - 10, class: "axis-label" }, `${maxCpu.toFixed(2)} CPU s / min`),
      ...bars.filter(Boolean),
      s("polyline", { points, class: "usage-line", fill: "none" })),
    h("figcaption", { class: "muted small" }, "Bars: guest CPU seconds of the tries that ended in each minute. Line: tries that ended."));
}
