// The Plugins page: every operator the host knows, its version, digest, size, WIT
// world and params schema.

import { get } from "./api.js";
import { h, replace, errorBox, loading, empty, shortDigest, fmtBytes, json } from "./dom.js";
import { watch } from "./live.js";

function typeOf(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const alts = schema.anyOf || schema.oneOf;
  if (alts) return alts.map(typeOf).join(" | ");
  const t = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (t === "array" && schema.items) return `array of ${typeOf(schema.items)}`;
  return t || "any";
}

/** Doc-comment text: blank lines separate paragraphs, single line breaks are just
 *  wrapping, and `backticks` mark code. */
function prose(text) {
  return h("div", { class: "prose" }, String(text).split(/\n\s*\n/).map((para) =>
    h("p", {}, para.replace(/\s*\n\s*/g, " ").split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part)))));
}

function schemaTable(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const keys = Object.keys(props);
  if (!keys.length) return empty("Takes no params.");
  return h("table", { class: "table small" },
    h("thead", {}, h("tr", {}, ["Param", "Type", "Required", "Default", "Description"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, keys.map((k) => {
      const s = props[k] || {};
      return h("tr", { "data-testid": `plugin-param-${k}` },
        h("td", {}, h("code", {}, k)),
        h("td", {}, h("code", {}, typeOf(s))),
        h("td", {}, required.has(k) ? "yes" : "no"),
        h("td", {}, "default" in s ? h("code", {}, JSON.stringify(s.default)) : h("span", { class: "muted" }, "—")),
        h("td", {}, s.description || ""));
    })));
}

export function mount(root, route) {
  document.title = "Plugins · Aileron";
  const body = h("div", {}, loading());
  const search = h("input", { type: "search", "data-testid": "plugin-search", placeholder: "Filter operators…", "aria-label": "Filter operators", oninput: () => render() });
  root.append(h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, "Plugins")),
    h("p", { class: "muted" }, "Operators are WebAssembly components; each TaskInstance try runs in a fresh sandbox of the component with this digest."),
    h("div", { class: "toolbar" }, search),
    body));
  let plugins = null;
  let error = null;
  let focusName = route.params.get("name");

  function render() {
    if (error && !plugins) {
      replace(body, errorBox(error));
      return;
    }
    if (!plugins) return;
    const q = search.value.toLowerCase();
    const shown = plugins.filter((pl) => !q || pl.name.toLowerCase().includes(q) || (pl.description || "").toLowerCase().includes(q));
    replace(body, shown.length ? h("div", { class: "cards", "data-testid": "plugin-list" }, shown.map((pl) => h("article", {
      class: ["card", pl.name === focusName && "highlight"], "data-testid": `plugin-${pl.name}`, id: `plugin-${pl.name}`,
    },
    h("header", { class: "card-head" },
      h("h2", {}, pl.name), h("span", { class: "badge badge-muted" }, `v${pl.version}`),
      pl.builtin ? h("span", { class: "badge badge-info" }, "built-in") : h("span", { class: "badge badge-muted" }, "installed"),
      // A tenant's own operator, which no other tenant sees.
      pl.tenant ? h("span", { class: "badge badge-muted", "data-testid": `plugin-tenant-${pl.name}`, title: "Published by this tenant, for its DAGs alone" }, `${pl.tenant} only`) : null),
    pl.description ? prose(pl.description) : null,
    h("dl", { class: "facts" },
      h("div", { class: "fact" }, h("dt", {}, "Digest"), h("dd", {}, shortDigest(pl.digest))),
      h("div", { class: "fact" }, h("dt", {}, "Size"), h("dd", {}, fmtBytes(pl.size))),
      h("div", { class: "fact" }, h("dt", {}, "World"), h("dd", {}, h("code", {}, pl.world || "—")))),
    h("h3", {}, "Params"),
    schemaTable(pl.params_schema),
    h("details", {}, h("summary", {}, "Params JSON Schema"), json(pl.params_schema)))))
      : empty(plugins.length ? "No operator matches." : "No operators are installed."));
    if (focusName) {
      const el = document.getElementById(`plugin-${focusName}`);
      if (el) el.scrollIntoView({ block: "start" });
      focusName = null;
    }
  }

  async function load() {
    try {
      // Aileron's operator components (Airflow's `/plugins` lists them in its own shape).
      const r = await get("/operators");
      plugins = r.plugins || [];
      error = null;
    } catch (e) {
      error = e;
    }
    render();
  }
  load();
  watch({ dagId: null, refresh: () => {}, onEvent() {} });
  return {
    update(r) {
      focusName = r.params.get("name");
      render();
    },
    destroy() {},
  };
}
