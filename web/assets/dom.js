// Small DOM helpers: build elements without innerHTML (so API data is never parsed
// as markup), format times and durations, and render states the way Airflow does.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Applies attributes/properties to an element; see `h`. */
function apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k === "style") Object.assign(el.style, v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked" || k === "selected" || k === "indeterminate") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** `h("button", {class: "x", onclick}, "text", child…)`: an HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Replaces an element's children, keeping keyboard focus on the element with the
 *  same `data-testid` (or id) if the focused one was replaced: live updates must not
 *  throw a keyboard user back to the top of the page. */
export function replace(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? focusKey(active) : null;
  el._renderKey = undefined; // see renderKeyed
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = el.querySelector(key);
    if (again) again.focus({ preventScroll: true });
  }
}

function focusKey(node) {
  if (node.dataset && node.dataset.testid) return `[data-testid="${CSS.escape(node.dataset.testid)}"]`;
  if (node.id) return `#${CSS.escape(node.id)}`;
  return null;
}

export const STATES = [
  "success", "failed", "running", "queued", "up_for_retry", "up_for_reschedule",
  "upstream_failed", "skipped", "scheduled", "removed", "deferred", "restarting", "none",
];

/** A state name as a CSS-safe key: `null` (no status yet) is `none`. */
export function stateKey(state) {
  return state ? String(state).replace(/[^a-z_]/g, "") : "none";
}

export function stateLabel(state) {
  return state ? String(state).replaceAll("_", " ") : "no status";
}

/** A coloured state badge: the colour plus the word, never colour alone. */
export function badge(state, attrs = {}) {
  return h("span", { class: `badge state-${stateKey(state)}`, ...attrs }, stateLabel(state));
}

/** A small coloured square or dot with the state as its accessible name. */
export function dot(state, title, attrs = {}) {
  return h("span", {
    class: `dot state-${stateKey(state)}`,
    title: title || stateLabel(state),
    role: "img",
    "aria-label": title || stateLabel(state),
    ...attrs,
  });
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** A timestamp in the browser's time zone, `YYYY-MM-DD HH:MM:SS`. */
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A `<time>` element: local time shown, the UTC instant in the tooltip. */
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: iso }, fmtTime(iso));
}

/** Seconds as `850ms`, `12.3s`, `4m 05s`, `2h 03m`. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 0.001) return "<1ms";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(seconds % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
}

/** A duration from two timestamps, the end defaulting to now. */
export function span(start, end) {
  if (!start) return null;
  const a = new Date(start).getTime();
  const b = end ? new Date(end).getTime() : Date.now();
  return Math.max(0, (b - a) / 1000);
}

/** `sha256:abcdef…` shortened for tables; the full digest stays in the tooltip. */
export function shortDigest(d) {
  if (!d) return h("span", { class: "muted" }, "—");
  const [alg, hex] = String(d).includes(":") ? String(d).split(":", 2) : ["", String(d)];
  return h("code", { class: "digest", title: d }, `${alg ? alg + ":" : ""}${hex.slice(0, 12)}…`);
}

/** A content hash (a DAG version) cut to its first 12 hex digits, for display. */
export function shortHash(v) {
  const hex = String(v || "").replace(/^[a-z0-9]+:/, "");
  return hex ? hex.slice(0, 12) : "—";
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Pretty JSON for display. */
export function json(v) {
  return h("pre", { class: "json" }, JSON.stringify(v, null, 2));
}

/** An error box showing the API's `detail` (or the network failure). */
export function errorBox(err, attrs = {}) {
  const title = err && err.title ? err.title : "Error";
  const detail = err && err.detail ? err.detail : String(err && err.message ? err.message : err);
  return h("div", { class: "alert alert-error", role: "alert", "data-testid": "error", ...attrs },
    h("strong", {}, title, err && err.status ? ` (${err.status})` : "", ": "), detail);
}

/** Fills `body` with a table of `items` whose last column holds each row's
 *  actions, or with the `none` note when there are none. `row(item)` renders a
 *  `<tr>`; `columns` are the other columns' headers. */
export function actionTable(body, items, { testid, columns, none, noneTestid }, row) {
  if (!items.length) {
    replace(body, empty(none, { "data-testid": noneTestid }));
    return;
  }
  replace(body, h("div", { class: "table-wrap" }, h("table", { class: "table", "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)),
      h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
    h("tbody", {}, items.map(row)))));
}

export function empty(text, attrs = {}) {
  return h("p", { class: "empty", ...attrs }, text);
}

export function loading() {
  return h("p", { class: "empty", "aria-busy": "true" }, "Loading…");
}

/** Announces a short message (success of an action, a failure) for a few seconds. */
export function toast(message, kind = "info") {
  const area = document.getElementById("toasts");
  if (!area) return;
  while (area.children.length >= 4) area.firstChild.remove();
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status", "data-testid": "toast" }, message);
  area.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 9000 : 4000);
}

/** Calls `fn` at most once per `ms`, with the last arguments. */
export function debounce(fn, ms) {
  let timer = null;
  let args = [];
  return (...a) => {
    args = a;
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn(...args);
    }, ms);
  };
}

/** A modal built on `<dialog>`: Escape and the Cancel button close it, focus returns
 *  to where it was. `build(close)` returns the body; resolves with what `close` got. */
export function modal({ title, testid, build, wide }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const dlg = h("dialog", { class: ["modal", wide && "modal-wide"], "data-testid": testid, "aria-labelledby": `${testid}-title` });
    let result;
    const close = (value) => {
      result = value;
      dlg.close();
    };
    dlg.addEventListener("close", () => {
      dlg.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    dlg.append(h("h2", { id: `${testid}-title` }, title), build(close));
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** A yes/no confirmation; resolves true when confirmed. */
export function confirmDialog(title, message, { confirmLabel = "Confirm", danger = false, testid = "confirm-dialog" } = {}) {
  return modal({
    title,
    testid,
    build: (close) => h("div", {},
      h("p", {}, message),
      h("div", { class: "actions" },
        h("button", { type: "button", class: ["btn", danger ? "btn-danger" : "btn-primary"], "data-testid": "confirm-button", onclick: () => close(true) }, confirmLabel),
        h("button", { type: "button", class: "btn", "data-testid": "cancel-button", onclick: () => close(false) }, "Cancel"))),
  }).then((v) => v === true);
}

/** Re-renders `el` with `build()` only when `key` differs from the last render's:
 *  live updates then leave untouched whatever did not change, so elements a user
 *  (or a test) holds on to stay in the page. */
export function renderKeyed(el, key, build) {
  if (el._renderKey === key) return false;
  const out = build();
  replace(el, ...(Array.isArray(out) ? out : [out]));
  el._renderKey = key;
  return true;
}

/** A modal form (`<noun>-form` style): one input per field, `save-button` and
 *  `cancel-button`. Each field is {name, label, type ("text" | "password" |
 *  "checkbox" | "select" | "datetime-local" | …), required, options (for a
 *  select: [value, label] pairs), value, help, autocomplete, placeholder}; its
 *  input is `field-<name>`, its message `field-<name>-error`. `submit(values)`
 *  does the work: what it throws is shown in the form (an `error` box), which
 *  stays open; what it returns is what the dialog resolves with (undefined when
 *  cancelled). */
export function formDialog({ title, testid, fields, submitLabel = "Save", submit }) {
  return modal({
    title,
    testid,
    build: (close) => {
      const inputs = new Map();
      const errorEl = h("div", { "data-testid": "form-error" });
      const save = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "save-button" }, submitLabel);
      const form = h("form", { class: "form", novalidate: true },
        fields.map((f) => {
          const fid = `field-${f.name}`;
          let input;
          if (f.type === "select") {
            input = h("select", { id: fid, "data-testid": fid },
              (f.options || []).map(([v, label]) => h("option", { value: v, selected: v === f.value }, label ?? v)));
          } else if (f.type === "checkbox") {
            input = h("input", { id: fid, "data-testid": fid, type: "checkbox", checked: !!f.value });
          } else {
            input = h("input", {
              id: fid, "data-testid": fid, type: f.type || "text", required: f.required,
              autocomplete: f.autocomplete || "off", placeholder: f.placeholder || "",
              "aria-describedby": f.help ? `${fid}-help` : null,
            });
            input.value = f.value ?? "";
          }
          inputs.set(f.name, input);
          const help = f.help ? h("div", { class: "muted small", id: `${fid}-help` }, f.help) : null;
          const error = h("div", { class: "field-error", id: `${fid}-error`, "data-testid": `${fid}-error`, role: "alert" });
          if (f.type === "checkbox") {
            return h("div", { class: "field field-check" }, h("label", { class: "check", for: fid }, input, f.label), help, error);
          }
          return h("div", { class: "field" }, h("label", { for: fid }, f.label, f.required ? " *" : ""), input, help, error);
        }),
        errorEl,
        h("div", { class: "actions" },
          save,
          h("button", { type: "button", class: "btn", "data-testid": "cancel-button", onclick: () => close(undefined) }, "Cancel")));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        replace(errorEl);
        const values = {};
        let bad = null;
        for (const f of fields) {
          const input = inputs.get(f.name);
          const err = form.querySelector(`#field-${f.name}-error`);
          err.textContent = "";
          input.setAttribute("aria-invalid", "false");
          values[f.name] = f.type === "checkbox" ? input.checked : input.value;
          if (f.required && f.type !== "checkbox" && String(input.value).trim() === "") {
            err.textContent = `${f.label} is required.`;
            input.setAttribute("aria-invalid", "true");
            bad = bad || input;
          }
        }
        if (bad) {
          bad.focus();
          return;
        }
        save.disabled = true;
        try {
          const out = await submit(values);
          close(out === undefined ? true : out);
        } catch (x) {
          replace(errorEl, errorBox(x));
          save.disabled = false;
        }
      });
      requestAnimationFrame(() => {
        const first = form.querySelector("input, select");
        if (first) first.focus();
      });
      return form;
    },
  });
}
