// Shared view-model helpers: finished states, summaries of mapped tasks.

export const FINISHED_TI = new Set(["success", "failed", "skipped", "upstream_failed", "removed"]);
export const FINISHED_RUN = new Set(["success", "failed"]);

export const isFinishedTi = (state) => FINISHED_TI.has(state);
export const isFinishedRun = (state) => FINISHED_RUN.has(state);

// Which state a group of TaskInstances (a mapped task's instances) shows as: the
// most pressing one, as Airflow's grid does.
const PRIORITY = [
  "failed", "upstream_failed", "up_for_retry", "up_for_reschedule", "running", "deferred",
  "restarting", "queued", "scheduled", null, "success", "skipped", "removed",
];

function rank(state) {
  const i = PRIORITY.indexOf(state ?? null);
  return i < 0 ? PRIORITY.length : i;
}

/**
 * Summarises the TaskInstances of one task in one run.
 * @returns {{state: string|null, count: number, mapped: boolean, counts: Object<string, number>}|null}
 */
export function summarize(tis) {
  if (!tis || tis.length === 0) return null;
  const counts = {};
  let state = tis[0].state ?? null;
  for (const ti of tis) {
    const k = ti.state ?? "none";
    counts[k] = (counts[k] || 0) + 1;
    if (rank(ti.state ?? null) < rank(state)) state = ti.state ?? null;
  }
  const mapped = tis.some((t) => t.map_index >= 0);
  return { state, count: tis.length, mapped, counts };
}

/** `3 mapped: 2 success, 1 running`. */
export function describeCounts(summary) {
  return Object.entries(summary.counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} ${k.replaceAll("_", " ")}`)
    .join(", ");
}

/** TaskInstances of a run grouped by task id, each list ordered by map index. */
export function groupByTask(tis) {
  const out = new Map();
  for (const ti of tis || []) {
    if (!out.has(ti.task_id)) out.set(ti.task_id, []);
    out.get(ti.task_id).push(ti);
  }
  for (const list of out.values()) list.sort((a, b) => (a.map_index ?? -1) - (b.map_index ?? -1));
  return out;
}

/** Every task downstream (or upstream) of `taskId`, transitively. */
export function relatives(tasks, taskId, direction) {
  const key = direction === "up" ? "upstream_task_ids" : "downstream_task_ids";
  const byId = new Map(tasks.map((t) => [t.task_id, t]));
  const seen = new Set();
  const stack = [taskId];
  while (stack.length) {
    const t = byId.get(stack.pop());
    for (const n of (t && t[key]) || []) {
      if (!seen.has(n)) {
        seen.add(n);
        stack.push(n);
      }
    }
  }
  return seen;
}

/** The DAG version a DAG's details name as its latest, or a run ran:
 *  `{hash, number}` (the file's content hash and its number within the DAG);
 *  empty fields when the API names none. */
export function dagVersion(o) {
  const v = o && (o.latest_dag_version || (o.dag_versions || [])[0]);
  return { hash: (v && v.bundle_version) || "", number: v ? v.version_number : null };
}

/** Tasks as /dags/{id}/tasks lists them, each with `upstream_task_ids` too
 *  (the API names only the downstream side of each edge). */
export function withUpstream(tasks) {
  const up = new Map(tasks.map((t) => [t.task_id, []]));
  for (const t of tasks) for (const d of t.downstream_task_ids || []) if (up.has(d)) up.get(d).push(t.task_id);
  return tasks.map((t) => ({ ...t, upstream_task_ids: up.get(t.task_id) }));
}
