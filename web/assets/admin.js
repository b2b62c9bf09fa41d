// Admin pages: variables, connections and pools, each a table with add, edit and
// delete. Connection passwords are write-only: never shown, and left unchanged by
// an edit unless a new one is typed; operators see them only when the connection
// is marked exposed.

import { get, post, patch, del, p, qs } from "./api.js";
import { h, replace, errorBox, loading, empty, toast, modal, confirmDialog } from "./dom.js";
import { watch } from "./live.js";
import { needs } from "./session.js";

const RESOURCES = {
  variables: {
    title: "Variables",
    noun: "variable",
    path: "/variables",
    listKey: "variables",
    id: (v) => v.key,
    intro: "Key/value settings DAGs read at run time.",
    columns: [
      ["Key", (v) => h("code", {}, v.key)],
      ["Value", (v) => h("span", { class: "truncate", title: String(v.value ?? "") }, String(v.value ?? ""))],
    ],
    fields: [
      { name: "key", label: "Key", required: true, idField: true },
      { name: "value", label: "Value", kind: "textarea" },
    ],
  },
  connections: {
    title: "Connections",
    noun: "connection",
    path: "/connections",
    listKey: "connections",
    id: (c) => c.connection_id,
    intro: "Where and how operators reach outside systems. Passwords are write-only: they are never shown again. A host-held password (the default) is never given to operators either: they send requests through the connection and the host adds the credential.",
    columns: [
      ["Conn id", (c) => h("code", {}, c.connection_id)],
      ["Type", (c) => c.conn_type || "—"],
      ["Description", (c) => c.description || h("span", { class: "muted" }, "—")],
      ["Host", (c) => c.host || h("span", { class: "muted" }, "—")],
      ["Port", (c) => (c.port ?? "—")],
      ["Login", (c) => c.login || h("span", { class: "muted" }, "—")],
      ["Schema", (c) => c.schema || h("span", { class: "muted" }, "—")],
      ["Password", (c) => h("span", { class: "muted", title: "Passwords are never sent back by the server", "data-testid": `secret-${c.connection_id}` }, c.exposed === false ? "host-held" : "exposed to operators")],
      ["Extra", (c) => (c.extra ? h("code", { class: "truncate", title: String(c.extra) }, String(c.extra)) : h("span", { class: "muted" }, "—"))],
    ],
    fields: [
      { name: "connection_id", label: "Conn id", required: true, idField: true },
      { name: "conn_type", label: "Type", required: true, placeholder: "http, postgres, s3…" },
      { name: "description", label: "Description" },
      { name: "host", label: "Host" },
      { name: "port", label: "Port", kind: "integer" },
      { name: "login", label: "Login", autocomplete: "off" },
      { name: "password", label: "Password", kind: "password" },
      { name: "schema", label: "Schema" },
      { name: "extra", label: "Extra (JSON)", kind: "json-text" },
      { name: "exposed", label: "Operators may read the password (exposed)", kind: "checkbox" },
    ],
  },
  pools: {
    title: "Pools",
    noun: "pool",
    path: "/pools",
    listKey: "pools",
    id: (pl) => pl.name,
    intro: "Pools cap how many TaskInstances assigned to them run at once.",
    columns: [
      ["Name", (pl) => h("code", {}, pl.name)],
      ["Slots", (pl) => String(pl.slots)],
      ["Occupied", (pl) => String(pl.occupied_slots ?? "—")],
      ["Running", (pl) => String(pl.running_slots ?? "—")],
      ["Queued", (pl) => String(pl.queued_slots ?? "—")],
      ["Open", (pl) => String(pl.open_slots ?? "—")],
      ["Description", (pl) => pl.description || h("span", { class: "muted" }, "—")],
    ],
    fields: [
      { name: "name", label: "Name", required: true, idField: true },
      { name: "slots", label: "Slots", kind: "integer", required: true, min: 0 },
      { name: "description", label: "Description" },
    ],
    // Airflow's PoolPatchBody names the pool `pool`.
    patchBody: ({ name, ...rest }) => ({ pool: name, ...rest }),
  },
};

export function mount(root, route) {
  const kind = route.segments[1];
  const R = RESOURCES[kind];
  document.title = `${R.title} · Aileron`;
  const body = h("div", {}, loading());
  root.append(h("section", { class: "page" },
    h("div", { class: "page-head" },
      h("h1", {}, R.title),
      h("span", { class: "spacer" }),
      needs("Op", h("button", { type: "button", class: "btn btn-primary", "data-testid": `add-${R.noun}`, onclick: () => edit(null) }, `Add ${R.noun}`))),
    h("p", { class: "muted" }, R.intro),
    body));

  let items = null;
  let error = null;

  function render() {
    if (error && !items) {
      replace(body, errorBox(error));
      return;
    }
    if (!items) return;
    if (!items.length) {
      replace(body, empty(`No ${R.noun}s yet.`, { "data-testid": `empty-${kind}` }));
      return;
    }
    replace(body, error ? errorBox(error) : null, h("div", { class: "table-wrap" }, h("table", { class: "table", "data-testid": `${kind}-table` },
      h("thead", {}, h("tr", {}, R.columns.map(([c]) => h("th", { scope: "col" }, c)), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, items.map((it) => {
        const id = R.id(it);
        return h("tr", { "data-testid": `${R.noun}-row-${id}` },
          R.columns.map(([, f]) => h("td", {}, f(it))),
          h("td", { class: "col-actions" },
            needs("Op", h("button", { type: "button", class: "btn btn-small", "data-testid": `edit-${id}`, "aria-label": `Edit ${R.noun} ${id}`, onclick: () => edit(it) }, "Edit")),
            " ",
            needs("Op", h("button", { type: "button", class: "btn btn-small btn-danger-outline", "data-testid": `delete-${id}`, "aria-label": `Delete ${R.noun} ${id}`, onclick: () => remove(it) }, "Delete"))));
      })))));
  }

  async function load() {
    try {
      const r = await get(R.path + qs({ limit: 1000 }));
      items = r[R.listKey] || [];
      error = null;
    } catch (e) {
      error = e;
    }
    render();
  }

  async function remove(it) {
    const id = R.id(it);
    const ok = await confirmDialog(`Delete ${R.noun} ${id}?`, `The ${R.noun} is deleted at once.`, { confirmLabel: "Delete", danger: true, testid: "delete-dialog" });
    if (!ok) return;
    try {
      await del(`${R.path}/${encodeURIComponent(id)}`);
      toast(`Deleted ${R.noun} ${id}`);
    } catch (e) {
      toast(`Could not delete ${id}: ${e.detail || e.message}`, "error");
    }
    load();
  }

  function edit(it) {
    const creating = !it;
    const id = it ? R.id(it) : null;
    return modal({
      title: creating ? `Add ${R.noun}` : `Edit ${R.noun} ${id}`,
      testid: `${R.noun}-form`,
      build: (close) => {
        const inputs = new Map();
        const errorEl = h("div", {});
        const form = h("form", { class: "form" + (R.fields.length > 4 ? " form-grid" : ""), novalidate: true },
          R.fields.map((f) => {
            const fid = `field-${f.name}`;
            const current = it ? (f.name === R.fields[0].name ? id : it[f.name]) : undefined;
            let input;
            if (f.kind === "textarea" || f.kind === "json-text") {
              input = h("textarea", { id: fid, "data-testid": fid, rows: 4, class: f.kind === "json-text" ? "mono" : "", spellcheck: "false" });
              input.value = current ?? "";
            } else if (f.kind === "password") {
              input = h("input", {
                id: fid, "data-testid": fid, type: "password", autocomplete: "new-password",
                placeholder: creating ? "" : "unchanged unless you type a new one",
              });
            } else if (f.kind === "checkbox") {
              input = h("input", { id: fid, "data-testid": fid, type: "checkbox" });
              input.checked = current === true;
            } else {
              input = h("input", {
                id: fid, "data-testid": fid, type: f.kind === "integer" ? "number" : "text", step: f.kind === "integer" ? "1" : null,
                min: f.min ?? null, autocomplete: f.autocomplete || "off", placeholder: f.placeholder || "",
                readonly: !creating && f.idField, required: f.required,
              });
              input.value = current === null || current === undefined ? "" : String(current);
            }
            inputs.set(f.name, input);
            return h("div", { class: ["field", (f.kind === "textarea" || f.kind === "json-text") && "field-wide"] }, h("label", { for: fid }, f.label, f.required ? " *" : ""), input,
              h("div", { class: "field-error", id: `${fid}-error`, "data-testid": `${fid}-error`, role: "alert" }));
          }),
          errorEl,
          h("div", { class: "actions" },
            h("button", { type: "submit", class: "btn btn-primary", "data-testid": "save-button" }, creating ? "Add" : "Save"),
            h("button", { type: "button", class: "btn", "data-testid": "cancel-button", onclick: () => close(false) }, "Cancel")));

        form.addEventListener("submit", async (e) => {
          e.preventDefault();
          replace(errorEl);
          const payload = {};
          let bad = null;
          for (const f of R.fields) {
            const input = inputs.get(f.name);
            const err = form.querySelector(`#field-${f.name}-error`);
            err.textContent = "";
            input.setAttribute("aria-invalid", "false");
            const raw = input.value;
            let value = raw;
            let problem = null;
            if (f.kind === "checkbox") value = input.checked;
            else if (f.required && raw.trim() === "") problem = `${f.label.replace(/ \(.*/, "")} is required.`;
            else if (f.kind === "integer") {
              if (raw.trim() === "") value = null;
              else if (!/^-?\d+$/.test(raw.trim())) problem = "Enter a whole number.";
              else {
                value = Number(raw);
                if (f.min !== undefined && value < f.min) problem = `Must be at least ${f.min}.`;
              }
            } else if (f.kind === "json-text" && raw.trim() !== "") {
              try {
                JSON.parse(raw);
              } catch (x) {
                problem = `Not valid JSON: ${x.message}`;
              }
            } else if (f.kind === "password") {
              if (raw === "") continue; // write-only: empty leaves it as it is
            } else if (raw.trim() === "" && !f.required && f.kind !== "textarea") {
              value = null;
            }
            if (problem) {
              err.textContent = problem;
              input.setAttribute("aria-invalid", "true");
              bad = bad || input;
              continue;
            }
            payload[f.name] = value;
          }
          if (bad) {
            bad.focus();
            return;
          }
          try {
            if (creating) await post(R.path, payload);
            else await patch(`${R.path}/${encodeURIComponent(id)}`, R.patchBody ? R.patchBody(payload) : payload);
            toast(creating ? `Added ${R.noun} ${payload[R.fields[0].name]}` : `Saved ${R.noun} ${id}`);
            close(true);
            load();
          } catch (x) {
            replace(errorEl, errorBox(x));
          }
        });
        requestAnimationFrame(() => {
          const first = form.querySelector("input:not([readonly]), textarea");
          if (first) first.focus();
        });
        return form;
      },
    });
  }

  load();
  // Pools' occupied slots move as tasks run; other pages just stay current.
  watch({ dagId: null, refresh: load, onEvent: kind === "pools" ? (type) => type === "task_instance" && loadSoon() : () => {} });
  let soon = null;
  function loadSoon() {
    if (soon) return;
    soon = setTimeout(() => {
      soon = null;
      load();
    }, 1000);
  }
  return { update() {}, destroy() {} };
}
