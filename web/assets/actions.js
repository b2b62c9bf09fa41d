// Clear / mark success / mark failed / delete, for TaskInstances and runs. Each
// opens a dialog that first asks the API for a dry run (or, for marking a run,
// works it out from the states on screen) and lists what will change, and only
// changes anything on Confirm.

import { post, patch, del, p, ApiError } from "./api.js";
import { h, replace, modal, badge, errorBox, toast, confirmDialog, stateLabel } from "./dom.js";
import { withParams } from "./router.js";
import { relatives, isFinishedTi } from "./model.js";

const FAILED = new Set(["failed", "upstream_failed"]);

function checkbox(testid, label, checked, onchange) {
  const input = h("input", { type: "checkbox", checked, "data-testid": testid, id: testid, onchange });
  return { input, el: h("label", { class: "check", for: testid }, input, " ", label) };
}

/** The table of TaskInstances a change touches: current state → new state. */
function previewTable(ctx, runId, items, newState, note) {
  if (!items.length) {
    return h("p", { class: "empty", "data-testid": "dry-run-empty" }, "Nothing to change: no TaskInstance matches.");
  }
  const cached = new Map((ctx.tis.get(runId) || []).map((t) => [`${t.task_id}|${t.map_index ?? -1}`, t]));
  return h("div", {},
    h("p", { class: "small" }, `${items.length} TaskInstance${items.length === 1 ? "" : "s"} of run ${runId} will change${note ? ` ${note}` : ""}:`),
    h("div", { class: "table-wrap preview" }, h("table", { class: "table small", "data-testid": "dry-run-list" },
      h("thead", {}, h("tr", {}, ["Task", "Map index", "Now", "After"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, items.map((t) => {
        const mi = t.map_index ?? -1;
        const known = cached.get(`${t.task_id}|${mi}`);
        const now = t.state !== undefined ? t.state : known ? known.state : undefined;
        return h("tr", { "data-testid": `dry-run-${t.task_id}${mi >= 0 ? `-${mi}` : ""}` },
          h("td", {}, h("code", {}, t.task_id)),
          h("td", {}, mi >= 0 ? String(mi) : "—"),
          h("td", {}, now === undefined ? "?" : badge(now)),
          h("td", {}, badge(newState)));
      })))));
}

/** What a change would touch, worked out in the browser from the cached states,
 *  when the API cannot do a dry run. */
function localPreview(ctx, runId, taskId, { downstream, upstream, onlyFailed, mapIndex }) {
  const ids = new Set([taskId]);
  if (downstream) for (const t of relatives(ctx.tasks, taskId, "down")) ids.add(t);
  if (upstream) for (const t of relatives(ctx.tasks, taskId, "up")) ids.add(t);
  return (ctx.tis.get(runId) || []).filter((t) =>
    ids.has(t.task_id) &&
    (t.task_id !== taskId || mapIndex === undefined || t.map_index === mapIndex) &&
    (!onlyFailed || FAILED.has(t.state)));
}

/** The dialog skeleton shared by all TaskInstance/run changes. */
function changeDialog({ title, testid, intro, options, preview, apply, confirmLabel, danger }) {
  return modal({
    title,
    testid,
    wide: true,
    build: (close) => {
      const previewEl = h("div", { class: "preview-area", "aria-live": "polite" });
      const errorEl = h("div", {});
      const confirm = h("button", { type: "button", class: ["btn", danger ? "btn-danger" : "btn-primary"], "data-testid": "confirm-button" }, confirmLabel);
      let gen = 0;
      const refreshPreview = async () => {
        const mine = ++gen;
        replace(previewEl, h("p", { class: "muted small", "aria-busy": "true" }, "Working out what will change…"));
        try {
          const el = await preview();
          if (mine === gen) replace(previewEl, el);
        } catch (e) {
          if (mine === gen) replace(previewEl, errorBox(e));
        }
      };
      confirm.addEventListener("click", async () => {
        confirm.disabled = true;
        replace(errorEl);
        try {
          await apply();
          close(true);
        } catch (e) {
          replace(errorEl, errorBox(e));
          confirm.disabled = false;
        }
      });
      for (const o of options) o.input.addEventListener("change", refreshPreview);
      refreshPreview();
      return h("div", {},
        intro ? h("p", {}, intro) : null,
        options.length ? h("fieldset", { class: "options" }, h("legend", { class: "sr-only" }, "Options"), options.map((o) => o.el)) : null,
        previewEl,
        errorEl,
        h("div", { class: "actions" },
          confirm,
          h("button", { type: "button", class: "btn", "data-testid": "cancel-button", onclick: () => close(false) }, "Cancel")));
    },
  });
}

export function clearTaskDialog(ctx, { runId, taskId, mapIndex }) {
  const downstream = checkbox("clear-include-downstream", "Include downstream tasks", true);
  const upstream = checkbox("clear-include-upstream", "Include upstream tasks", false);
  const onlyFailed = checkbox("clear-only-failed", "Only failed (failed and upstream_failed)", false);
  const body = (dryRun) => ({
    dag_run_id: runId,
    task_ids: [taskId],
    include_downstream: downstream.input.checked,
    include_upstream: upstream.input.checked,
    only_failed: onlyFailed.input.checked,
    dry_run: dryRun,
  });
  const url = p`/dags/${ctx.dagId}/clearTaskInstances`;
  const task = ctx.taskMap.get(taskId);
  return changeDialog({
    title: `Clear ${taskId}`,
    testid: "clear-dialog",
    intro: `Clearing resets TaskInstances of run ${runId} to no status, so the scheduler runs them again (as a new try).${task && task.is_mapped ? " A mapped task is cleared with all its instances." : ""}`,
    options: [downstream, upstream, onlyFailed],
    confirmLabel: "Clear",
    preview: async () => {
      try {
        const r = await post(url, body(true));
        return previewTable(ctx, runId, r.task_instances || [], null);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status === 0) throw e;
        const items = localPreview(ctx, runId, taskId, {
          downstream: downstream.input.checked, upstream: upstream.input.checked, onlyFailed: onlyFailed.input.checked,
        });
        return h("div", {}, errorBox(e), h("p", { class: "muted small" }, "The server could not do a dry run; this is worked out in the browser:"),
          previewTable(ctx, runId, items, null));
      }
    },
    apply: async () => {
      await post(url, body(false));
      toast(`Cleared ${taskId}${downstream.input.checked ? " and downstream" : ""}`);
      ctx.refreshRun(runId);
    },
  });
}

export function markTaskDialog(ctx, { runId, taskId, mapIndex, newState }) {
  const downstream = checkbox("mark-include-downstream", "Include downstream tasks", false);
  const upstream = checkbox("mark-include-upstream", "Include upstream tasks", false);
  const ti = p`/dags/${ctx.dagId}/dagRuns/${runId}/taskInstances/${taskId}` + (mapIndex !== undefined ? p`/${mapIndex}` : "");
  const body = () => ({ new_state: newState, include_downstream: downstream.input.checked, include_upstream: upstream.input.checked });
  const label = `Mark ${stateLabel(newState)}`;
  return changeDialog({
    title: `${label}: ${taskId}${mapIndex !== undefined ? ` [${mapIndex}]` : ""}`,
    testid: "mark-dialog",
    intro: `Sets the state of ${taskId} in run ${runId} to ${stateLabel(newState)} without running it.`,
    options: [downstream, upstream],
    confirmLabel: label,
    preview: async () => {
      try {
        const r = await patch(ti + "/dry_run", body());
        return previewTable(ctx, runId, (r.task_instances || []).filter((t) => t.state !== newState), newState);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status === 0) throw e;
        const items = localPreview(ctx, runId, taskId, { downstream: downstream.input.checked, upstream: upstream.input.checked, mapIndex })
          .filter((t) => t.state !== newState);
        return h("div", {}, errorBox(e), h("p", { class: "muted small" }, "Worked out in the browser:"), previewTable(ctx, runId, items, newState));
      }
    },
    apply: async () => {
      const r = await patch(ti, body());
      const n = r && Array.isArray(r.task_instances) ? r.task_instances.length : null;
      toast(`${taskId} marked ${stateLabel(newState)}${n !== null ? ` (${n} TaskInstance${n === 1 ? "" : "s"} changed)` : ""}`);
      ctx.refreshRun(runId);
    },
  });
}

export function clearRunDialog(ctx, runId) {
  const onlyFailed = checkbox("clear-only-failed", "Only failed (failed and upstream_failed)", false);
  const url = p`/dags/${ctx.dagId}/dagRuns/${runId}/clear`;
  return changeDialog({
    title: `Clear run ${runId}`,
    testid: "clear-run-dialog",
    intro: "Clearing a run resets its TaskInstances to no status and sets the run back to queued, so they run again.",
    options: [onlyFailed],
    confirmLabel: "Clear run",
    preview: async () => {
      try {
        const r = await post(url, { dry_run: true, only_failed: onlyFailed.input.checked });
        return previewTable(ctx, runId, (r && r.task_instances) || [], null);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status === 0) throw e;
        const items = (ctx.tis.get(runId) || []).filter((t) => !onlyFailed.input.checked || FAILED.has(t.state));
        return h("div", {}, errorBox(e), h("p", { class: "muted small" }, "Worked out in the browser:"), previewTable(ctx, runId, items, null));
      }
    },
    apply: async () => {
      await post(url, { dry_run: false, only_failed: onlyFailed.input.checked });
      toast(`Run ${runId} cleared`);
      ctx.refreshRun(runId);
    },
  });
}

export function markRunDialog(ctx, runId, state) {
  const url = p`/dags/${ctx.dagId}/dagRuns/${runId}`;
  return changeDialog({
    title: `Mark run ${stateLabel(state)}`,
    testid: "mark-run-dialog",
    intro: `Sets run ${runId} to ${stateLabel(state)}. Its TaskInstances that have not finished are set to ${state === "success" ? "success" : "failed (running) or skipped (not started)"} by the scheduler.`,
    options: [],
    confirmLabel: `Mark ${stateLabel(state)}`,
    danger: state === "failed",
    preview: async () => {
      const items = (ctx.tis.get(runId) || []).filter((t) => !isFinishedTi(t.state));
      return previewTable(ctx, runId, items, state, "(worked out in the browser)");
    },
    apply: async () => {
      await patch(url, { state });
      toast(`Run ${runId} marked ${stateLabel(state)}`);
      ctx.refreshRun(runId);
    },
  });
}

export async function deleteRunDialog(ctx, runId) {
  const ok = await confirmDialog(`Delete run ${runId}?`,
    "The run, its TaskInstances, their logs and XCom are deleted. This cannot be undone.",
    { confirmLabel: "Delete run", danger: true, testid: "delete-run-dialog" });
  if (!ok) return;
  try {
    await del(p`/dags/${ctx.dagId}/dagRuns/${runId}`);
    toast(`Run ${runId} deleted`);
    withParams({ run: null, task: null, map_index: null, try: null });
    ctx.refresh();
  } catch (e) {
    toast(`Could not delete run ${runId}: ${e.detail || e.message}`, "error");
  }
}
