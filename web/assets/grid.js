// The Grid: runs as columns (oldest left), tasks as rows, each cell the state of
// the task's TaskInstance in that run; a mapped task's cell summarises its
// instances (the most pressing state, and how many). Arrow keys move between cells.
// A run header is marked with its run type (M manual, B backfill) and a dashed
// left edge where the DAG version changes from the run before; tasks that are no
// longer in the DAG but have TaskInstances in the runs shown (`removed` after a
// cleared run moved to a newer version) get rows of their own at the bottom.
//
// The table is built once per set of runs and tasks; live updates repaint the
// cells in place, so a cell keeps its identity (and focus) while its run progresses.

import { h, replace, fmtDuration, span, fmtTime, stateLabel, stateKey, empty, shortHash } from "./dom.js";
import { href, withParams } from "./router.js";
import { summarize, describeCounts, groupByTask, dagVersion } from "./model.js";

const RUN_LIMITS = [10, 25, 50, 100];

const BAR_MAX = 56;
const BAR_MIN = 8;

const RUN_KIND = { manual: "M", backfill: "B" };

/** Tasks with TaskInstances in the runs shown that the current DAG no longer has. */
function goneTasks(ctx, runs) {
  const gone = new Map();
  for (const r of runs) {
    for (const ti of ctx.tis.get(r.dag_run_id) || []) {
      if (ctx.taskMap.has(ti.task_id)) continue;
      const t = gone.get(ti.task_id) || { task_id: ti.task_id, operator: ti.operator || "?", is_mapped: false, gone: true };
      if ((ti.map_index ?? -1) >= 0) t.is_mapped = true;
      gone.set(ti.task_id, t);
    }
  }
  return [...gone.values()].sort((a, b) => a.task_id.localeCompare(b.task_id));
}

export function render(el, ctx) {
  const runs = ctx.runs;
  const tasks = ctx.order.map((id) => ctx.taskMap.get(id)).filter(Boolean).concat(goneTasks(ctx, runs));
  if (!tasks.length) {
    el._gridKey = null;
    replace(el, empty("This DAG has no tasks."));
    return;
  }
  const structure = JSON.stringify([runs.map((r) => r.dag_run_id), tasks.map((t) => [t.task_id, t.operator, t.is_mapped, !!t.gone])]);
  let table = el.querySelector("table.grid");
  if (!table || el._gridKey !== structure) {
    table = build(el, ctx, runs, tasks);
    el._gridKey = structure;
  }
  paint(table, ctx, runs, tasks);
}

function build(el, ctx, runs, tasks) {
  const head = h("tr", {},
    h("th", { scope: "col", class: "task-col" },
      h("div", { class: "muted small", "data-role": "count" }),
      limitSelect(ctx)),
    runs.map((r, c) => h("th", { scope: "col", class: "run-col" },
      h("button", {
        type: "button",
        class: "run-bar-btn",
        "data-testid": `run-header-${r.dag_run_id}`,
        "data-run": r.dag_run_id,
        "data-r": -1,
        "data-c": c,
        onclick: () => withParams({ run: r.dag_run_id, panel: "run", task: null, map_index: null, try: null }),
      }, h("span", { class: "run-bar" }), h("span", { class: "run-kind", "aria-hidden": "true" })))));

  const body = tasks.map((t, row) => h("tr", { "data-task": t.task_id, "data-removed": t.gone ? "true" : null },
    h("th", { scope: "row", class: ["task-col", t.gone && "task-gone"], "data-testid": `grid-task-${t.task_id}` },
      h("span", { class: "task-name", title: t.gone ? `${t.task_id}: no longer in the DAG` : `${t.task_id} (${t.operator})` }, t.task_id),
      t.is_mapped ? h("span", { class: "mapped-mark", title: "Mapped task" }, " [ ]") : null,
      t.gone ? h("span", { class: "muted small op" }, "not in the DAG") : h("span", { class: "muted small op" }, t.operator)),
    runs.map((r, c) => h("td", { class: "cell-td" },
      h("button", {
        type: "button",
        class: "cell",
        "data-testid": `ti-cell-${r.dag_run_id}-${t.task_id}`,
        "data-run": r.dag_run_id,
        "data-task": t.task_id,
        "data-r": row,
        "data-c": c,
        onclick: () => withParams({ run: r.dag_run_id, task: t.task_id, panel: null, map_index: null, try: null }),
      })))));

  const table = h("table", { class: "grid", "data-testid": "grid", onkeydown: onKey },
    h("caption", { class: "sr-only" }, "Task states per run: runs are columns, oldest first; tasks are rows"),
    h("thead", {}, head),
    h("tbody", {}, body));

  replace(el,
    runs.length ? null : h("p", { class: "empty", "data-testid": "empty-runs" }, "No runs yet. ",
      h("a", { href: href(["dags", ctx.dagId, "trigger"]) }, "Trigger one"), " and it shows up here as it runs."),
    h("div", { class: "grid-wrap" }, table),
    legend());
  return table;
}

function setClass(el, cls) {
  if (el.getAttribute("class") !== cls) el.setAttribute("class", cls);
}

function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function paint(table, ctx, runs, tasks) {
  const selectedRun = ctx.selectedRunId;
  const selectedTask = ctx.params.task;
  const durations = runs.map((r) => span(r.start_date, r.end_date) || 0);
  const maxDur = Math.max(1, ...durations);
  // Where the DAG version differs from the run to the left.
  const versions = runs.map((r) => dagVersion(r));
  const changes = versions.map((v, c) => c > 0 && !!versions[c - 1].hash && !!v.hash && versions[c - 1].hash !== v.hash);
  const byRun = new Map(runs.map((r, c) => [r.dag_run_id, { run: r, c, tis: groupByTask(ctx.tis.get(r.dag_run_id)), loaded: ctx.tis.has(r.dag_run_id) }]));
  const taskById = new Map(tasks.map((t) => [t.task_id, t]));

  const count = table.querySelector('[data-role="count"]');
  count.textContent = runs.length ? `${runs.length} of ${ctx.runsTotal} runs` : "Tasks";

  for (const btn of table.querySelectorAll("thead .run-bar-btn")) {
    const { run: r, c } = byRun.get(btn.dataset.run);
    const hgt = BAR_MIN + Math.round(((durations[c] || 0) / maxDur) * (BAR_MAX - BAR_MIN));
    const versionChange = changes[c];
    const label = `Run ${r.dag_run_id}: ${stateLabel(r.state)}, ${r.run_type || "run"}${r.backfill_id !== null && r.backfill_id !== undefined ? ` (backfill ${r.backfill_id})` : ""}, ` +
      `${fmtTime(r.logical_date)}, ${fmtDuration(durations[c])}, DAG version ${versions[c].number ?? "?"} (${shortHash(versions[c].hash)})${versionChange ? " (changed)" : ""}`;
    setClass(btn.parentElement, `run-col${r.dag_run_id === selectedRun ? " selected" : ""}${versionChange ? " version-change" : ""}`);
    setAttr(btn, "data-state", r.state);
    setAttr(btn, "data-run-type", r.run_type || "");
    setAttr(btn, "data-dag-version", versions[c].hash);
    const kind = btn.querySelector(".run-kind");
    if (kind && kind.textContent !== (RUN_KIND[r.run_type] || "")) kind.textContent = RUN_KIND[r.run_type] || "";
    setAttr(btn, "aria-label", label);
    setAttr(btn, "title", label);
    setAttr(btn, "aria-pressed", String(r.dag_run_id === selectedRun && ctx.params.runPanel && !selectedTask));
    const bar = btn.querySelector(".run-bar");
    setClass(bar, `run-bar state-${stateKey(r.state)}`);
    bar.style.height = `${hgt}px`;
  }

  for (const tr of table.querySelectorAll("tbody tr")) {
    setClass(tr, tr.dataset.task === selectedTask ? "selected-row" : "");
  }

  for (const btn of table.querySelectorAll("tbody .cell")) {
    const col = byRun.get(btn.dataset.run);
    const t = taskById.get(btn.dataset.task);
    const tis = col.tis.get(t.task_id);
    const sum = summarize(tis);
    const state = sum ? sum.state : null;
    const desc = !col.loaded ? "loading" : !sum ? "no TaskInstance" : sum.mapped ? `${sum.count} mapped: ${describeCounts(sum)}` : stateLabel(state);
    const tries = sum && !sum.mapped && tis[0].try_number > 1 ? `, try ${tis[0].try_number}` : "";
    const label = `${t.task_id} in ${col.run.dag_run_id}: ${desc}${tries}`;
    const isSelRun = col.run.dag_run_id === selectedRun;
    setClass(btn.parentElement, `cell-td${isSelRun ? " selected" : ""}${changes[col.c] ? " version-change" : ""}`);
    setClass(btn, ["cell", `state-${stateKey(state)}`, !col.loaded && "loading", !sum && col.loaded && "absent",
      sum && sum.mapped && "mapped", isSelRun && t.task_id === selectedTask && "active"].filter(Boolean).join(" "));
    setAttr(btn, "data-state", col.loaded ? (state ?? "none") : "loading");
    setAttr(btn, "aria-label", label);
    setAttr(btn, "title", label);
    const text = sum && sum.mapped ? String(sum.count) : "";
    if (btn.textContent !== text) btn.textContent = text;
  }
}

/** How many runs the grid shows. */
function limitSelect(ctx) {
  const select = h("select", {
    class: "small", "data-testid": "grid-run-limit", "aria-label": "Runs shown",
    onchange: () => withParams({ limit: Number(select.value) === 25 ? null : select.value }),
  }, RUN_LIMITS.map((n) => h("option", { value: n, selected: n === ctx.params.limit }, `last ${n} runs`)));
  return select;
}

/** Arrow keys move focus between cells (and to the run headers above). */
function onKey(e) {
  const t = e.target;
  if (!t || t.dataset.r === undefined) return;
  const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], Home: [0, -1e6], End: [0, 1e6] };
  const m = moves[e.key];
  if (!m) return;
  const table = e.currentTarget;
  const rows = table.querySelectorAll("tbody tr").length;
  const cols = table.querySelectorAll("thead .run-col").length;
  const r = Math.max(-1, Math.min(rows - 1, Number(t.dataset.r) + m[0]));
  const c = Math.max(0, Math.min(cols - 1, Number(t.dataset.c) + m[1]));
  const next = table.querySelector(`[data-r="${r}"][data-c="${c}"]`);
  if (next) {
    e.preventDefault();
    next.focus();
  }
}

export function legend() {
  const states = ["success", "failed", "running", "queued", "scheduled", "up_for_retry", "upstream_failed", "skipped", "removed", null];
  return h("ul", { class: "legend", "data-testid": "state-legend", "aria-label": "State colours" },
    states.map((s) => h("li", {}, h("span", { class: `swatch state-${stateKey(s)}`, "aria-hidden": "true" }), stateLabel(s))));
}
