// The audit log (Airflow's `eventLogs`): every change asked of the API in the
// current tenant, made or refused, newest first, a page at a time. Platform admins
// can switch to the platform's own log (tenants, users, workers, refused calls
// that named no tenant). The scope and the page live in the URL:
// `#/audit?scope=platform&offset=50&limit=50`.

import { get, qs } from "./api.js";
import { h, replace, errorBox, loading, empty, time } from "./dom.js";
import { withParams } from "./router.js";
import { whoami, can } from "./session.js";
import { watch } from "./live.js";

const LIMITS = [25, 50, 100];
const DEFAULT_LIMIT = 50;

/** The request's details from the record's `extra` (JSON text). */
function extra(e) {
  try {
    const v = JSON.parse(e.extra || "{}");
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

/** What the answer was: `success` (2xx), `refused` (4xx) or `failed` (5xx). */
function outcome(status) {
  if (status >= 200 && status < 400) return "success";
  if (status >= 400 && status < 500) return "refused";
  return "failed";
}

const OUTCOME_CLASS = { success: "state-success", refused: "state-upstream_failed", failed: "state-failed" };

function params(route) {
  const scope = route.params.get("scope") === "platform" && can("platform") ? "platform" : "tenant";
  const limit = LIMITS.includes(Number(route.params.get("limit"))) ? Number(route.params.get("limit")) : DEFAULT_LIMIT;
  const offset = Math.max(0, Math.floor(Number(route.params.get("offset")) || 0));
  return { scope, limit, offset };
}

function row(e) {
  const x = extra(e);
  const status = Number(x.status) || 0;
  const result = outcome(status);
  const what = [e.dag_id && `DAG ${e.dag_id}`, e.run_id && `run ${e.run_id}`, e.task_id && `task ${e.task_id}`].filter(Boolean).join(" · ");
  return h("tr", {
    "data-testid": `audit-row-${e.event_log_id}`,
    "data-tenant": e.tenant || "",
    "data-owner": e.owner,
    "data-event": e.event,
    "data-outcome": result,
    "data-status": String(status),
  },
  h("td", {}, time(e.when)),
  h("td", { "data-testid": `audit-owner-${e.event_log_id}` }, e.owner),
  h("td", {}, h("code", { "data-testid": `audit-event-${e.event_log_id}` }, e.event), what ? h("div", { class: "muted small" }, what) : null),
  h("td", { class: "audit-path" }, h("code", { "data-testid": `audit-path-${e.event_log_id}` }, `${x.method || ""} ${x.path || ""}`.trim() || "—")),
  h("td", {}, h("span", { class: ["badge", OUTCOME_CLASS[result]], "data-testid": `audit-status-${e.event_log_id}`, "data-outcome": result, title: result },
    status ? `${status} ${result}` : result)),
  h("td", {}, x.source ? h("code", {}, x.source) : h("span", { class: "muted" }, "—")));
}

export function mount(root, route) {
  document.title = "Audit log · Aileron";
  const me = whoami() || {};
  const scopeLabel = h("span", { class: "muted", "data-testid": "audit-scope" });
  const tenantBtn = h("button", { type: "button", class: "seg", "data-testid": "audit-scope-tenant", onclick: () => withParams({ scope: null, offset: null }) }, `Tenant ${me.tenant || ""}`);
  const platformBtn = h("button", { type: "button", class: "seg", "data-testid": "audit-scope-platform", onclick: () => withParams({ scope: "platform", offset: null }) }, "Platform");
  const limitSel = h("select", {
    "data-testid": "audit-limit", "aria-label": "Events per page",
    onchange: () => withParams({ limit: limitSel.value === String(DEFAULT_LIMIT) ? null : limitSel.value, offset: null }),
  }, LIMITS.map((n) => h("option", { value: String(n) }, `${n} per page`)));
  const prev = h("button", { type: "button", class: "btn btn-small", "data-testid": "audit-prev", onclick: () => page(-1) }, "← Newer");
  const next = h("button", { type: "button", class: "btn btn-small", "data-testid": "audit-next", onclick: () => page(1) }, "Older →");
  const range = h("span", { class: "muted small", "data-testid": "audit-range", role: "status" });
  const body = h("div", {}, loading());
  root.append(h("section", { class: "page", "data-testid": "audit-page" },
    h("div", { class: "page-head" }, h("h1", {}, "Audit log"), scopeLabel),
    h("p", { class: "muted" }, "Every change asked of the API, made or refused, newest first."),
    h("div", { class: "toolbar" },
      can("platform") ? h("div", { class: "segmented", role: "group", "aria-label": "Which log" }, tenantBtn, platformBtn) : null,
      h("button", { type: "button", class: "btn btn-small", "data-testid": "audit-refresh", onclick: () => load() }, "Refresh"),
      h("span", { class: "spacer" }),
      range, prev, next, limitSel),
    body));

  let state = params(route);
  let total = 0;
  let seq = 0;

  function page(dir) {
    const offset = Math.max(0, state.offset + dir * state.limit);
    withParams({ offset: offset || null });
  }

  function paintControls() {
    const platform = state.scope === "platform";
    scopeLabel.textContent = platform ? "platform" : `tenant ${me.tenant || ""}`;
    tenantBtn.setAttribute("aria-pressed", String(!platform));
    platformBtn.setAttribute("aria-pressed", String(platform));
    limitSel.value = String(state.limit);
    prev.disabled = state.offset === 0;
  }

  async function load() {
    const mine = ++seq;
    paintControls();
    // Newest first: Airflow's /eventLogs asks for it; the platform's log
    // (Aileron's own) is always so.
    const path = state.scope === "platform"
      ? "/platform/eventLogs" + qs({ limit: state.limit, offset: state.offset })
      : "/eventLogs" + qs({ limit: state.limit, offset: state.offset, order_by: "-id" });
    try {
      const r = await get(path);
      if (mine !== seq) return;
      const events = r.event_logs || [];
      total = r.total_entries ?? events.length;
      range.dataset.total = String(total);
      range.textContent = events.length ? `${state.offset + 1}–${state.offset + events.length} of ${total}` : `0 of ${total}`;
      next.disabled = state.offset + events.length >= total;
      if (!events.length) {
        replace(body, empty(state.offset ? "No events on this page." : "No events yet.", { "data-testid": "empty-audit" }));
        return;
      }
      replace(body, h("div", { class: "table-wrap" }, h("table", { class: "table small", "data-testid": "audit-table", "data-scope": state.scope },
        h("thead", {}, h("tr", {}, ["When", "Who", "Event", "Request", "Outcome", "From"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, events.map(row)))));
    } catch (e) {
      if (mine !== seq) return;
      next.disabled = true;
      replace(body, errorBox(e));
    }
  }

  load();
  // The first page follows new events by the live view's safety refresh.
  watch({ dagId: null, refresh: () => (state.offset === 0 ? load() : null), onEvent() {} });
  return {
    update(r) {
      state = params(r);
      load();
    },
    destroy() {
      seq += 1;
    },
  };
}
