// Backfills of one DAG: the "Backfill" dialog (range, reprocess behaviour, max
// active runs, direction, conf, with a dry-run preview of every logical date that
// follows the fields as they change), and the Backfills tab listing the DAG's
// backfills with a progress bar each and their pause / unpause / cancel actions.

import { get, post, put, p, qs } from "./api.js";
import { h, replace, renderKeyed, modal, time, errorBox, toast, confirmDialog, debounce, stateLabel } from "./dom.js";
import { href, navigate } from "./router.js";
import { needs } from "./session.js";

/** How many backfills the tab lists (newest first). */
export const BACKFILL_PAGE = 50;

/** The DAG's backfills, newest first. */
export async function loadBackfills(dagId) {
  const r = await get("/backfills" + qs({ dag_id: dagId, order_by: "-id", limit: BACKFILL_PAGE }));
  return { backfills: r.backfills || [], total: r.total_entries ?? (r.backfills || []).length };
}

/** `running`, `paused` or `completed`. A cancelled backfill is completed too: the
 *  API does not tell it from one that finished while paused, so neither does this. */
export function backfillState(b) {
  if (b.completed_at) return "completed";
  return b.is_paused ? "paused" : "running";
}

const STATE_CLASS = {
  running: "state-running",
  paused: "badge-muted",
  completed: "state-success",
};

/** Runs finished (success or failed) and the total. */
export function backfillDone(b) {
  const s = b.runs_by_state || {};
  return { done: (s.success || 0) + (s.failed || 0), total: b.total_runs ?? (b.run_ids || []).length };
}

/** A stacked bar: success, failed, running, then what is still queued. */
export function progressBar(b, attrs = {}) {
  const s = b.runs_by_state || {};
  const { done, total } = backfillDone(b);
  const pct = (n) => `${total ? (100 * (n || 0)) / total : 0}%`;
  const parts = [["success", s.success], ["failed", s.failed], ["running", s.running], ["queued", s.queued]];
  const text = `${done} of ${total} runs done: ${parts.map(([k, n]) => `${n || 0} ${k}`).join(", ")}`;
  return h("div", {
    class: "progress",
    role: "progressbar",
    "aria-valuemin": "0",
    "aria-valuemax": String(total),
    "aria-valuenow": String(done),
    "aria-valuetext": text,
    title: text,
    ...attrs,
  }, parts.map(([k, n]) => (n ? h("span", { class: `progress-part state-${k}`, style: { width: pct(n) }, "data-part": k }) : null)));
}

/** The dialog: resolves with the created backfill, or undefined if cancelled. */
export function backfillDialog(ctx) {
  const dagId = ctx.dagId;
  const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
  return modal({
    title: `Backfill ${dagId}`,
    testid: "backfill-dialog",
    wide: true,
    build: (close) => {
      const fromEl = h("input", { type: "date", id: "backfill-from", "data-testid": "backfill-from", value: day(-7), required: true });
      const toEl = h("input", { type: "date", id: "backfill-to", "data-testid": "backfill-to", value: day(-1), required: true });
      const reprocessEl = h("select", { id: "backfill-reprocess", "data-testid": "backfill-reprocess" },
        h("option", { value: "none" }, "none: only dates without a run"),
        h("option", { value: "failed" }, "failed: also re-run failed runs"),
        h("option", { value: "completed" }, "completed: re-run every existing run"));
      const maxEl = h("input", { type: "number", id: "backfill-max-active-runs", "data-testid": "backfill-max-active-runs", min: "1", step: "1", value: "10", inputmode: "numeric" });
      const backwardsEl = h("input", { type: "checkbox", id: "backfill-run-backwards", "data-testid": "backfill-run-backwards" });
      const confEl = h("textarea", { id: "backfill-conf", "data-testid": "backfill-conf", rows: 3, class: "mono", spellcheck: "false", placeholder: "{}", "aria-describedby": "backfill-conf-error" });
      const confError = h("div", { id: "backfill-conf-error", class: "field-error", "data-testid": "backfill-conf-error", role: "alert" });
      const previewEl = h("div", { class: "preview-area", "data-testid": "backfill-preview", "aria-live": "polite" });
      const errorEl = h("div", { "data-testid": "backfill-error" });
      const confirm = h("button", { type: "button", class: "btn btn-primary", "data-testid": "confirm-button" }, "Start backfill");

      /** The request body, or an error message for the field at fault. */
      const body = () => {
        let conf = {};
        const text = confEl.value.trim();
        if (text) {
          try {
            conf = JSON.parse(text);
          } catch (e) {
            return { error: `conf is not valid JSON: ${e.message}`, field: confEl };
          }
          if (!conf || typeof conf !== "object" || Array.isArray(conf)) return { error: "conf must be a JSON object, like {\"key\": 1}.", field: confEl };
        }
        if (!fromEl.value || !toEl.value) return { error: "Choose the first and the last logical date." };
        const max = Number(maxEl.value);
        if (!Number.isInteger(max) || max < 1) return { error: "Max active runs must be a whole number of at least 1.", field: maxEl };
        return {
          value: {
            dag_id: dagId,
            from_date: fromEl.value,
            to_date: toEl.value,
            reprocess_behavior: reprocessEl.value,
            max_active_runs: max,
            run_backwards: backwardsEl.checked,
            dag_run_conf: conf,
          },
        };
      };

      const showFieldError = (b) => {
        const confBad = b.field === confEl;
        confEl.setAttribute("aria-invalid", String(confBad));
        confError.textContent = confBad ? b.error : "";
        maxEl.setAttribute("aria-invalid", String(b.field === maxEl));
      };

      let gen = 0;
      const refreshPreview = async () => {
        const mine = ++gen;
        const b = body();
        showFieldError(b);
        if (b.error) {
          confirm.disabled = true;
          replace(previewEl, h("p", { class: "field-error" }, b.error));
          return;
        }
        replace(previewEl, h("p", { class: "muted small", "aria-busy": "true" }, "Working out the dates…"));
        try {
          const plan = await post("/backfills/dry_run" + qs({ include_skipped: true }), b.value);
          if (mine !== gen) return;
          replace(previewEl, previewTable(plan.backfills || []));
          confirm.disabled = !(plan.backfills || []).some((d) => d.action !== "skip");
        } catch (e) {
          if (mine !== gen) return;
          replace(previewEl, errorBox(e));
          confirm.disabled = true;
        }
      };
      const refreshSoon = debounce(refreshPreview, 300);
      for (const el of [fromEl, toEl, reprocessEl, maxEl, backwardsEl, confEl]) {
        el.addEventListener(el.tagName === "SELECT" || el.type === "checkbox" || el.type === "date" ? "change" : "input", refreshSoon);
      }

      confirm.addEventListener("click", async () => {
        const b = body();
        showFieldError(b);
        if (b.error) return;
        confirm.disabled = true;
        replace(errorEl);
        try {
          const created = await post("/backfills", b.value);
          toast(`Backfill ${created.id} of ${dagId} started: ${created.total_runs} runs`);
          close(created);
        } catch (e) {
          replace(errorEl, errorBox(e));
          confirm.disabled = false;
        }
      });
      refreshPreview();

      const field = (label, input, note) => h("div", { class: "field" }, h("label", { for: input.id }, label), input, note ? h("div", { class: "muted small" }, note) : null);
      return h("div", { class: "form" },
        h("p", {}, "Creates one run per schedule interval whose logical date is in the range (both ends included). Dates are UTC; runs start oldest first, at most “max active runs” at a time, beside the normal schedule."),
        h("div", { class: "form-grid" },
          field("From (logical date)", fromEl),
          field("To (logical date, included)", toEl),
          field("Existing runs", reprocessEl, "What to do with dates that already have a run."),
          field("Max active runs", maxEl),
          h("div", { class: "field field-check" }, h("label", { class: "check", for: "backfill-run-backwards" }, backwardsEl, " Run backwards (newest date first)")),
          h("div", { class: "field field-wide" }, h("label", { for: "backfill-conf" }, "conf (JSON, optional)"), confEl, confError)),
        h("h3", {}, "Preview"),
        previewEl,
        errorEl,
        h("div", { class: "actions" },
          confirm,
          h("button", { type: "button", class: "btn", "data-testid": "cancel-button", onclick: () => close(undefined) }, "Cancel")));
    },
  });
}

const ACTION_LABEL = { create: "create", reprocess: "re-run", skip: "skip" };

function previewTable(dates) {
  if (!dates.length) return h("p", { class: "empty", "data-testid": "dry-run-empty" }, "No logical date in this range.");
  const count = (a) => dates.filter((d) => d.action === a).length;
  return h("div", {},
    h("p", { class: "small", "data-testid": "backfill-preview-summary" },
      `${dates.length} logical date${dates.length === 1 ? "" : "s"}: ${count("create")} to create, ${count("reprocess")} to re-run, ${count("skip")} skipped.`),
    h("div", { class: "table-wrap preview" }, h("table", { class: "table small", "data-testid": "backfill-preview-list" },
      h("thead", {}, h("tr", {}, ["Logical date", "Action", "Existing run", "Why"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, dates.map((d) => h("tr", { "data-testid": `backfill-date-${d.logical_date}`, "data-action": d.action },
        h("td", {}, time(d.logical_date)),
        h("td", {}, h("span", { class: `badge action-${d.action}` }, ACTION_LABEL[d.action] || d.action)),
        h("td", {}, d.run_id ? h("code", {}, d.run_id) : h("span", { class: "muted" }, "—")),
        h("td", {}, d.reason || "")))))));
}

async function act(ctx, b, action) {
  if (action === "cancel") {
    const ok = await confirmDialog(`Cancel backfill ${b.id}?`,
      "Its runs that have not started are marked failed; runs already running finish. A cancelled backfill cannot be resumed.",
      { confirmLabel: "Cancel backfill", danger: true, testid: "cancel-backfill-dialog" });
    if (!ok) return;
  }
  try {
    await put(p`/backfills/${b.id}/${action}`);
    toast(`Backfill ${b.id} ${action === "cancel" ? "cancelled" : `${action}d`}`);
  } catch (e) {
    toast(`Could not ${action} backfill ${b.id}: ${e.detail || e.message}`, "error");
  }
  ctx.refreshBackfills();
}

/** The Backfills tab. */
export function render(el, ctx) {
  const list = ctx.backfills;
  const key = JSON.stringify([list, ctx.backfillsTotal, ctx.backfillsError && ctx.backfillsError.detail]);
  renderKeyed(el, key, () => {
    if (ctx.backfillsError && !list.length) return errorBox(ctx.backfillsError);
    if (!list.length) {
      return h("p", { class: "empty", "data-testid": "empty-backfills" }, "No backfills of this DAG yet. ",
        needs("User", h("button", { type: "button", class: "btn-link", "data-testid": "start-backfill-link", onclick: () => ctx.openBackfill() }, "Start one")),
        " to run it over a range of past dates.");
    }
    return [
      ctx.backfillsTotal > list.length ? h("p", { class: "muted small" }, `The latest ${list.length} of ${ctx.backfillsTotal} backfills.`) : null,
      h("div", { class: "table-wrap" }, h("table", { class: "table", "data-testid": "backfill-table" },
        h("thead", {}, h("tr", {}, ["Id", "Logical dates", "Existing runs", "Max active", "Created", "Progress", "State", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, list.map((b) => row(ctx, b))))),
    ];
  });
}

function row(ctx, b) {
  const state = backfillState(b);
  const { done, total } = backfillDone(b);
  const s = b.runs_by_state || {};
  const active = !b.completed_at;
  const skipped = (b.skipped_dates || []).length;
  return h("tr", { "data-testid": `backfill-row-${b.id}`, "data-state": state },
    h("td", {}, String(b.id)),
    h("td", {}, time(b.from_date), " → ", time(b.to_date), b.run_backwards ? h("div", { class: "muted small" }, "newest first") : null,
      b.dag_run_conf && Object.keys(b.dag_run_conf).length ? h("div", { class: "small" }, "conf ", h("code", {}, JSON.stringify(b.dag_run_conf))) : null),
    h("td", {}, b.reprocess_behavior),
    h("td", {}, String(b.max_active_runs)),
    h("td", {}, time(b.created_at), b.completed_at ? h("div", { class: "muted small" }, "ended ", time(b.completed_at)) : null),
    h("td", { class: "progress-cell" },
      progressBar(b, { "data-testid": `backfill-progress-${b.id}` }),
      h("div", { class: "small" }, `${done}/${total} done`, s.failed ? h("span", { class: "error-text" }, ` · ${s.failed} failed`) : null,
        s.running ? ` · ${s.running} running` : null, skipped ? h("span", { class: "muted" }, ` · ${skipped} skipped`) : null),
      runsList(ctx, b)),
    h("td", {}, h("span", { class: ["badge", STATE_CLASS[state]], "data-testid": `backfill-state-${b.id}`, "data-state": state }, stateLabel(state))),
    h("td", { class: "col-actions" }, active ? h("div", { class: "btn-group", role: "group", "aria-label": `Backfill ${b.id} actions` },
      needs("User", b.is_paused
        ? h("button", { type: "button", class: "btn btn-small", "data-testid": `backfill-unpause-${b.id}`, onclick: () => act(ctx, b, "unpause") }, "Unpause")
        : h("button", { type: "button", class: "btn btn-small", "data-testid": `backfill-pause-${b.id}`, onclick: () => act(ctx, b, "pause") }, "Pause")),
      needs("User", h("button", { type: "button", class: "btn btn-small btn-danger-outline", "data-testid": `backfill-cancel-${b.id}`, onclick: () => act(ctx, b, "cancel") }, "Cancel"))) : null));
}

/** The backfill's runs as links to the grid (the first hundred). */
function runsList(ctx, b) {
  const ids = b.run_ids || [];
  if (!ids.length) return null;
  const shown = ids.slice(0, 100);
  return h("details", { class: "small" },
    h("summary", {}, `${ids.length} run${ids.length === 1 ? "" : "s"}`),
    h("ul", { class: "run-links" }, shown.map((id) => h("li", {},
      h("a", { href: href(["dags", ctx.dagId, "grid"], { run: id, panel: "run" }), "data-testid": `backfill-run-${id}` }, id))),
    ids.length > shown.length ? h("li", { class: "muted" }, `… and ${ids.length - shown.length} more`) : null));
}

/** After a backfill is created: show it in the Backfills tab. */
export function showBackfills(dagId) {
  navigate(["dags", dagId, "backfills"]);
}
