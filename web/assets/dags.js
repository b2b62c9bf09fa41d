// The DAGs page: every DAG with its owner, tags, schedule, next run, latest runs as
// coloured dots, a paused toggle, a favorite star and a trigger button; search and
// filters kept in the URL; import errors on top.

import { get, patch, p, qs, latestRuns, sortRuns } from "./api.js";
import { favoriteStar } from "./favorite.js";
import { h, replace, renderKeyed, dot, time, errorBox, empty, loading, toast, debounce, stateLabel } from "./dom.js";
import { href, withParams } from "./router.js";
import { watch } from "./live.js";
import { can, needs, deniedReason } from "./session.js";

const RECENT = 10;

export function mount(root, route) {
  document.title = "DAGs · Aileron";
  const state = { dags: null, runs: new Map(), errors: [], loadError: null };

  const search = h("input", {
    type: "search", id: "dag-search", "data-testid": "dag-search", placeholder: "Search DAGs…",
    "aria-label": "Search DAGs by id", autocomplete: "off",
    oninput: () => withParams({ search: search.value }, { replace: true }),
  });
  const statusButtons = ["all", "active", "paused", "favorites"].map((k) =>
    h("button", {
      type: "button", class: "seg", "data-testid": `filter-${k}`, "data-filter": k,
      onclick: () => withParams({ status: k === "all" ? null : k }, { replace: true }),
    }, k[0].toUpperCase() + k.slice(1)));
  const tagSelect = h("select", {
    "data-testid": "tag-filter", "aria-label": "Filter by tag",
    onchange: () => withParams({ tag: tagSelect.value }, { replace: true }),
  });
  const errorsBox = h("div", { "data-testid": "import-errors-area" });
  const countEl = h("span", { class: "muted", "data-testid": "dag-count" });
  const tbody = h("tbody", { "data-testid": "dag-list" });
  const table = h("table", { class: "table dags-table" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "col-toggle" }, h("span", { class: "sr-only" }, "Active")),
      h("th", { scope: "col" }, "DAG"),
      h("th", { scope: "col" }, "Owner"),
      h("th", { scope: "col" }, "Schedule"),
      h("th", { scope: "col" }, "Next run"),
      h("th", { scope: "col" }, "Recent runs"),
      h("th", { scope: "col" }, "Last run"),
      h("th", { scope: "col", class: "col-actions" }, h("span", { class: "sr-only" }, "Actions")))),
    tbody);
  const status = h("div", {});

  root.append(h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, "DAGs"), countEl),
    errorsBox,
    h("div", { class: "toolbar", role: "search" },
      search,
      h("div", { class: "segmented", role: "group", "aria-label": "Show" }, statusButtons),
      tagSelect),
    status,
    h("div", { class: "table-wrap" }, table)));

  let filters = {};
  function readFilters(r) {
    filters = {
      search: r.params.get("search") || "",
      status: r.params.get("status") || "all",
      tag: r.params.get("tag") || "",
    };
    if (document.activeElement !== search) search.value = filters.search;
    for (const b of statusButtons) b.setAttribute("aria-pressed", String(b.dataset.filter === filters.status));
  }

  function renderErrors() {
    if (!state.errors.length) {
      replace(errorsBox);
      return;
    }
    replace(errorsBox, h("div", { class: "alert alert-error", role: "alert", "data-testid": "import-errors" },
      h("details", { open: state.errors.length <= 3 },
        h("summary", {}, h("strong", {}, `${state.errors.length} DAG import error${state.errors.length === 1 ? "" : "s"}`),
          " — these files are not loaded; the other DAGs keep running."),
        state.errors.map((e) => h("div", { class: "import-error", "data-testid": `import-error-${e.filename}` },
          h("div", {}, h("code", {}, e.filename), " ", h("span", { class: "muted" }, "at "), time(e.timestamp)),
          h("pre", { class: "log" }, e.stack_trace || e.message))))));
  }

  function renderTags() {
    const tags = [...new Set((state.dags || []).flatMap((d) => (d.tags || []).map((t) => t.name)))].sort();
    replace(tagSelect, h("option", { value: "" }, "All tags"), tags.map((t) => h("option", { value: t }, t)));
    tagSelect.value = tags.includes(filters.tag) ? filters.tag : "";
  }

  function visible() {
    const q = filters.search.toLowerCase();
    return (state.dags || []).filter((d) =>
      (!q || d.dag_id.toLowerCase().includes(q) || (d.description || "").toLowerCase().includes(q)) &&
      (filters.status === "all" || (filters.status === "favorites" ? d.is_favorite : (filters.status === "paused") === d.is_paused)) &&
      (!filters.tag || (d.tags || []).some((t) => t.name === filters.tag)));
  }

  // One persistent <tr> per DAG: live updates re-render only the cells whose
  // content changed, so the toggle and buttons a user is about to click stay put.
  const rowCache = new Map();

  function row(d) {
    let r = rowCache.get(d.dag_id);
    if (!r) {
      const toggle = needs("User", h("input", {
        type: "checkbox", role: "switch", class: "switch",
        "data-testid": `pause-toggle-${d.dag_id}`, id: `pause-${d.dag_id}`,
        onchange: () => togglePause(r.dag, toggle),
      }));
      r = { dag: d, toggle, cells: Array.from({ length: 6 }, () => h("td", {})), tr: null };
      r.tr = h("tr", { "data-testid": `dag-row-${d.dag_id}` },
        h("td", { class: "col-toggle" }, toggle),
        r.cells,
        h("td", { class: "col-actions" },
          needs("User", h("a", {
            class: "btn btn-small", href: href(["dags", d.dag_id, "trigger"]),
            "data-testid": `trigger-button-${d.dag_id}`, "aria-label": `Trigger ${d.dag_id}`, title: "Trigger a run",
          }, "▶ Trigger"))));
      rowCache.set(d.dag_id, r);
    }
    r.dag = d;
    paintRow(r, d);
    return r.tr;
  }

  function paintRow(r, d) {
    const runs = state.runs.get(d.dag_id);
    const last = runs && runs.length ? runs[runs.length - 1] : null;
    r.tr.className = d.is_paused ? "is-paused" : "";
    const mayToggle = can("User");
    // A toggle disabled while its change is on its way keeps what the user set.
    if (!r.toggle.disabled || !mayToggle) r.toggle.checked = !d.is_paused;
    r.toggle.setAttribute("aria-label", `${d.dag_id}: ${d.is_paused ? "paused" : "active"}${mayToggle ? ` (toggle to ${d.is_paused ? "unpause" : "pause"})` : ""}`);
    r.toggle.title = mayToggle ? (d.is_paused ? "Paused: click to unpause" : "Active: click to pause") : `${d.is_paused ? "Paused" : "Active"}. ${deniedReason("User")}`;
    const [dagTd, ownerTd, schedTd, nextTd, runsTd, lastTd] = r.cells;
    renderKeyed(dagTd, JSON.stringify([d.dag_display_name, d.description, d.tags, d.has_import_errors, d.is_favorite]), () => [
      favoriteStar(d, (fav) => {
        // The list may have been read again meanwhile: mark its copy too.
        for (const x of state.dags || []) if (x.dag_id === d.dag_id) x.is_favorite = fav;
        renderRows();
      }),
      h("a", { class: "dag-link", href: href(["dags", d.dag_id, "grid"]), "data-testid": `dag-link-${d.dag_id}` }, d.dag_display_name || d.dag_id),
      d.has_import_errors ? h("span", { class: "badge state-failed", title: "Its file currently fails to import; the last good version is shown" }, "import error") : null,
      d.description ? h("div", { class: "muted small" }, d.description) : null,
      (d.tags || []).length ? h("div", { class: "tags" }, d.tags.map((t) =>
        h("button", { type: "button", class: "tag", "data-testid": `tag-${t.name}`, title: `Show DAGs tagged ${t.name}`, onclick: () => withParams({ tag: t.name }, { replace: true }) }, t.name))) : null,
    ]);
    renderKeyed(ownerTd, JSON.stringify(d.owners), () => (d.owners || []).join(", ") || h("span", { class: "muted" }, "—"));
    renderKeyed(schedTd, JSON.stringify([d.timetable_summary, d.timetable_description]), () => (d.timetable_summary
      ? h("code", { title: d.timetable_description || "" }, d.timetable_summary)
      : h("span", { class: "muted", title: d.timetable_description || "" }, "None")));
    const next = d.next_dagrun_logical_date ?? d.next_dagrun_run_after;
    nextTd.dataset.testid = `next-run-${d.dag_id}`;
    nextTd.title = d.next_dagrun_run_after ? `Runs after ${d.next_dagrun_run_after}` : "";
    renderKeyed(nextTd, JSON.stringify([next, d.is_paused]), () => (next ? time(next) : h("span", { class: "muted" }, d.is_paused ? "paused" : "—")));
    runsTd.className = "run-dots";
    runsTd.dataset.testid = `recent-runs-${d.dag_id}`;
    renderKeyed(runsTd, JSON.stringify(runs ? runs.map((x) => [x.dag_run_id, x.state]) : null), () => (runs === undefined
      ? h("span", { class: "muted" }, "…")
      : runs.length === 0 ? h("span", { class: "muted" }, "no runs yet")
        : runs.map((x) => h("a", {
          href: href(["dags", d.dag_id, "grid"], { run: x.dag_run_id }),
          class: "dot-link", "data-testid": `run-dot-${x.dag_run_id}`, "data-state": x.state,
        }, dot(x.state, `${x.dag_run_id}: ${stateLabel(x.state)}`)))));
    renderKeyed(lastTd, last ? last.logical_date : "", () => (last ? time(last.logical_date) : h("span", { class: "muted" }, "—")));
  }

  function renderRows() {
    renderKeyed(status, state.loadError ? `${state.loadError.status}:${state.loadError.detail}` : "", () => (state.loadError ? errorBox(state.loadError) : []));
    if (!state.dags) {
      replace(tbody, state.loadError ? [] : h("tr", {}, h("td", { colspan: 8 }, loading())));
      return;
    }
    const rows = visible();
    countEl.textContent = `${rows.length} of ${state.dags.length}`;
    if (!state.dags.length) {
      renderKeyed(tbody, "empty", () => h("tr", {}, h("td", { colspan: 8 }, empty("No DAGs yet: put a DAG file in the DAGs folder and it appears here within seconds.", { "data-testid": "empty-dags" }))));
    } else if (!rows.length) {
      renderKeyed(tbody, "none", () => h("tr", {}, h("td", { colspan: 8 }, empty("No DAG matches these filters.", { "data-testid": "empty-dags" }))));
    } else {
      const trs = rows.map(row);
      const same = tbody.children.length === trs.length && trs.every((tr, i) => tbody.children[i] === tr);
      if (!same) replace(tbody, trs);
    }
    for (const id of [...rowCache.keys()]) if (!state.dags.some((d) => d.dag_id === id)) rowCache.delete(id);
  }

  async function togglePause(d, input) {
    const paused = !input.checked;
    input.disabled = true;
    try {
      const updated = await patch(p`/dags/${d.dag_id}`, { is_paused: paused });
      d.is_paused = updated && typeof updated.is_paused === "boolean" ? updated.is_paused : paused;
      toast(`${d.dag_id} ${paused ? "paused" : "unpaused"}`);
    } catch (e) {
      input.checked = !d.is_paused;
      toast(`Could not ${paused ? "pause" : "unpause"} ${d.dag_id}: ${e.detail || e.message}`, "error");
    }
    input.disabled = false;
    renderRows();
  }

  async function loadRuns(dagId) {
    try {
      const { runs } = await latestRuns(dagId, RECENT);
      state.runs.set(dagId, runs);
    } catch {
      state.runs.set(dagId, state.runs.get(dagId) || []);
    }
  }

  let loading_ = null;
  async function load() {
    if (loading_) return loading_;
    loading_ = (async () => {
      try {
        const [list, errs] = await Promise.all([
          // Each DAG comes with its latest runs: one request for the whole list.
          get("/dags" + qs({ limit: 10000, dag_runs_limit: RECENT })),
          get("/importErrors" + qs({ limit: 1000 })).catch(() => ({ import_errors: [] })),
        ]);
        state.dags = list.dags;
        for (const d of list.dags) state.runs.set(d.dag_id, sortRuns(d.latest_dag_runs || []));
        state.errors = errs.import_errors || [];
        state.loadError = null;
        renderErrors();
        renderTags();
      } catch (e) {
        state.loadError = e;
      } finally {
        loading_ = null;
      }
      renderRows();
    })();
    return loading_;
  }

  const pendingRuns = new Set();
  const flushRuns = debounce(async () => {
    const ids = [...pendingRuns];
    pendingRuns.clear();
    await Promise.all(ids.map(loadRuns));
    renderRows();
  }, 300);

  readFilters(route);
  renderRows();
  load();
  watch({
    dagId: null,
    refresh: load,
    onEvent(type, data) {
      if (type === "dags") load();
      else if (type === "dag_run" && data.dag_id) {
        pendingRuns.add(data.dag_id);
        flushRuns();
      }
    },
  });

  return {
    update(r) {
      readFilters(r);
      renderTags();
      renderRows();
    },
    destroy() {},
  };
}
