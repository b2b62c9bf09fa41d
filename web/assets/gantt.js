// The Gantt chart of the selected run: one row per TaskInstance, a grey span while
// it was queued (queued_when → start_date) and a span in its state's colour while
// it ran (start_date → end_date). Spans still open grow until now.

import { h, replace, fmtTime, fmtDuration, span, stateLabel, stateKey, empty } from "./dom.js";
import { withParams, href } from "./router.js";

const TICKS = 6;

export function render(el, ctx) {
  const run = ctx.selectedRun();
  if (!run) {
    replace(el, h("p", { class: "empty", "data-testid": "empty-runs" }, "No runs yet. ",
      h("a", { href: href(["dags", ctx.dagId, "trigger"]) }, "Trigger one"), " to see its timeline."));
    return;
  }
  const tis = ctx.tis.get(run.dag_run_id);
  if (!tis) {
    replace(el, h("p", { class: "empty", "aria-busy": "true" }, "Loading…"));
    return;
  }
  const order = new Map(ctx.order.map((id, i) => [id, i]));
  const rows = [...tis].sort((a, b) =>
    (order.get(a.task_id) ?? 1e9) - (order.get(b.task_id) ?? 1e9) || (a.map_index ?? -1) - (b.map_index ?? -1));
  const now = Date.now();
  const ms = (t) => (t ? new Date(t).getTime() : null);
  const times = [];
  for (const ti of rows) {
    for (const t of [ti.queued_when, ti.start_date, ti.end_date]) if (t) times.push(ms(t));
    if (!ti.end_date && (ti.start_date || ti.queued_when)) times.push(now);
  }
  if (run.start_date) times.push(ms(run.start_date));
  if (!times.length) {
    replace(el, empty(`Run ${run.dag_run_id} has not started any task yet.`, { "data-testid": "gantt-empty" }));
    return;
  }
  const t0 = Math.min(...times);
  const t1 = Math.max(t0 + 1, ...times);
  const pct = (t) => `${(((t - t0) / (t1 - t0)) * 100).toFixed(3)}%`;
  const width = (a, b) => `${Math.max(0.15, ((b - a) / (t1 - t0)) * 100).toFixed(3)}%`;

  const ticks = Array.from({ length: TICKS + 1 }, (_, i) => {
    const t = t0 + ((t1 - t0) * i) / TICKS;
    return h("span", { class: "tick", style: { left: pct(t) } }, i === 0 ? "0" : `+${fmtDuration((t - t0) / 1000)}`);
  });

  let open = false;
  const body = rows.map((ti) => {
    const q = ms(ti.queued_when);
    const st = ms(ti.start_date);
    const en = ms(ti.end_date) ?? (st ? now : null);
    if ((st && !ti.end_date) || (q && !st && !ti.end_date)) open = true;
    const label = ti.map_index >= 0 ? `${ti.task_id} [${ti.map_index}]` : ti.task_id;
    const testid = ti.map_index >= 0 ? `gantt-row-${ti.task_id}-${ti.map_index}` : `gantt-row-${ti.task_id}`;
    const desc = `${label}: ${stateLabel(ti.state)}; queued ${fmtTime(ti.queued_when)}, started ${fmtTime(ti.start_date)}, ended ${fmtTime(ti.end_date)}, ran ${fmtDuration(span(ti.start_date, ti.end_date))}`;
    const bars = [];
    if (q && (st || !ti.end_date)) {
      const qEnd = st ?? now;
      bars.push(h("span", { class: "gantt-queued", style: { left: pct(q), width: width(q, qEnd) }, title: `queued ${fmtDuration((qEnd - q) / 1000)}` }));
    }
    if (st) {
      bars.push(h("span", { class: `gantt-bar state-${stateKey(ti.state)}`, style: { left: pct(st), width: width(st, en) }, title: desc }));
    }
    return h("div", { class: "gantt-row", "data-state": ti.state ?? "none" },
      h("button", {
        type: "button", class: "gantt-label", "data-testid": testid, title: desc, "aria-label": desc,
        onclick: () => withParams({ run: run.dag_run_id, task: ti.task_id, map_index: ti.map_index >= 0 ? ti.map_index : null, try: null }),
      }, h("span", { class: `dot state-${stateKey(ti.state)}`, "aria-hidden": "true" }), label),
      h("div", { class: "gantt-track", "aria-hidden": "true" }, bars),
      h("span", { class: "gantt-dur muted small" }, fmtDuration(span(ti.start_date, ti.end_date))));
  });

  replace(el,
    h("p", { class: "muted small" }, `Run ${run.dag_run_id}: `, fmtTime(new Date(t0).toISOString()), ` → `, fmtTime(new Date(t1).toISOString()),
      ` (${fmtDuration((t1 - t0) / 1000)}). Grey: queued; coloured: running, in the state it ended with.`),
    h("div", { class: "gantt", "data-testid": "gantt" },
      h("div", { class: "gantt-row gantt-axis", "aria-hidden": "true" }, h("span", {}), h("div", { class: "gantt-track" }, ticks), h("span", {})),
      body));

  // Open spans grow until they close: redraw every second while any is open.
  clearTimeout(el._ganttTimer);
  if (open) {
    el._ganttTimer = setTimeout(() => {
      if (el.isConnected && el.dataset.tab === "gantt") render(el, ctx);
    }, 1000);
  }
}
