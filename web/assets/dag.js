// One DAG: header (pause, trigger, backfill), tabs (Grid, Graph, Gantt, Backfills,
// Code, Details), the selected run's toolbar with its actions, and a side panel for
// a TaskInstance or a run (with the run's callbacks). Holds the data every tab
// shares and keeps it current from the event stream (or by polling when the stream
// is down).

import { get, patch, p, qs, latestRuns, runTaskInstances, pool, ApiError } from "./api.js";
import { h, replace, renderKeyed, badge, time, fmtDuration, span, errorBox, loading, toast, debounce, json, empty, shortHash } from "./dom.js";
import { href, withParams, current } from "./router.js";
import { watch } from "./live.js";
import { layout } from "./layout.js";
import { isFinishedRun, dagVersion, withUpstream } from "./model.js";
import * as grid from "./grid.js";
import * as graph from "./graph.js";
import * as gantt from "./gantt.js";
import * as backfills from "./backfill.js";
import { TiPanel } from "./ti.js";
import { clearRunDialog, markRunDialog, deleteRunDialog } from "./actions.js";
import { favoriteStar } from "./favorite.js";
import { needs } from "./session.js";

const TABS = [
  ["grid", "Grid"],
  ["graph", "Graph"],
  ["gantt", "Gantt"],
  ["backfills", "Backfills"],
  ["code", "Code"],
  ["details", "Details"],
];
const RUN_LIMITS = [10, 25, 50, 100];

export function mount(root, route) {
  const dagId = route.segments[1];
  document.title = `${dagId} · Aileron`;

  // Everything the tabs and panels read.
  const ctx = {
    dagId,
    dag: null,
    source: null,
    tasks: [],
    taskMap: new Map(),
    layout: null,
    order: [],
    runs: [],
    runsTotal: 0,
    tis: new Map(), // run id → TaskInstances
    params: {},
    backfills: [], // newest first
    backfillsTotal: 0,
    backfillsError: null,
    loadError: null,
    selectedRunId: null,
    selectedRun() {
      return this.runs.find((r) => r.dag_run_id === this.selectedRunId) || null;
    },
    tisOf(runId) {
      return this.tis.get(runId);
    },
    refresh: () => refresh(),
    refreshRun: (runId) => refreshRun(runId),
    refreshBackfills: () => refreshBackfills(),
    openBackfill: () => openBackfill(),
  };

  const headEl = h("div", { class: "dag-head" });
  const tabsEl = h("nav", { class: "tabs", "aria-label": "DAG views" });
  const toolbarEl = h("div", { class: "run-toolbar", "data-testid": "run-toolbar" });
  const statusEl = h("div", {});
  const contentEl = h("div", { class: "tab-content", "data-testid": "tab-content" });
  const asideEl = h("aside", { class: "side-panel", "aria-label": "Details", hidden: true });
  root.append(h("section", { class: "page dag-page" },
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "#/dags" }, "DAGs"), " / ", h("span", {}, dagId)),
    headEl, tabsEl, toolbarEl, statusEl,
    h("div", { class: "dag-body" }, contentEl, asideEl)));

  function readParams(r) {
    const tab = r.segments[2] || "grid";
    const limit = Number(r.params.get("limit")) || 25;
    const mi = r.params.get("map_index");
    ctx.params = {
      tab: TABS.some(([k]) => k === tab) ? tab : "grid",
      run: r.params.get("run") || null,
      task: r.params.get("task") || null,
      mapIndex: mi === null || mi === "" ? null : Number(mi),
      tryNumber: r.params.get("try") ? Number(r.params.get("try")) : null,
      runPanel: r.params.get("panel") === "run",
      limit: RUN_LIMITS.includes(limit) ? limit : 25,
    };
    const runs = ctx.runs;
    ctx.selectedRunId = ctx.params.run || (runs.length ? runs[runs.length - 1].dag_run_id : null);
  }

  // ---- loading -----------------------------------------------------------

  // The DAG's details every time; its tasks and source only when its version
  // changed.
  async function loadDag() {
    const dag = await get(p`/dags/${dagId}/details`);
    const versionChanged = !ctx.dag || dagVersion(ctx.dag).hash !== dagVersion(dag).hash;
    if (versionChanged || !ctx.layout) {
      const [tasks, source] = await Promise.all([
        get(p`/dags/${dagId}/tasks`),
        get(p`/dagSources/${dagId}`).catch(() => ({ content: null })),
      ]);
      ctx.tasks = withUpstream(tasks.tasks || []);
      ctx.taskMap = new Map(ctx.tasks.map((t) => [t.task_id, t]));
      ctx.source = source.content;
      ctx.layout = layout(ctx.tasks);
      ctx.order = ctx.layout.order;
    }
    ctx.dag = dag;
  }

  async function loadTis(runId) {
    try {
      ctx.tis.set(runId, await runTaskInstances(dagId, runId));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) ctx.tis.delete(runId);
      else throw e;
    }
  }

  async function loadRuns() {
    const { runs, total } = await latestRuns(dagId, ctx.params.limit);
    // A deep link to a run older than the ones shown still works: fetch it too.
    const wanted = ctx.params.run;
    if (wanted && !runs.some((r) => r.dag_run_id === wanted)) {
      try {
        runs.unshift(await get(p`/dags/${dagId}/dagRuns/${wanted}`));
      } catch {
        /* shown as "run not found" */
      }
    }
    const before = new Map(ctx.runs.map((r) => [r.dag_run_id, r]));
    ctx.runs = runs;
    ctx.runsTotal = total;
    readParams(current());
    const keep = new Set(runs.map((r) => r.dag_run_id));
    for (const id of [...ctx.tis.keys()]) if (!keep.has(id)) ctx.tis.delete(id);
    // Finished runs whose state has not changed keep their TaskInstances.
    const stale = runs.filter((r) => {
      const old = before.get(r.dag_run_id);
      return !ctx.tis.has(r.dag_run_id) || !old || old.state !== r.state || !isFinishedRun(r.state) || r.dag_run_id === ctx.selectedRunId;
    });
    await pool(stale, 4, (r) => loadTis(r.dag_run_id));
  }

  // A failure to read backfills (a transient error) is shown beside them and leaves
  // the rest of the page working.
  async function loadBackfills() {
    try {
      const { backfills: list, total } = await backfills.loadBackfills(dagId);
      ctx.backfills = list;
      ctx.backfillsTotal = total;
      ctx.backfillsError = null;
    } catch (e) {
      ctx.backfillsError = e;
    }
  }

  const refreshBackfills = debounce(async () => {
    await loadBackfills();
    scheduleRender();
  }, 500);

  async function openBackfill() {
    const created = await backfills.backfillDialog(ctx);
    if (!created) return;
    await loadBackfills();
    if (ctx.params.tab === "backfills") renderAll();
    else backfills.showBackfills(dagId);
    refreshRunsSoon();
  }

  let inflight = null;
  let again = false;
  async function refresh({ dag = false } = {}) {
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = (async () => {
      try {
        if (dag || !ctx.dag) await loadDag();
        await Promise.all([loadRuns(), loadBackfills()]);
        ctx.loadError = null;
      } catch (e) {
        ctx.loadError = e;
      }
      inflight = null;
      renderAll();
      if (panel && panel.refresh) panel.refresh();
      if (again) {
        again = false;
        refresh();
      }
    })();
    return inflight;
  }

  const pendingRuns = new Set();
  const flushRuns = debounce(async () => {
    const ids = [...pendingRuns];
    pendingRuns.clear();
    try {
      await Promise.all(ids.map(async (id) => {
        const run = await get(p`/dags/${dagId}/dagRuns/${id}`).catch(() => null);
        const i = ctx.runs.findIndex((r) => r.dag_run_id === id);
        if (run && i >= 0) ctx.runs[i] = run;
        await loadTis(id);
      }));
    } catch {
      /* the next refresh shows it */
    }
    scheduleRender();
  }, 400);

  function refreshRun(runId) {
    pendingRuns.add(runId);
    flushRuns();
  }

  const refreshRunsSoon = debounce(() => refresh(), 400);
  const refreshPanelSoon = debounce(() => panel && panel.refresh && panel.refresh(), 300);

  // Live events: patch the state in place at once (the page turns green as it
  // happens), then re-read the run for dates and durations.
  function onEvent(type, data) {
    if (type === "dags") {
      if (!data.dag_id || data.dag_id === dagId) refresh({ dag: true });
      return;
    }
    const runId = data.dag_run_id;
    if (!runId) return;
    const run = ctx.runs.find((r) => r.dag_run_id === runId);
    if (type === "dag_run") {
      if (run) {
        // A run the page does not know yet reloads everything, backfills included.
        if (ctx.backfills.some((b) => !b.completed_at) || run.backfill_id != null) refreshBackfills();
        if (data.state) run.state = data.state;
        refreshRun(runId);
      } else {
        refreshRunsSoon();
      }
    } else if (type === "task_instance") {
      if (!run) {
        refreshRunsSoon();
        return;
      }
      const list = ctx.tis.get(runId);
      if (list) {
        const mi = data.map_index ?? -1;
        let ti = list.find((t) => t.task_id === data.task_id && (t.map_index ?? -1) === mi);
        if (!ti) {
          // A newly expanded mapped instance replaces the unexpanded placeholder.
          if (mi >= 0) {
            const at = list.findIndex((t) => t.task_id === data.task_id && (t.map_index ?? -1) === -1);
            if (at >= 0) list.splice(at, 1);
          }
          ti = { task_id: data.task_id, dag_id: dagId, dag_run_id: runId, map_index: mi };
          list.push(ti);
        }
        if ("state" in data) ti.state = data.state;
        if (data.try_number !== undefined) ti.try_number = data.try_number;
      }
      scheduleRender();
      refreshRun(runId);
      const pp = ctx.params;
      if (pp.task === data.task_id && (pp.run || ctx.selectedRunId) === runId) refreshPanelSoon();
    }
  }

  // ---- rendering ---------------------------------------------------------

  let frame = 0;
  function scheduleRender() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderAll();
    });
  }

  function renderHead() {
    const d = ctx.dag;
    if (!d) {
      renderKeyed(headEl, "none", () => h("h1", {}, dagId));
      return;
    }
    const next = d.next_dagrun_logical_date ?? d.next_dagrun_run_after;
    const version = dagVersion(d);
    const active = ctx.backfills.find((b) => !b.completed_at) || null;
    const activeKey = active ? [active.id, active.is_paused, active.runs_by_state] : null;
    const key = JSON.stringify([version.hash, d.is_favorite, d.is_paused, d.has_import_errors, next, ctx.runsTotal, d.timetable_summary, activeKey]);
    renderKeyed(headEl, key, () => {
      const toggle = needs("User", h("input", {
        type: "checkbox", role: "switch", class: "switch", checked: !d.is_paused, "data-testid": "pause-toggle",
        "aria-label": `${dagId}: ${d.is_paused ? "paused" : "active"} (toggle to ${d.is_paused ? "unpause" : "pause"})`,
        onchange: async () => {
          toggle.disabled = true;
          try {
            const updated = await patch(p`/dags/${dagId}`, { is_paused: !toggle.checked });
            d.is_paused = updated && typeof updated.is_paused === "boolean" ? updated.is_paused : !toggle.checked;
            toast(`${dagId} ${d.is_paused ? "paused" : "unpaused"}`);
          } catch (e) {
            toast(`Could not change ${dagId}: ${e.detail || e.message}`, "error");
          }
          toggle.checked = !d.is_paused;
          toggle.disabled = false;
          renderHead();
        },
      }));
      return [
        h("div", { class: "dag-title" },
          toggle,
          favoriteStar(d, () => renderHead()),
          h("h1", {}, d.dag_display_name || dagId),
          d.is_paused ? h("span", { class: "badge badge-muted", "data-testid": "paused-badge" }, "paused") : null,
          (d.tags || []).map((t) => h("a", { class: "tag", href: `#/dags?tag=${encodeURIComponent(t.name)}` }, t.name)),
          active ? activeBackfill(active) : null,
          h("span", { class: "spacer" }),
          d.timetable_summary ? needs("User", h("button", { type: "button", class: "btn", "data-testid": "backfill-button", onclick: () => openBackfill() }, "⟲ Backfill")) : null,
          needs("User", h("a", { class: "btn btn-primary", href: href(["dags", dagId, "trigger"]), "data-testid": "trigger-button" }, "▶ Trigger"))),
        d.description ? h("p", { class: "muted" }, d.description) : null,
        d.has_import_errors ? h("div", { class: "alert alert-error", role: "alert" }, "This DAG's file currently fails to import; the last version that loaded is shown. See the DAGs page for the error.") : null,
        h("dl", { class: "facts" },
          fact("Schedule", d.timetable_summary ? h("code", { title: d.timetable_description || "" }, d.timetable_summary) : "None", d.timetable_description),
          fact("Next run", next ? time(next) : "—", d.next_dagrun_run_after ? `Runs after ${d.next_dagrun_run_after}` : ""),
          fact("Owner", (d.owners || []).join(", ") || "—"),
          fact("Runs", String(ctx.runsTotal)),
          fact("Version", h("code", { title: version.hash }, versionLabel(version)))),
      ];
    });
  }

  function activeBackfill(b) {
    const { done, total } = backfills.backfillDone(b);
    return h("a", {
      class: "badge badge-info", href: href(["dags", dagId, "backfills"]), "data-testid": "active-backfill",
      title: `Backfill ${b.id} in progress: ${done} of ${total} runs done${b.is_paused ? " (paused)" : ""}`,
    }, `Backfill ${b.id}: ${done}/${total}${b.is_paused ? " (paused)" : ""}`);
  }

  function fact(label, value, note) {
    return h("div", { class: "fact" }, h("dt", {}, label), h("dd", { title: note || "" }, value));
  }

  function renderTabs() {
    renderKeyed(tabsEl, JSON.stringify([ctx.params.tab, keepParams()]), () => TABS.map(([k, label]) => h("a", {
      href: href(["dags", dagId, k], keepParams()),
      class: "tab",
      "data-testid": `tab-${k}`,
      "aria-current": ctx.params.tab === k ? "page" : null,
    }, label)));
  }

  function keepParams() {
    const { run, task, mapIndex, limit } = ctx.params;
    return { run, task, map_index: mapIndex, limit: limit === 25 ? null : limit };
  }

  // The toolbar's parts re-render separately, each only when what it shows changed.
  const toolRun = h("div", { class: "tool-run" });
  const toolActions = h("div", {});
  toolbarEl.append(toolRun, h("span", { class: "spacer" }), toolActions);

  function renderToolbar() {
    const tab = ctx.params.tab;
    toolbarEl.hidden = tab === "code" || tab === "details" || tab === "backfills" || !ctx.dag;
    if (toolbarEl.hidden) return;
    const runs = [...ctx.runs].reverse();
    const run = ctx.selectedRun();
    const runKey = JSON.stringify([ctx.selectedRunId, runs.map((r) => [r.dag_run_id, r.state, r.start_date, r.end_date])]);
    renderKeyed(toolRun, runKey, () => {
      const select = h("select", {
        id: "run-select", "data-testid": "run-select", "aria-label": "Selected run",
        onchange: () => withParams({ run: select.value }),
      }, runs.map((r) => h("option", { value: r.dag_run_id, selected: r.dag_run_id === ctx.selectedRunId }, `${r.dag_run_id} (${r.state})`)));
      return [
        runs.length ? h("label", { class: "inline" }, "Run ", select) : h("span", { class: "muted" }, "No runs yet."),
        run ? badge(run.state, { "data-testid": "run-state", "data-state": run.state }) : null,
        run ? h("span", { class: "muted small" }, h("span", { "data-testid": "run-type" }, run.run_type), " · ",
          h("code", { title: `DAG version ${versionLabel(dagVersion(run))}`, "data-testid": "run-dag-version" }, shortHash(dagVersion(run).hash)), " · ", time(run.logical_date), " · ",
          run.end_date ? `took ${fmtDuration(span(run.start_date, run.end_date))}` : run.start_date ? h("span", {}, "started ", time(run.start_date)) : "not started") : null,
      ];
    });
    renderKeyed(toolActions, run ? run.dag_run_id : "", () => (run ? runActions(run) : []));
  }

  function runActions(run) {
    const rid = run.dag_run_id;
    return h("div", { class: "btn-group", role: "group", "aria-label": "Run actions" },
      needs("User", h("button", { type: "button", class: "btn btn-small", "data-testid": "run-clear-button", onclick: () => clearRunDialog(ctx, rid) }, "Clear run")),
      needs("User", h("button", { type: "button", class: "btn btn-small", "data-testid": "run-mark-success-button", onclick: () => markRunDialog(ctx, rid, "success") }, "Mark success")),
      needs("User", h("button", { type: "button", class: "btn btn-small", "data-testid": "run-mark-failed-button", onclick: () => markRunDialog(ctx, rid, "failed") }, "Mark failed")),
      needs("User", h("button", { type: "button", class: "btn btn-small btn-danger-outline", "data-testid": "run-delete-button", onclick: () => deleteRunDialog(ctx, rid) }, "Delete")));
  }

  function renderContent() {
    if (ctx.loadError && !ctx.dag) {
      replace(statusEl, errorBox(ctx.loadError));
      replace(contentEl);
      return;
    }
    replace(statusEl, ctx.loadError ? errorBox(ctx.loadError) : null);
    if (!ctx.dag) {
      replace(contentEl, loading());
      return;
    }
    const tab = ctx.params.tab;
    if (contentEl.dataset.tab !== tab) {
      // Each tab owns the content area while it is shown.
      replace(contentEl);
      contentEl.dataset.rendered = "";
      contentEl.dataset.tab = tab;
    }
    if (tab === "grid") grid.render(contentEl, ctx);
    else if (tab === "graph") graph.render(contentEl, ctx);
    else if (tab === "gantt") gantt.render(contentEl, ctx);
    else if (tab === "backfills") backfills.render(contentEl, ctx);
    else if (tab === "code") renderCode();
    else renderDetails();
  }

  function renderCode() {
    const version = dagVersion(ctx.dag);
    if (contentEl.dataset.rendered === `code:${version.hash}`) return;
    const lines = String(ctx.source || "").split("\n");
    replace(contentEl,
      h("p", { class: "muted small" }, h("code", {}, ctx.dag.fileloc || ""), ` · version ${versionLabel(version)}`),
      ctx.source
        ? h("pre", { class: "code", "data-testid": "dag-source", tabindex: "0", "aria-label": "DAG source" },
          lines.map((l, i) => h("span", { class: "line" }, h("span", { class: "ln", "aria-hidden": "true" }, String(i + 1)), l, "\n")))
        : empty("The source of this DAG is not available."));
    contentEl.dataset.rendered = `code:${version.hash}`;
  }

  function renderDetails() {
    const d = ctx.dag;
    const version = dagVersion(d);
    const key = `details:${version.hash}:${d.is_paused}`;
    if (contentEl.dataset.rendered === key) return;
    contentEl.dataset.rendered = key;
    const rows = [
      ["DAG id", d.dag_id], ["Description", d.description || "—"], ["File", d.fileloc],
      ["Owners", (d.owners || []).join(", ")], ["Tags", (d.tags || []).map((t) => t.name).join(", ") || "—"],
      ["Schedule", `${d.timetable_summary ?? "None"} — ${d.timetable_description ?? ""}`],
      ["Start date", time(d.start_date)], ["End date", time(d.end_date)], ["Catchup", String(d.catchup)],
      ["Max active runs", String(d.max_active_runs)], ["Max active tasks", String(d.max_active_tasks)],
      ["Time zone", d.timezone || "UTC"], ["Paused", String(d.is_paused)], ["Last parsed", time(d.last_parsed_time)],
      ["Version", h("code", { title: version.hash }, versionLabel(version))],
    ];
    replace(contentEl,
      h("div", { class: "details-grid", "data-testid": "dag-details" },
        h("section", {}, h("h2", {}, "DAG"),
          h("table", { class: "table kv" }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v)))))),
        h("section", {}, h("h2", {}, "Params"),
          d.params && Object.keys(d.params).length ? json(d.params) : empty("This DAG has no params."))),
      h("section", {}, h("h2", {}, `Tasks (${ctx.tasks.length})`),
        h("div", { class: "table-wrap" }, h("table", { class: "table", "data-testid": "task-table" },
          h("thead", {}, h("tr", {}, ["Task", "Operator", "Trigger rule", "Retries", "Upstream", "Downstream", "Pool", "Mapped"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, ctx.order.map((id) => ctx.taskMap.get(id)).filter(Boolean).map((t) => h("tr", {},
            h("td", {}, h("code", {}, t.task_id)),
            h("td", {}, h("a", { href: `#/plugins?name=${encodeURIComponent(t.operator_name || t.operator)}` }, t.operator)),
            h("td", {}, t.trigger_rule), h("td", {}, String(t.retries ?? 0)),
            h("td", {}, (t.upstream_task_ids || []).join(", ") || "—"),
            h("td", {}, (t.downstream_task_ids || []).join(", ") || "—"),
            h("td", {}, t.pool || "default_pool"), h("td", {}, t.is_mapped ? "yes" : "no"))))))));
  }

  // ---- side panel --------------------------------------------------------

  let panel = null;
  let panelKey = "";

  function renderPanel() {
    const { task, mapIndex, run, tryNumber, runPanel: showRun } = ctx.params;
    let key = "";
    if (task && ctx.dag) key = `ti|${run || ctx.selectedRunId}|${task}|${mapIndex}`;
    else if (showRun && ctx.dag && ctx.selectedRunId) key = `run|${ctx.selectedRunId}`;
    if (key !== panelKey) {
      if (panel && panel.destroy) panel.destroy();
      panel = null;
      panelKey = key;
      replace(asideEl);
      asideEl.hidden = !key;
      if (key.startsWith("ti|")) {
        panel = new TiPanel(asideEl, ctx, { runId: run || ctx.selectedRunId, taskId: task, mapIndex, tryNumber, onClose: closePanel });
      } else if (key.startsWith("run|")) {
        panel = runPanel(ctx.selectedRunId);
      }
    } else if (panel && panel.update) {
      panel.update({ tryNumber });
    } else if (panel && panel.render) {
      panel.render();
    }
  }

  function runPanel(runId) {
    let callbacks = null; // null until read
    let callbacksError = null;
    let seen = null; // what the run looked like when its callbacks were last read
    let timer = null;
    let alive = true;
    const bodyEl = h("div", {});
    const callbacksEl = h("div", {});
    replace(asideEl, h("div", { class: "panel", "data-testid": "run-panel" },
      h("div", { class: "panel-head" },
        h("h2", {}, "Run ", h("code", {}, runId)),
        h("button", { type: "button", class: "btn btn-icon", "data-testid": "panel-close", "aria-label": "Close run details (Escape)", onclick: closePanel }, "✕")),
      bodyEl,
      h("section", {}, h("h3", {}, "Callbacks"), callbacksEl)));

    // Callbacks fire as tasks and the run finish, and run on their own: they are
    // read again when the run's states change, and polled while one is unfinished.
    async function loadCallbacks() {
      if (timer) clearTimeout(timer);
      timer = null;
      try {
        const r = await get(p`/dags/${dagId}/dagRuns/${runId}/callbacks` + qs({ limit: 1000 }));
        callbacks = r.callbacks || [];
        callbacksError = null;
      } catch (e) {
        callbacksError = e;
      }
      if (!alive) return;
      renderCallbacks();
      if (callbacks && callbacks.some((c) => c.state === "queued" || c.state === "running")) {
        timer = setTimeout(loadCallbacks, 1500);
      }
    }
    const loadSoon = debounce(loadCallbacks, 400);

    function renderCallbacks() {
      renderKeyed(callbacksEl, JSON.stringify([callbacks, callbacksError && callbacksError.detail]), () => {
        if (callbacksError) return errorBox(callbacksError);
        if (!callbacks) return h("p", { class: "muted small", "aria-busy": "true" }, "Loading…");
        if (!callbacks.length) return empty("No callback has fired for this run.", { "data-testid": "run-callbacks-empty" });
        return h("div", { class: "table-wrap" }, h("table", { class: "table small", "data-testid": "run-callbacks" },
          h("thead", {}, h("tr", {}, ["Event", "Fired by", "Operator", "State", "Why"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, callbacks.map((c) => [
            h("tr", { "data-testid": `callback-${c.seq}`, "data-state": c.state },
              h("td", {}, h("code", {}, c.event)),
              h("td", {}, c.task_id
                ? [h("code", {}, `${c.task_id}${c.map_index !== null && c.map_index !== undefined && c.map_index >= 0 ? `[${c.map_index}]` : ""}`), c.try_number ? ` try ${c.try_number}` : ""]
                : h("span", { class: "muted" }, "the run")),
              h("td", {}, c.operator),
              h("td", {}, badge(c.state, { "data-testid": `callback-state-${c.seq}`, "data-state": c.state })),
              h("td", {}, c.reason || "", c.error ? h("div", { class: "error-text" }, c.error) : null)),
            h("tr", { class: "callback-log-row" }, h("td", { colspan: "5" },
              h("details", {}, h("summary", { class: "small" }, "Log"),
                h("pre", { class: "log", "data-testid": `callback-log-${c.seq}` }, c.log || "(nothing logged)")))),
          ]))));
      });
    }

    const render = () => {
      const r = ctx.runs.find((x) => x.dag_run_id === runId);
      renderKeyed(bodyEl, JSON.stringify(r || null), () => !r ? empty("This run was not found.") : h("div", {},
        h("p", {}, badge(r.state, { "data-testid": "run-panel-state", "data-state": r.state })),
        h("table", { class: "table kv" }, h("tbody", {},
          [["Run id", h("code", {}, r.dag_run_id)],
            ["Run type", h("span", { "data-testid": "run-panel-type" }, r.run_type)],
            r.backfill_id !== null && r.backfill_id !== undefined
              ? ["Backfill", h("a", { href: href(["dags", dagId, "backfills"]), "data-testid": "run-panel-backfill" }, `backfill ${r.backfill_id}`)]
              : null,
            ["Logical date", time(r.logical_date)],
            ["Data interval", h("span", {}, time(r.data_interval_start), " → ", time(r.data_interval_end))],
            ["Queued at", time(r.queued_at)], ["Started", time(r.start_date)], ["Ended", time(r.end_date)],
            ["Duration", fmtDuration(span(r.start_date, r.end_date))],
            ["DAG version", h("code", { title: versionLabel(dagVersion(r)), "data-testid": "run-panel-dag-version" }, shortHash(dagVersion(r).hash)),
              ctx.dag && dagVersion(r).hash && dagVersion(ctx.dag).hash !== dagVersion(r).hash ? h("span", { class: "muted small" }, " (not the latest)") : null]]
            .filter(Boolean)
            .map(([k, ...v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))),
        h("h3", {}, "Conf"),
        r.conf && Object.keys(r.conf).length ? json(r.conf) : empty("No conf.")));
      const mark = r ? JSON.stringify([r.state, r.end_date, (ctx.tis.get(runId) || []).map((t) => t.state)]) : "";
      if (mark !== seen) {
        seen = mark;
        loadSoon();
      }
    };
    render();
    renderCallbacks();
    return {
      render,
      refresh: () => loadSoon(),
      destroy() {
        alive = false;
        if (timer) clearTimeout(timer);
      },
    };
  }

  function closePanel() {
    const { task } = ctx.params;
    const focusBack = task
      ? `[data-testid="ti-cell-${CSS.escape(ctx.params.run || ctx.selectedRunId || "")}-${CSS.escape(task)}"], [data-testid="graph-node-${CSS.escape(task)}"], [data-testid="gantt-row-${CSS.escape(task)}"]`
      : `[data-testid="run-header-${CSS.escape(ctx.selectedRunId || "")}"]`;
    if (task) withParams({ task: null, map_index: null, try: null });
    else withParams({ panel: null });
    requestAnimationFrame(() => {
      const el = contentEl.querySelector(focusBack);
      if (el) el.focus();
    });
  }

  function onKey(e) {
    if (e.key !== "Escape" || e.defaultPrevented) return;
    if (document.querySelector("dialog[open]")) return;
    if (!asideEl.hidden) {
      e.preventDefault();
      closePanel();
    }
  }
  document.addEventListener("keydown", onKey);

  function renderAll() {
    renderHead();
    renderTabs();
    renderToolbar();
    renderContent();
    renderPanel();
    asideEl.parentElement.classList.toggle("has-panel", !asideEl.hidden);
  }

  readParams(route);
  renderAll();
  refresh({ dag: true });
  watch({ dagId, onEvent, refresh: () => refresh() });

  return {
    update(r) {
      const prevLimit = ctx.params.limit;
      const prevRun = ctx.params.run;
      readParams(r);
      renderAll();
      if (ctx.params.limit !== prevLimit || (ctx.params.run && ctx.params.run !== prevRun && !ctx.runs.some((x) => x.dag_run_id === ctx.params.run))) {
        refresh();
      } else if (ctx.selectedRunId && !ctx.tis.has(ctx.selectedRunId)) {
        refreshRun(ctx.selectedRunId);
      }
    },
    destroy() {
      document.removeEventListener("keydown", onKey);
      if (panel && panel.destroy) panel.destroy();
      if (frame) cancelAnimationFrame(frame);
    },
  };
}

/** `v3 · 1a2b3c4d5e6f`: a DAG version's number with the start of its hash. */
function versionLabel(v) {
  if (!v.hash) return "—";
  return v.number === null || v.number === undefined ? shortHash(v.hash) : `v${v.number} · ${shortHash(v.hash)}`;
}
