// The Grid: runs as columns (oldest left), tasks as rows, each cell the state of
// the task's TaskInstance in that run; a mapped task's cell summarises its
// instances (the most pressing state, and how many). Arrow keys move between cells.

import { h, replace, fmtDuration, span, fmtTime, stateLabel, stateKey, empty } from "./dom.js";
import { href, withParams } from "./router.js";
import { summarize, describeCounts, groupByTask } from "./model.js";

const BAR_MAX = 56;
const BAR_MIN = 8;

export function render(el, ctx) {
  const runs = ctx.runs;
  const tasks = ctx.order.map((id) => ctx.taskMap.get(id)).filter(Boolean);
  if (!tasks.length) {
    replace(el, empty("This DAG has no tasks."));
    return;
  }
  const selectedRun = ctx.selectedRunId;
  const selectedTask = ctx.params.task;
  const durations = runs.map((r) => span(r.start_date, r.end_date) || 0);
  const maxDur = Math.max(1, ...durations);
  const grouped = new Map(runs.map((r) => [r.dag_run_id, groupByTask(ctx.tis.get(r.dag_run_id))]));

  const head = h("tr", {},
    h("th", { scope: "col", class: "task-col" }, h("span", { class: "muted small" }, runs.length ? `${runs.length} of ${ctx.runsTotal} runs` : "Tasks")),
    runs.map((r, c) => {
      const hgt = BAR_MIN + Math.round(((durations[c] || 0) / maxDur) * (BAR_MAX - BAR_MIN));
      const label = `Run ${r.dag_run_id}: ${stateLabel(r.state)}, ${fmtTime(r.logical_date)}, ${fmtDuration(durations[c])}`;
      return h("th", { scope: "col", class: ["run-col", r.dag_run_id === selectedRun && "selected"] },
        h("button", {
          type: "button",
          class: "run-bar-btn",
          "data-testid": `run-header-${r.dag_run_id}`,
          "data-state": r.state,
          "data-r": -1,
          "data-c": c,
          "aria-label": label,
          "aria-pressed": String(r.dag_run_id === selectedRun && !selectedTask),
          title: label,
          onclick: () => withParams({ run: r.dag_run_id, task: null, map_index: null, try: null }),
        }, h("span", { class: `run-bar state-${stateKey(r.state)}`, style: { height: `${hgt}px` } })));
    }));

  const body = tasks.map((t, row) => h("tr", { class: t.task_id === selectedTask ? "selected-row" : "" },
    h("th", { scope: "row", class: "task-col" },
      h("span", { class: "task-name", title: `${t.task_id} (${t.operator})` }, t.task_id),
      t.is_mapped ? h("span", { class: "mapped-mark", title: "Mapped task" }, " [ ]") : null,
      h("span", { class: "muted small op" }, t.operator)),
    runs.map((r, c) => {
      const tis = grouped.get(r.dag_run_id).get(t.task_id);
      const loaded = ctx.tis.has(r.dag_run_id);
      const sum = summarize(tis);
      const state = sum ? sum.state : null;
      const countText = sum && sum.mapped ? String(sum.count) : "";
      const desc = !loaded ? "loading" : !sum ? "no TaskInstance" : sum.mapped ? `${sum.count} mapped: ${describeCounts(sum)}` : stateLabel(state);
      const tries = sum && !sum.mapped && tis[0].try_number > 1 ? `, try ${tis[0].try_number}` : "";
      const label = `${t.task_id} in ${r.dag_run_id}: ${desc}${tries}`;
      return h("td", { class: ["cell-td", r.dag_run_id === selectedRun && "selected"] },
        h("button", {
          type: "button",
          class: ["cell", `state-${stateKey(state)}`, !loaded && "loading", !sum && loaded && "absent", sum && sum.mapped && "mapped",
            r.dag_run_id === selectedRun && t.task_id === selectedTask && "active"],
          "data-testid": `ti-cell-${r.dag_run_id}-${t.task_id}`,
          "data-state": loaded ? (state ?? "none") : "loading",
          "data-r": row,
          "data-c": c,
          "aria-label": label,
          title: label,
          onclick: () => withParams({ run: r.dag_run_id, task: t.task_id, map_index: null, try: null }),
        }, countText));
    })));

  const table = h("table", { class: "grid", "data-testid": "grid", onkeydown: onKey },
    h("caption", { class: "sr-only" }, "Task states per run: runs are columns, oldest first; tasks are rows"),
    h("thead", {}, head),
    h("tbody", {}, body));

  replace(el,
    runs.length ? null : h("p", { class: "empty", "data-testid": "empty-runs" }, "No runs yet. ",
      h("a", { href: href(["dags", ctx.dagId, "trigger"]) }, "Trigger one"), " and it shows up here as it runs."),
    h("div", { class: "grid-wrap" }, table),
    legend());
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
