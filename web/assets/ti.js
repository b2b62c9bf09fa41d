// The TaskInstance panel: its state and times, actions (clear, mark success/failed/
// skipped), every try with its error and usage, the params, XCom, and the log of
// a try, tailed while the try runs by polling the log endpoint with the
// continuation token of its last answer.

import { get, p, qs, pool, ApiError } from "./api.js";
import { h, replace, renderKeyed, badge, time, fmtDuration, fmtBytes, span, shortDigest, json, empty, errorBox, stateLabel, stateKey } from "./dom.js";
import { withParams } from "./router.js";
import { isFinishedTi, summarize, describeCounts } from "./model.js";
import { clearTaskDialog, markTaskDialog } from "./actions.js";
import { needs, whoami } from "./session.js";

const TAIL_MS = 1000;
const WAIT_MS = 2000;

export class TiPanel {
  constructor(el, ctx, { runId, taskId, mapIndex, tryNumber, onClose }) {
    this.el = el;
    this.ctx = ctx;
    this.runId = runId;
    this.taskId = taskId;
    this.mapIndex = mapIndex;
    this.wantTry = tryNumber;
    this.onClose = onClose;
    this.task = ctx.taskMap.get(taskId) || null;
    this.ti = null;
    this.tries = [];
    this.xcom = null;
    // XCom entries with their values, by key: a value is read again only when
    // its entry's timestamp changes, so a refresh costs one list request.
    this.xcomValues = new Map();
    this.error = null;
    this.log = { try: null, token: null, text: "", running: false, gen: 0, timer: null, note: "" };
    this.alive = true;

    this.summaryEl = h("div", { "data-testid": "ti-summary" });
    this.mappedEl = h("div", {});
    this.actionsEl = h("div", { class: "btn-group", role: "group", "aria-label": "TaskInstance actions" });
    this.triesEl = h("div", {});
    this.paramsEl = h("div", {});
    this.xcomEl = h("div", {});
    this.logTabsEl = h("div", { class: "log-tabs", role: "group", "aria-label": "Log of try" });
    this.logStatusEl = h("span", { class: "muted small", "data-testid": "log-status", role: "status" });
    this.logEl = h("pre", { class: "log", "data-testid": "log-content", id: "log-content", tabindex: "0", "aria-label": "Log" });
    this.followEl = h("input", { type: "checkbox", checked: true, "data-testid": "log-follow", id: "log-follow" });

    const mi = mapIndex !== null && mapIndex !== undefined && mapIndex >= 0 ? ` [${mapIndex}]` : "";
    replace(el, h("div", { class: "panel", "data-testid": "ti-panel", "data-task": taskId, "data-run": runId },
      h("div", { class: "panel-head" },
        h("h2", {}, h("code", {}, taskId + mi)),
        h("button", { type: "button", class: "btn btn-icon", "data-testid": "panel-close", "aria-label": "Close task details (Escape)", onclick: () => onClose() }, "✕")),
      h("p", { class: "muted small" }, "Run ", h("code", {}, runId)),
      this.mappedEl,
      this.summaryEl,
      this.actionsEl,
      h("section", {}, h("h3", {}, "Log"),
        h("div", { class: "log-bar" }, this.logTabsEl, h("span", { class: "spacer" }),
          h("label", { class: "inline small" }, this.followEl, " Follow"), this.logStatusEl),
        this.logEl),
      h("section", {}, h("h3", {}, "Tries"), this.triesEl),
      h("section", {}, h("h3", {}, "XCom"), this.xcomEl),
      h("section", {}, h("h3", {}, "Params"), this.paramsEl)));

    this.renderMapped();
    this.renderParams();
    this.refresh();
  }

  get apiMapIndex() {
    return this.mapIndex !== null && this.mapIndex !== undefined && this.mapIndex >= 0 ? this.mapIndex : undefined;
  }

  /** A mapped task with no map index chosen shows its instances to pick from. */
  get choosing() {
    if (!this.task || !this.task.is_mapped || this.apiMapIndex !== undefined) return false;
    const list = (this.ctx.tis.get(this.runId) || []).filter((t) => t.task_id === this.taskId);
    return list.some((t) => t.map_index >= 0);
  }

  /** The TaskInstance's own path: a mapped instance's ends in its map index. */
  tiPath(suffix = "") {
    const mi = this.apiMapIndex;
    return this.taskPath() + (mi !== undefined ? p`/${mi}` : "") + suffix;
  }

  /** The task's path in the run, under which XCom and logs take `map_index`. */
  taskPath(suffix = "") {
    return p`/dags/${this.ctx.dagId}/dagRuns/${this.runId}/taskInstances/${this.taskId}` + suffix;
  }

  update({ tryNumber }) {
    this.renderMapped();
    if (tryNumber !== this.wantTry) {
      this.wantTry = tryNumber;
      this.renderTries();
      this.startLog();
    }
  }

  async refresh() {
    if (!this.alive) return;
    this.renderMapped();
    if (this.choosing) {
      replace(this.summaryEl, empty("This task is mapped: pick one of its instances above."));
      renderKeyed(this.actionsEl, "choosing", () => this.actionButtons());
      replace(this.triesEl);
      replace(this.xcomEl);
      replace(this.logTabsEl);
      this.logEl.textContent = "";
      this.logStatusEl.textContent = "";
      return;
    }
    try {
      const [ti, xcom, tries] = await Promise.all([
        get(this.tiPath()),
        this.fetchXcom().catch((e) => ({ error: e })),
        this.fetchTries(),
      ]);
      if (!this.alive) return;
      const prevTry = this.ti ? this.ti.try_number : null;
      this.ti = ti;
      this.xcom = xcom;
      this.error = null;
      this.tries = tries;
      // A scheduled TaskInstance may wait because its tenant's CPU budget is spent.
      this.heldBack = ti.state === "scheduled" ? await this.heldBackReason() : null;
      if (!this.alive) return;
      const latest = Math.max(1, ti.try_number || 0);
      const followingLatest = this.wantTry === null || this.wantTry === undefined;
      if (this.log.try === null || (followingLatest && latest !== this.log.try) || (prevTry !== ti.try_number && this.log.try === latest)) {
        this.startLog();
      } else if (!this.log.timer && !isFinishedTi(ti.state) && this.log.try === latest) {
        this.pollLog();
      }
    } catch (e) {
      if (!this.alive) return;
      this.error = e;
    }
    this.renderSummary();
    this.renderTries();
    this.renderXcom();
  }

  async heldBackReason() {
    const tenant = (whoami() || {}).tenant;
    if (!tenant) return null;
    try {
      return (await get(p`/tenants/${tenant}/usage`)).held_back_reason || null;
    } catch {
      return null;
    }
  }

  async fetchTries() {
    try {
      return (await get(this.tiPath("/tries"))).task_instances || [];
    } catch {
      return [];
    }
  }

  /** The TaskInstance's XCom entries with their values (the list names the
   *  keys; each value is read on its own, as Airflow's API has it, and only
   *  when it is new or changed). */
  async fetchXcom() {
    const q = qs({ map_index: this.apiMapIndex });
    const list = await get(this.taskPath("/xcomEntries" + q));
    const entries = await pool(list.xcom_entries || [], 4, async (e) => {
      const known = this.xcomValues.get(e.key);
      if (known && known.timestamp === e.timestamp) return known;
      const full = await get(this.taskPath(p`/xcomEntries/${e.key}` + q)).catch(() => null);
      if (full) this.xcomValues.set(e.key, full);
      return full || e;
    });
    return { xcom_entries: entries };
  }

  renderMapped() {
    if (!this.task || !this.task.is_mapped) {
      replace(this.mappedEl);
      return;
    }
    const list = (this.ctx.tis.get(this.runId) || []).filter((t) => t.task_id === this.taskId && t.map_index >= 0);
    if (!list.length) {
      replace(this.mappedEl, h("p", { class: "muted small" }, "Mapped task: not expanded yet in this run."));
      return;
    }
    const sum = summarize(list);
    renderKeyed(this.mappedEl, JSON.stringify([this.apiMapIndex, list.map((t) => [t.map_index, t.state])]), () => h("div", { class: "mapped-list", "data-testid": "mapped-instances" },
      h("p", { class: "small" }, `${sum.count} mapped instances: ${describeCounts(sum)}`),
      h("div", { class: "chips" }, list.map((t) => h("button", {
        type: "button",
        class: ["chip", `state-${stateKey(t.state)}`],
        "data-testid": `map-index-${t.map_index}`,
        "aria-pressed": String(t.map_index === this.apiMapIndex),
        "aria-label": `Instance ${t.map_index}: ${stateLabel(t.state)}`,
        title: stateLabel(t.state),
        onclick: () => withParams({ map_index: t.map_index, try: null }),
      }, String(t.map_index))))));
  }

  renderSummary() {
    if (this.error) {
      renderKeyed(this.summaryEl, `error:${this.error.status}:${this.error.detail || this.error.message}`, () => errorBox(this.error));
      renderKeyed(this.actionsEl, "", () => []);
      return;
    }
    const ti = this.ti;
    if (!ti) {
      replace(this.summaryEl, h("p", { class: "empty" }, "Loading…"));
      return;
    }
    const t = this.task || {};
    const rows = [
      ["State", badge(ti.state, { "data-testid": "ti-state", "data-state": ti.state ?? "none" })],
      // max_tries counts retries, as in Airflow: one more try than that may run.
      ["Try", `${ti.try_number || 0}${ti.max_tries != null ? ` of at most ${ti.max_tries + 1}` : ""}`],
      ["Operator", h("a", { href: `#/plugins?name=${encodeURIComponent(t.operator_name || ti.operator || "")}` }, ti.operator || t.operator || "—")],
      ["Plugin digest", shortDigest(ti.plugin_digest || t.plugin_digest)],
      ["Queued", time(ti.queued_when)],
      ["Started", time(ti.start_date)],
      ["Ended", time(ti.end_date)],
      ["Duration", fmtDuration(ti.duration ?? span(ti.start_date, ti.end_date))],
      ["Host / worker", ti.hostname ? h("code", { "data-testid": "ti-hostname" }, ti.hostname) : "—"],
      ti.next_try_at ? ["Next try at", time(ti.next_try_at)] : null,
      ["Trigger rule", t.trigger_rule || "—"],
      ["Upstream", (t.upstream_task_ids || []).join(", ") || "—"],
    ].filter(Boolean);
    const lastError = [...(this.tries || [])].reverse().find((r) => r.error && r.try_number === ti.try_number);
    renderKeyed(this.summaryEl, JSON.stringify([ti, lastError ? lastError.error : null, this.heldBack]), () => [
      h("dl", { class: "kv-grid" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      this.heldBack ? h("div", { class: "alert alert-warn", "data-testid": "ti-held-back" }, this.heldBack) : null,
      lastError ? h("div", { class: "alert alert-error", "data-testid": "ti-error" }, h("strong", {}, `Try ${lastError.try_number} failed: `), lastError.error) : null,
      ti.state === "removed"
        ? h("div", { class: "alert alert-warn", "data-testid": "ti-removed-note" },
          "This task is not in the DAG version the run now uses (the run was cleared after the DAG changed), so it will not run again.")
        : null,
    ]);
    renderKeyed(this.actionsEl, `${ti.state}`, () => this.actionButtons());
  }

  actionButtons() {
    const state = this.ti ? this.ti.state : null;
    const target = { runId: this.runId, taskId: this.taskId, mapIndex: this.apiMapIndex };
    const after = () => this.refresh();
    const mark = (newState, label, testid) => needs("User", h("button", {
      type: "button", class: "btn btn-small", "data-testid": testid, disabled: state === newState && !this.choosing,
      onclick: () => markTaskDialog(this.ctx, { ...target, newState }).then(after),
    }, label));
    return [
      needs("User", h("button", { type: "button", class: "btn btn-small btn-primary", "data-testid": "clear-button", onclick: () => clearTaskDialog(this.ctx, target).then(after) }, "Clear")),
      mark("success", "Mark success", "mark-success-button"),
      mark("failed", "Mark failed", "mark-failed-button"),
      mark("skipped", "Mark skipped", "mark-skipped-button"),
    ];
  }

  /** Every try: the finished ones from the API, plus the current one if it is
   *  still going. */
  allTries() {
    const ti = this.ti;
    const rows = [...(this.tries || [])].sort((a, b) => a.try_number - b.try_number);
    if (ti && ti.try_number >= 1 && !rows.some((r) => r.try_number === ti.try_number)) {
      rows.push({
        try_number: ti.try_number, state: ti.state, start_date: ti.start_date, end_date: ti.end_date,
        duration: ti.duration, plugin_digest: ti.plugin_digest, hostname: ti.hostname, error: null, current: true,
      });
    }
    return rows;
  }

  renderTries() {
    if (!this.ti) {
      replace(this.triesEl);
      return;
    }
    const rows = this.allTries();
    if (!rows.length) {
      replace(this.triesEl, empty("No tries yet: the task has not started in this run."));
      return;
    }
    renderKeyed(this.triesEl, JSON.stringify([rows, this.log.try]), () => h("div", { class: "table-wrap" }, h("table", { class: "table small", "data-testid": "ti-tries" },
      h("thead", {}, h("tr", {}, ["Try", "State", "Started", "Ended", "Duration", "CPU / peak memory", "Host / worker", "Operator", "Digest", "Error", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-testid": `try-row-${r.try_number}`, class: r.try_number === this.log.try ? "selected-row" : "" },
        h("td", {}, String(r.try_number)),
        h("td", {}, badge(r.state)),
        h("td", {}, time(r.start_date)),
        h("td", {}, time(r.end_date)),
        h("td", {}, fmtDuration(r.duration ?? span(r.start_date, r.end_date))),
        h("td", { "data-testid": `try-usage-${r.try_number}`, title: r.cpu_seconds == null ? "" : `guest CPU metered in the sandbox; ${(r.host_call_seconds || 0).toFixed(2)} s waiting on host calls` },
          r.cpu_seconds == null ? h("span", { class: "muted" }, "—") : `${r.cpu_seconds.toFixed(2)} s / ${fmtBytes(r.peak_memory_bytes)}`),
        h("td", {}, r.hostname ? h("code", { "data-testid": `try-hostname-${r.try_number}` }, r.hostname) : h("span", { class: "muted" }, "—")),
        h("td", {}, r.operator || this.ti.operator || "—"),
        h("td", {}, shortDigest(r.plugin_digest)),
        h("td", { class: "error-cell" }, r.error ? h("span", { class: "error-text" }, typeof r.error === "string" ? r.error : JSON.stringify(r.error)) : h("span", { class: "muted" }, "—")),
        h("td", {}, h("button", { type: "button", class: "btn btn-small btn-link", "data-testid": `try-log-${r.try_number}`, onclick: () => withParams({ try: r.try_number }) }, "Log"))))))));
  }

  renderParams() {
    const t = this.task;
    // Empty until the first try renders them.
    const fields = this.ti && this.ti.rendered_fields;
    const rendered = fields && Object.keys(fields).length ? fields : null;
    replace(this.paramsEl,
      rendered ? [h("h4", {}, "Rendered"), json(rendered)] : null,
      t && t.params && Object.keys(t.params).length
        ? [h("h4", {}, rendered ? "As written in the DAG file" : "As written in the DAG file (templates render when the try runs; see the log)"), json(t.params)]
        : empty("This task has no params."));
  }

  renderXcom() {
    const x = this.xcom;
    if (!x) {
      replace(this.xcomEl);
      return;
    }
    if (x.error) {
      replace(this.xcomEl, errorBox(x.error));
      return;
    }
    const entries = x.xcom_entries || [];
    renderKeyed(this.xcomEl, JSON.stringify(entries), () => entries.length
      ? h("table", { class: "table small", "data-testid": "ti-xcom" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Value"))),
        h("tbody", {}, entries.map((e) => h("tr", { "data-testid": `xcom-${e.key}` },
          h("td", {}, h("code", {}, e.key)),
          h("td", {}, typeof e.value === "string" ? h("pre", { class: "json" }, e.value) : json(e.value))))))
      : empty("No XCom entries.", { "data-testid": "ti-xcom-empty" }));
    this.renderParams();
  }

  // ---- the log -----------------------------------------------------------

  latestTry() {
    return Math.max(1, (this.ti && this.ti.try_number) || 0);
  }

  startLog() {
    clearTimeout(this.log.timer);
    this.log = { try: null, token: null, text: "", running: false, gen: this.log.gen + 1, timer: null, note: "" };
    this.logEl.textContent = "";
    if (!this.ti) return;
    const latest = this.latestTry();
    const want = this.wantTry && this.wantTry >= 1 && this.wantTry <= latest ? this.wantTry : latest;
    this.log.try = want;
    replace(this.logTabsEl, Array.from({ length: latest }, (_, i) => i + 1).map((n) => h("button", {
      type: "button", class: "btn btn-small seg", "data-testid": `log-try-${n}`, "aria-pressed": String(n === want),
      onclick: () => withParams({ try: n === latest ? null : n }),
    }, `Try ${n}`)));
    this.renderTries();
    this.pollLog();
  }

  async pollLog() {
    clearTimeout(this.log.timer);
    this.log.timer = null;
    const gen = this.log.gen;
    const ti = this.ti;
    const tryN = this.log.try;
    if (!ti || tryN === null || !this.alive) return;
    const isLatest = tryN === this.latestTry();
    const notStarted = (ti.try_number || 0) < 1;
    let running = false;
    if (notStarted) {
      this.setLogStatus(isFinishedTi(ti.state) ? `No log: the task ended as ${stateLabel(ti.state)} without running.` : "No log yet: the task has not started.");
    } else {
      try {
        const res = await get(this.taskPath(p`/logs/${tryN}` + qs({ map_index: this.apiMapIndex, token: this.log.token })));
        if (gen !== this.log.gen || !this.alive) return;
        // The token is how far the log has been read; a smaller one means the
        // log was replaced (the try restarted): read it again from the top.
        if (this.log.token !== null && Number(res.continuation_token) < Number(this.log.token)) {
          this.log.token = null;
          this.log.text = "";
          this.logEl.textContent = "";
          this.log.timer = setTimeout(() => this.pollLog(), 0);
          return;
        }
        this.appendLog(logText(res.content || []));
        if (res.continuation_token) this.log.token = res.continuation_token;
        running = isLatest && ti.state === "running";
        this.log.running = running;
        if (running) this.setLogStatus("Running: following the log…");
        else if (!this.log.text) this.setLogStatus(isLatest && !isFinishedTi(ti.state) ? "Waiting for the log…" : "This try wrote no log.");
        else this.setLogStatus(isLatest && !isFinishedTi(ti.state) ? "Waiting for the try to start…" : "Complete.");
      } catch (e) {
        if (gen !== this.log.gen || !this.alive) return;
        if (e instanceof ApiError && e.status === 404) this.setLogStatus("No log for this try yet.");
        else this.setLogStatus(`Could not read the log: ${e.detail || e.message}`);
      }
    }
    if (gen !== this.log.gen || !this.alive) return;
    this.logEl.dataset.running = String(running);
    // Keep reading while the try runs, and wait for the latest try to start.
    if (running || (isLatest && !isFinishedTi(ti.state))) {
      this.log.timer = setTimeout(() => this.pollLog(), running ? TAIL_MS : WAIT_MS);
    }
  }

  appendLog(chunk) {
    if (!chunk) {
      if (!this.log.text && !this.logEl.textContent) this.logEl.textContent = "";
      return;
    }
    const atBottom = this.logEl.scrollHeight - this.logEl.scrollTop - this.logEl.clientHeight < 24;
    this.log.text += chunk;
    this.logEl.append(document.createTextNode(chunk));
    if (this.followEl.checked || atBottom) this.logEl.scrollTop = this.logEl.scrollHeight;
  }

  setLogStatus(text) {
    this.logStatusEl.textContent = text;
  }

  destroy() {
    this.alive = false;
    clearTimeout(this.log.timer);
  }
}

/** A log's structured entries as the lines the try wrote:
 *  `[timestamp] LEVEL message`. */
function logText(entries) {
  return entries.map((e) => (e.timestamp ? `[${e.timestamp}] ${String(e.level || "").toUpperCase()} ${e.event}` : e.event) + "\n").join("");
}
