// The Workers page: the `aileron worker` processes registered with this scheduler,
// the queues and slots each serves, the tries each runs (linked to their
// TaskInstance), its state and when it was last heard from. Workers send no events,
// so the page polls every 5 s. Rows are kept and their cells re-rendered only when
// they change, so an element a user or a test holds stays in the page.

import { get, qs } from "./api.js";
import { h, replace, renderKeyed, errorBox, loading, empty } from "./dom.js";
import { href } from "./router.js";
import { watch } from "./live.js";

const POLL_MS = 5000;

/** How long ago `iso` was, in words: `just now`, `12s ago`, `3m ago`, `2h ago`,
 *  `4d ago`. */
export function ago(iso, now = Date.now()) {
  if (!iso) return "—";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const s = Math.round((now - t) / 1000);
  if (s < 2) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** The test id of a running try: `<dag_id>-<dag_run_id>-<task_id>[-<map_index>]`. */
function tryKey(t) {
  return `${t.dag_id}-${t.dag_run_id}-${t.task_id}${t.map_index >= 0 ? `-${t.map_index}` : ""}`;
}

function stateBadge(w) {
  const title = {
    running: "Runs at least one try",
    idle: "Heard from, runs no try",
    offline: "Stopped, or not heard from for the worker timeout",
  }[w.state] || "";
  return h("span", { class: ["badge", `worker-${w.state}`], "data-testid": `worker-state-${w.worker_name}`, "data-state": w.state, title }, w.state);
}

function runningCell(w) {
  const n = w.running.length;
  const count = h("span", { "data-testid": `worker-running-${w.worker_name}`, "data-count": String(n) }, `${n} of ${w.slots}`);
  if (!n) return count;
  return [count, h("ul", { class: "worker-tries" }, w.running.map((t) => h("li", {},
    h("a", {
      href: href(["dags", t.dag_id, "grid"], { run: t.dag_run_id, task: t.task_id, map_index: t.map_index >= 0 ? t.map_index : null, try: t.try_number }),
      "data-testid": `worker-try-${tryKey(t)}`,
      title: `Run ${t.dag_run_id}, try ${t.try_number}`,
    }, h("code", {}, `${t.dag_id}.${t.task_id}${t.map_index >= 0 ? `[${t.map_index}]` : ""}`)),
    h("span", { class: "muted small" }, ` try ${t.try_number}`))))];
}

/** Each column: its heading, the key its cell re-renders on, and the cell. */
const COLUMNS = [
  ["Name", (w) => w.worker_name, (w) => h("code", { "data-testid": `worker-name-${w.worker_name}` }, w.worker_name)],
  ["Host", (w) => w.hostname, (w) => w.hostname || h("span", { class: "muted" }, "—")],
  ["Queues", (w) => w.queues.join("\n"), (w) => h("span", { class: "tags" }, w.queues.map((q) => h("span", { class: "tag tag-static" }, q)))],
  ["Tenants", (w) => (w.tenants || []).join("\n"), (w) => w.tenants
    ? h("span", { class: "tags" }, w.tenants.map((t) => h("span", { class: "tag tag-static" }, t)))
    : h("span", { class: "muted" }, "every tenant")],
  ["Slots", (w) => String(w.slots), (w) => String(w.slots)],
  ["Running", (w) => JSON.stringify([w.slots, w.running]), runningCell],
  ["State", (w) => w.state, stateBadge],
  // The relative time changes as the clock moves: keyed on its words.
  ["Last heartbeat", (w) => `${w.last_heartbeat} ${ago(w.last_heartbeat)}`, (w) => h("time", {
    datetime: w.last_heartbeat, title: `${w.last_heartbeat} (online since ${w.first_online})`, "data-testid": `worker-heartbeat-${w.worker_name}`,
  }, ago(w.last_heartbeat))],
  ["Version", (w) => w.version, (w) => (w.version ? h("code", {}, w.version) : h("span", { class: "muted" }, "—"))],
];

export function mount(root) {
  document.title = "Workers · Aileron";
  const countEl = h("span", { class: "muted", "data-testid": "worker-count", role: "status" });
  const body = h("div", {}, loading());
  root.append(h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, "Workers"), countEl),
    h("p", { class: "muted" }, "The ", h("code", {}, "aileron worker"), " processes that take tries from this scheduler's queues. Refreshed every 5 seconds."),
    body));

  const tbody = h("tbody", {});
  const table = h("div", { class: "table-wrap" }, h("table", { class: "table", "data-testid": "workers-table" },
    h("thead", {}, h("tr", {}, COLUMNS.map(([c]) => h("th", { scope: "col" }, c)))),
    tbody));
  const rows = new Map(); // worker_name → <tr>
  let workers = null;
  let error = null;
  let shown = null; // "table" | "empty" | "error"
  let alive = true;

  function show(what, ...children) {
    if (shown === what && what === "table") return;
    shown = what;
    replace(body, ...children);
  }

  function render() {
    if (!workers) {
      if (error) show("error", errorBox(error));
      return;
    }
    countEl.textContent = `${workers.length} worker${workers.length === 1 ? "" : "s"}`;
    if (!workers.length) {
      if (shown !== "empty") {
        show("empty", h("div", { "data-testid": "empty-workers" },
          empty("No workers: this server runs tasks itself (aileron standalone)"),
          h("p", { class: "muted small" }, "With ", h("code", {}, "aileron scheduler"), ", workers appear here once they register.")));
      }
    } else {
      show("table", table);
    }
    if (error) {
      // A failed refresh keeps the last list and says so above it.
      if (!body.querySelector("[data-testid=\"error\"]")) body.prepend(errorBox(error));
    } else {
      const stale = body.querySelector("[data-testid=\"error\"]");
      if (stale) stale.remove();
    }
    const seen = new Set();
    workers.forEach((w, index) => {
      seen.add(w.worker_name);
      let tr = rows.get(w.worker_name);
      if (!tr) {
        tr = h("tr", { "data-testid": `worker-row-${w.worker_name}` }, COLUMNS.map(() => h("td", {})));
        rows.set(w.worker_name, tr);
      }
      tr.dataset.state = w.state;
      COLUMNS.forEach(([, key, cell], i) => renderKeyed(tr.children[i], key(w), () => cell(w)));
      // In the API's order (by name); a row already in place is left alone, so it
      // keeps focus.
      const at = tbody.children[index];
      if (at !== tr) tbody.insertBefore(tr, at || null);
    });
    for (const [name, tr] of rows) {
      if (!seen.has(name)) {
        tr.remove();
        rows.delete(name);
      }
    }
  }

  let timer = null;
  async function load() {
    clearTimeout(timer);
    try {
      const r = await get("/workers" + qs({ limit: 10000 }));
      if (!alive) return;
      workers = r.workers || [];
      error = null;
    } catch (e) {
      if (!alive) return;
      error = e;
    }
    render();
    timer = setTimeout(load, POLL_MS);
  }
  load();
  // Keeps the header's live indicator meaningful; the list itself is polled.
  watch({ dagId: null, refresh: () => {}, onEvent() {} });
  return {
    update() {},
    destroy() {
      alive = false;
      clearTimeout(timer);
    },
  };
}
