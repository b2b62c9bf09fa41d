// Signing in and out, and who the caller is: the sign-in page (shown whenever the
// API answers 401), the tenant switcher and the sign-out button in the top bar.
// The session itself lives in an HttpOnly cookie the page never sees; the tenant
// chosen lives in the `aileron_tenant` cookie, which the server reads.

import { h, replace } from "./dom.js";

const TENANT_COOKIE = "aileron_tenant";

/** The value of a cookie the page may read. */
export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return null;
}

/** The sign-in form, in place of the current view. */
export function showSignIn(main) {
  document.title = "Sign in · Aileron";
  const error = h("p", { class: "alert alert-error", role: "alert", "data-testid": "login-error", hidden: true });
  const user = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true, "data-testid": "login-username" });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true, "data-testid": "login-password" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "login-submit" }, "Sign in");
  const form = h("form", {
    class: "login-form",
    "data-testid": "login-form",
    onsubmit: async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      try {
        const res = await fetch("/auth/login", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ username: user.value, password: password.value }),
        });
        if (!res.ok) {
          const body = await res.json().catch(() => ({}));
          throw new Error(body.detail || res.statusText);
        }
        if (!location.hash || location.hash === "#/login") location.hash = "#/dags";
        location.reload();
      } catch (e) {
        error.textContent = e.message || "Cannot sign in";
        error.hidden = false;
        submit.disabled = false;
        password.focus();
      }
    },
  },
    h("h1", {}, "Sign in to Aileron"),
    error,
    h("label", { for: "login-username" }, "User name"), user,
    h("label", { for: "login-password" }, "Password"), password,
    submit);
  replace(main, h("section", { class: "page login" }, form));
  user.focus();
}

/** Roles in the order of what they may do: each can do what the ones before can. */
export const ROLES = ["Viewer", "User", "Op", "Admin"];
const RANK = { Viewer: 0, User: 1, Op: 2, Admin: 3 };

let me = null; // the last `GET /me`

/** Who is signed in (`GET /me`), or null before it is known. */
export function whoami() {
  return me;
}

/** Whether the caller may do what `need` asks: a role (`Viewer`, `User`, `Op`,
 *  `Admin`) in the current tenant, or `platform` (a platform admin). The server
 *  checks every request anyway; this only decides what the UI offers. */
export function can(need) {
  if (!me) return false;
  if (need === "platform") return !!me.platform_admin;
  return (RANK[me.role] ?? -1) >= (RANK[need] ?? 99);
}

/** Why an action needing `need` is unavailable, for its tooltip. */
export function deniedReason(need) {
  if (need === "platform") return "Needs a platform admin";
  const have = me && me.role ? `you are ${me.role}` : "you have no role";
  return `Needs the ${need} role (${have} in ${me ? me.tenant : "this tenant"})`;
}

/** Marks an action element (button, input, link) as needing `need`
 *  (`data-needs`). When the caller may not, it stays in place but disabled,
 *  with `aria-disabled="true"`, `data-denied="true"` and a title saying which
 *  role it needs; a link loses its `href`. Returns the element. */
export function needs(need, el) {
  el.dataset.needs = need;
  if (can(need)) return el;
  el.dataset.denied = "true";
  el.setAttribute("aria-disabled", "true");
  el.title = deniedReason(need);
  if (el.tagName === "A") {
    el.removeAttribute("href");
    el.classList.add("is-disabled");
    el.setAttribute("role", "link");
    el.addEventListener("click", (ev) => ev.preventDefault());
  } else if ("disabled" in el) {
    el.disabled = true;
  }
  return el;
}

/** Fills the top bar's account area from `GET /me`: the tenant switcher (only
 *  the caller's tenants) and sign-out; hides the pages the role may not use. */
export function showAccount(info) {
  me = info;
  const bar = document.getElementById("account");
  if (!bar) return;
  const tenants = info.tenants || [];
  const select = h("select", {
    "data-testid": "tenant-switcher",
    "aria-label": "Tenant",
    hidden: tenants.length === 0,
    onchange: () => {
      document.cookie = `${TENANT_COOKIE}=${encodeURIComponent(select.value)}; Path=/; SameSite=Strict`;
      location.hash = "#/dags";
      location.reload();
    },
  }, tenants.map((t) => h("option", { value: t.name, selected: t.name === info.tenant, "data-testid": `tenant-option-${t.name}` }, t.name)));
  const signOut = h("button", {
    class: "btn btn-small",
    "data-testid": "sign-out",
    onclick: async () => {
      await fetch("/auth/logout", { method: "POST" }).catch(() => {});
      location.reload();
    },
  }, "Sign out");
  replace(bar, h("span", { "data-testid": "whoami" }, info.name), select,
    h("span", { class: "role", "data-testid": "my-role" }, info.role || ""),
    info.platform_admin ? h("span", { class: "role", "data-testid": "platform-admin-badge", title: "Platform admin" }, "platform") : null,
    signOut);
  document.body.dataset.role = info.role || "";
  document.body.dataset.platformAdmin = info.platform_admin ? "true" : "false";
  // The pages of the top bar a caller may not use are not offered at all.
  for (const a of document.querySelectorAll("[data-nav][data-needs]")) {
    a.hidden = !can(a.dataset.needs);
  }
}

/** Forgets the chosen tenant (a cookie naming a tenant the caller no longer
 *  belongs to makes every request answer 404); true if there was one. */
export function forgetTenant() {
  if (!cookie(TENANT_COOKIE)) return false;
  document.cookie = `${TENANT_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict`;
  return true;
}
