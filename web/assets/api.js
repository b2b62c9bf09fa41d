// The REST API client for /api/v2 (Airflow 3's API, with Aileron's own
// resources beside it): JSON in and out, errors as ApiError. An error body is
// {"detail": "..."} (with "title" beside it), or for a request that does not
// validate a 422 whose "detail" lists {loc, msg}.

export const BASE = "/api/v2";

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

/** A tagged template that URL-encodes every interpolated value:
 *  p`/dags/${id}/dagRuns/${run}` is safe for any id. */
export function p(strings, ...values) {
  return strings.reduce((acc, str, i) => acc + str + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}

/** Builds `?a=1&b=2` from an object, skipping null/undefined values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

/** The CSRF token the sign-in left in a cookie: sent back with every change. */
function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)aileron_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export async function api(path, { method = "GET", body, signal } = {}) {
  let res;
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  try {
    res = await fetch(BASE + path, {
      method,
      signal,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(0, "Network error", "Cannot reach the Aileron server. Is it running?");
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (res.status === 401) {
    // Signed out (or the session expired): the app shows the sign-in page.
    window.dispatchEvent(new CustomEvent("aileron:signed-out"));
  }
  if (!res.ok) {
    const obj = data && typeof data === "object" ? data : {};
    throw new ApiError(res.status, obj.title || res.statusText || "Error", errorDetail(obj.detail) || (typeof data === "string" ? data : "") || res.statusText);
  }
  return data;
}

/** An error body's `detail` as one line: a validation error's list reads
 *  `field: message; …`. */
function errorDetail(detail) {
  if (!Array.isArray(detail)) return typeof detail === "string" ? detail : "";
  return detail.map((d) => {
    const loc = (d.loc || []).filter((part) => part !== "body" && part !== "query" && part !== "path").join(".");
    return loc ? `${loc}: ${d.msg}` : d.msg;
  }).join("; ");
}

export const get = (path, opts) => api(path, opts);
export const post = (path, body) => api(path, { method: "POST", body: body ?? {} });
export const patch = (path, body) => api(path, { method: "PATCH", body });
export const put = (path, body) => api(path, { method: "PUT", body });
export const del = (path) => api(path, { method: "DELETE" });

function cmpRuns(a, b) {
  const ta = Date.parse(a.logical_date) || 0;
  const tb = Date.parse(b.logical_date) || 0;
  if (ta !== tb) return ta - tb;
  return String(a.queued_at || "").localeCompare(String(b.queued_at || ""));
}

/** Sorts runs oldest first (Airflow's grid order: by logical date). */
export function sortRuns(runs) {
  return [...runs].sort(cmpRuns);
}

/** The latest `n` runs of a DAG, oldest first, and how many it has. */
export async function latestRuns(dagId, n) {
  const page = await get(p`/dags/${dagId}/dagRuns` + qs({ limit: n, order_by: "-logical_date" }));
  return { runs: sortRuns(page.dag_runs), total: page.total_entries ?? page.dag_runs.length };
}

/** All TaskInstances of one run (every page). */
export async function runTaskInstances(dagId, runId) {
  const out = [];
  for (let offset = 0; ; ) {
    const page = await get(p`/dags/${dagId}/dagRuns/${runId}/taskInstances` + qs({ limit: 1000, offset }));
    out.push(...page.task_instances);
    offset += page.task_instances.length;
    if (page.task_instances.length === 0 || offset >= (page.total_entries ?? offset)) break;
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
