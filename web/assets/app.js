// Aileron's web UI: plain ES modules, no framework, no build step. The app shell
// (index.html) has the header; this module routes the hash to a view and hands it
// `<main>`. A view is `mount(root, route)` returning {key, update(route), destroy()}:
// a route change with the same key (another tab or panel of the same DAG) is an
// update, anything else remounts.

import { get } from "./api.js";
import { current } from "./router.js";
import { h, replace, errorBox } from "./dom.js";
import * as dags from "./dags.js";
import * as dag from "./dag.js";
import * as trigger from "./trigger.js";
import * as plugins from "./plugins.js";
import * as admin from "./admin.js";
import * as workers from "./workers.js";
import * as tenants from "./tenants.js";
import * as members from "./members.js";
import * as audit from "./audit.js";
import * as usage from "./usage.js";
import { showSignIn, showAccount, forgetTenant } from "./session.js";

const main = document.getElementById("main");
let view = null;

function resolve(route) {
  const [first, second, third] = route.segments;
  if (!first || (first === "dags" && !second)) return { key: "dags", mod: dags };
  if (first === "dags" && third === "trigger") return { key: `trigger:${second}`, mod: trigger };
  if (first === "dags") return { key: `dag:${second}`, mod: dag };
  if (first === "plugins") return { key: "plugins", mod: plugins };
  if (first === "workers") return { key: "workers", mod: workers };
  if (first === "tenants") return { key: "tenants", mod: tenants };
  if (first === "members") return { key: "members", mod: members };
  if (first === "audit") return { key: "audit", mod: audit };
  if (first === "usage") return { key: "usage", mod: usage };
  if (first === "admin" && ["variables", "connections", "pools"].includes(second)) {
    return { key: `admin:${second}`, mod: admin };
  }
  return null;
}

function highlightNav(route) {
  const path = route.segments.join("/");
  for (const a of document.querySelectorAll("[data-nav]")) {
    const nav = a.dataset.nav;
    const active = nav === "dags" ? path === "" || path.startsWith("dags") : path.startsWith(nav);
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function render() {
  const route = current();
  highlightNav(route);
  const target = resolve(route);
  if (view && target && view.key === target.key && view.update) {
    view.update(route);
    return;
  }
  if (view && view.destroy) view.destroy();
  view = null;
  if (!target) {
    document.title = "Not found · Aileron";
    replace(main, h("section", { class: "page" },
      h("h1", {}, "Page not found"),
      h("p", {}, "Nothing lives at this address. ", h("a", { href: "#/dags" }, "Go to the DAGs"), ".")));
    return;
  }
  replace(main);
  try {
    view = target.mod.mount(main, route) || null;
    if (view) view.key = target.key;
  } catch (e) {
    replace(main, errorBox(e));
  }
  // A new page: move focus to it so screen readers and keyboards start there,
  // unless the user is typing somewhere already.
  if (!document.activeElement || document.activeElement === document.body) {
    main.focus({ preventScroll: true });
  }
}

let signedOut = false;
window.addEventListener("aileron:signed-out", () => {
  if (signedOut) return;
  signedOut = true;
  if (view && view.destroy) view.destroy();
  view = null;
  showSignIn(main);
});
window.addEventListener("hashchange", () => {
  if (!signedOut) render();
});

// Who is signed in decides what is shown; a 401 shows the sign-in page instead.
// A tenant cookie naming a tenant the caller is no longer in answers 404: the
// page forgets it and asks again.
get("/me")
  .catch((e) => {
    if (e && e.status === 404 && forgetTenant()) return get("/me");
    throw e;
  })
  .then((me) => {
    showAccount(me);
    render();
  })
  .catch((e) => {
    if (e && e.status !== 401) replace(main, errorBox(e));
  });

get("/version")
  .then((v) => {
    const el = document.getElementById("version");
    if (el && v && v.version) el.textContent = `v${v.version}`;
  })
  .catch(() => {});
