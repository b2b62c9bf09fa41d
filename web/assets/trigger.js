// The Trigger form: one typed input per DAG param (defaults filled in, validated
// against the default's type), the raw `conf` JSON kept in step with the fields
// both ways, and an optional run id and logical date.

import { get, post, p } from "./api.js";
import { h, replace, errorBox, loading, toast } from "./dom.js";
import { href, navigate } from "./router.js";
import { can, needs, deniedReason } from "./session.js";

/** The kind of input a param gets, from its default value (or an Airflow-style
 *  `{"__class": "…Param", "default", "description", "schema"}` object). */
function describe(key, raw) {
  let value = raw;
  let description = "";
  let schemaType = null;
  let enumValues = null;
  if (raw && typeof raw === "object" && !Array.isArray(raw) && typeof raw.__class === "string" && raw.__class.endsWith("Param")) {
    value = raw.default ?? raw.value ?? null;
    description = raw.description || "";
    schemaType = raw.schema && raw.schema.type;
    enumValues = raw.schema && Array.isArray(raw.schema.enum) ? raw.schema.enum : null;
  }
  let kind;
  if (enumValues) kind = "enum";
  else if (schemaType === "boolean" || typeof value === "boolean") kind = "boolean";
  else if (schemaType === "integer" || (typeof value === "number" && Number.isInteger(value))) kind = "integer";
  else if (schemaType === "number" || typeof value === "number") kind = "number";
  else if (schemaType === "string" || typeof value === "string") kind = "string";
  else if (schemaType === "array" || Array.isArray(value)) kind = "array";
  else if (schemaType === "object" || (value && typeof value === "object")) kind = "object";
  else kind = "json";
  return { key, value, description, kind, enumValues };
}

const KIND_HELP = {
  boolean: "true or false",
  integer: "a whole number",
  number: "a number",
  string: "text",
  array: "a JSON array",
  object: "a JSON object",
  json: "any JSON value",
  enum: "one of the listed values",
};

export function mount(root, route) {
  const dagId = route.segments[1];
  document.title = `Trigger ${dagId} · Aileron`;
  const body = h("div", {}, loading());
  root.append(h("section", { class: "page trigger-page" },
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" },
      h("a", { href: "#/dags" }, "DAGs"), " / ", h("a", { href: href(["dags", dagId, "grid"]) }, dagId), " / ", h("span", {}, "Trigger")),
    h("h1", {}, "Trigger ", h("code", {}, dagId)),
    body));

  get(p`/dags/${dagId}/details`)
    .then((dag) => build(body, dag))
    .catch((e) => replace(body, errorBox(e)));
  return { update() {}, destroy() {} };
}

function build(container, dag) {
  const dagId = dag.dag_id;
  const params = Object.entries(dag.params || {}).map(([k, v]) => describe(k, v));
  const fields = new Map(); // key → {desc, input, errorEl, read(), write(v)}
  let extra = {}; // conf keys that are not params, kept from the raw JSON

  const confEl = h("textarea", {
    id: "trigger-conf", "data-testid": "trigger-conf", rows: 8, spellcheck: "false", class: "mono",
    "aria-describedby": "trigger-conf-help trigger-conf-error",
  });
  const confError = h("div", { id: "trigger-conf-error", class: "field-error", "data-testid": "trigger-conf-error", role: "alert" });
  const runIdEl = h("input", { id: "trigger-run-id", "data-testid": "trigger-run-id", type: "text", placeholder: "generated: manual__<time>", autocomplete: "off" });
  const dateEl = h("input", { id: "trigger-logical-date", "data-testid": "trigger-logical-date", type: "datetime-local", step: "1" });
  const formError = h("div", { "data-testid": "trigger-error" });
  const submit = needs("User", h("button", { type: "submit", class: "btn btn-primary", "data-testid": "trigger-submit" }, "▶ Trigger"));

  function field(d) {
    const id = `param-${d.key}`;
    const errorEl = h("div", { class: "field-error", id: `${id}-error`, "data-testid": `param-error-${d.key}`, role: "alert" });
    const common = { id, "data-testid": id, name: d.key, "aria-describedby": `${id}-help ${id}-error` };
    let input;
    let read;
    let write;
    if (d.kind === "boolean") {
      input = h("input", { ...common, type: "checkbox" });
      read = () => ({ ok: true, value: input.checked });
      write = (v) => (input.checked = !!v);
    } else if (d.kind === "enum") {
      input = h("select", common, d.enumValues.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
      read = () => ({ ok: true, value: JSON.parse(input.value) });
      write = (v) => (input.value = JSON.stringify(v));
    } else if (d.kind === "integer" || d.kind === "number") {
      input = h("input", { ...common, type: "number", step: d.kind === "integer" ? "1" : "any", inputmode: d.kind === "integer" ? "numeric" : "decimal" });
      read = () => {
        if (input.value.trim() === "") return { ok: false, error: `Enter ${KIND_HELP[d.kind]}.` };
        const n = Number(input.value);
        if (!Number.isFinite(n)) return { ok: false, error: `Enter ${KIND_HELP[d.kind]}.` };
        if (d.kind === "integer" && !Number.isInteger(n)) return { ok: false, error: "Enter a whole number (no decimals)." };
        return { ok: true, value: n };
      };
      write = (v) => (input.value = v === null || v === undefined ? "" : String(v));
    } else if (d.kind === "string") {
      const multi = typeof d.value === "string" && d.value.includes("\n");
      input = multi ? h("textarea", { ...common, rows: 4 }) : h("input", { ...common, type: "text", autocomplete: "off" });
      read = () => ({ ok: true, value: input.value });
      write = (v) => (input.value = v === null || v === undefined ? "" : String(v));
    } else {
      input = h("textarea", { ...common, rows: d.kind === "json" ? 1 : 3, class: "mono", spellcheck: "false" });
      read = () => {
        let v;
        try {
          v = JSON.parse(input.value);
        } catch (e) {
          return { ok: false, error: `Not valid JSON: ${e.message}` };
        }
        if (d.kind === "array" && !Array.isArray(v)) return { ok: false, error: "Enter a JSON array, like [\"a\", \"b\"]." };
        if (d.kind === "object" && (!v || typeof v !== "object" || Array.isArray(v))) return { ok: false, error: "Enter a JSON object, like {\"k\": 1}." };
        return { ok: true, value: v };
      };
      write = (v) => (input.value = JSON.stringify(v));
    }
    write(d.value);
    const f = { desc: d, input, errorEl, read, write };
    input.addEventListener(d.kind === "boolean" || d.kind === "enum" ? "change" : "input", () => {
      validateField(f);
      syncConfFromFields();
    });
    fields.set(d.key, f);
    const label = h("label", { for: id }, h("code", {}, d.key));
    const help = h("div", { class: "muted small", id: `${id}-help` },
      d.description ? `${d.description} · ` : "", KIND_HELP[d.kind], " · default ", h("code", {}, JSON.stringify(d.value)));
    return d.kind === "boolean"
      ? h("div", { class: "field field-check" }, h("div", { class: "check" }, input, " ", label), help, errorEl)
      : h("div", { class: "field" }, label, input, help, errorEl);
  }

  function validateField(f) {
    const r = f.read();
    f.input.setAttribute("aria-invalid", String(!r.ok));
    f.errorEl.textContent = r.ok ? "" : r.error;
    return r;
  }

  function confFromFields() {
    const conf = { ...extra };
    for (const [k, f] of fields) {
      const r = f.read();
      if (r.ok) conf[k] = r.value;
    }
    return conf;
  }

  function syncConfFromFields() {
    confEl.value = JSON.stringify(confFromFields(), null, 2);
    confError.textContent = "";
    confEl.setAttribute("aria-invalid", "false");
  }

  function parseConf() {
    const text = confEl.value.trim();
    if (!text) return { ok: true, value: {} };
    try {
      const v = JSON.parse(text);
      if (!v || typeof v !== "object" || Array.isArray(v)) return { ok: false, error: "conf must be a JSON object, like {\"key\": \"value\"}." };
      return { ok: true, value: v };
    } catch (e) {
      return { ok: false, error: `conf is not valid JSON: ${e.message}` };
    }
  }

  confEl.addEventListener("input", () => {
    const r = parseConf();
    confEl.setAttribute("aria-invalid", String(!r.ok));
    confError.textContent = r.ok ? "" : r.error;
    if (!r.ok) return;
    extra = {};
    for (const [k, v] of Object.entries(r.value)) {
      const f = fields.get(k);
      if (f) {
        f.write(v);
        validateField(f);
      } else {
        extra[k] = v;
      }
    }
  });

  async function onSubmit(e) {
    e.preventDefault();
    replace(formError);
    const conf = parseConf();
    if (!conf.ok) {
      confError.textContent = conf.error;
      confEl.focus();
      return;
    }
    // The raw conf is what is sent; each param in it must still have its type.
    let firstBad = null;
    for (const [k, f] of fields) {
      if (k in conf.value) f.write(conf.value[k]);
      const r = validateField(f);
      if (!r.ok && !firstBad) firstBad = f;
    }
    if (firstBad) {
      replace(formError, h("div", { class: "alert alert-error", role: "alert" }, "Fix the highlighted params first."));
      firstBad.input.focus();
      return;
    }
    // Airflow 3's body: a null logical date means "now" (a manual run).
    const payload = { conf: conf.value, logical_date: null };
    if (runIdEl.value.trim()) payload.dag_run_id = runIdEl.value.trim();
    if (dateEl.value) {
      const d = new Date(dateEl.value);
      if (Number.isNaN(d.getTime())) {
        replace(formError, h("div", { class: "alert alert-error", role: "alert" }, "The logical date is not a valid date."));
        dateEl.focus();
        return;
      }
      payload.logical_date = d.toISOString();
    }
    submit.disabled = true;
    try {
      const run = await post(p`/dags/${dagId}/dagRuns`, payload);
      toast(`Triggered ${dagId}: ${run.dag_run_id}`);
      navigate(["dags", dagId, "graph"], { run: run.dag_run_id });
    } catch (err) {
      replace(formError, errorBox(err));
      submit.disabled = false;
    }
  }

  const form = h("form", { class: "form", "data-testid": "trigger-form", novalidate: true, onsubmit: onSubmit },
    can("User") ? null : h("div", { class: "alert alert-warn", role: "note", "data-testid": "trigger-denied" }, `You cannot trigger runs here. ${deniedReason("User")}.`),
    dag.is_paused ? h("div", { class: "alert alert-warn", role: "note" }, "This DAG is paused: the run is created but will not start until the DAG is unpaused.") : null,
    h("fieldset", {},
      h("legend", {}, "Params"),
      params.length ? params.map(field) : h("p", { class: "muted" }, "This DAG declares no params; you can still pass any conf below.")),
    h("fieldset", {},
      h("legend", {}, "Run"),
      h("div", { class: "field" }, h("label", { for: "trigger-run-id" }, "Run id (optional)"), runIdEl),
      h("div", { class: "field" }, h("label", { for: "trigger-logical-date" }, "Logical date (optional, your local time)"), dateEl)),
    h("fieldset", {},
      h("legend", {}, "conf (JSON)"),
      h("p", { class: "muted small", id: "trigger-conf-help" }, "The run's conf, kept in step with the params above; keys that are not params are passed through."),
      confEl, confError),
    formError,
    h("div", { class: "actions" }, submit, h("a", { class: "btn", href: href(["dags", dagId, "grid"]), "data-testid": "trigger-cancel" }, "Cancel")));
  syncConfFromFields();
  replace(container, form);
  const first = form.querySelector("input, textarea, select");
  if (first) first.focus();
}
