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

/** Fills the top bar's account area from `GET /me`: the tenant switcher (only
 *  the caller's tenants) and sign-out; hides the pages the role may not use. */
export function showAccount(me) {
  const bar = document.getElementById("account");
  if (!bar) return;
  const select = h("select", {
    "data-testid": "tenant-switcher",
    "aria-label": "Tenant",
    onchange: () => {
      document.cookie = `${TENANT_COOKIE}=${encodeURIComponent(select.value)}; Path=/; SameSite=Strict`;
      location.hash = "#/dags";
      location.reload();
    },
  }, me.tenants.map((t) => h("option", { value: t.name, selected: t.name === me.tenant }, t.name)));
  const signOut = h("button", {
    class: "btn btn-small",
    "data-testid": "sign-out",
    onclick: async () => {
      await fetch("/auth/logout", { method: "POST" }).catch(() => {});
      location.reload();
    },
  }, "Sign out");
  replace(bar, h("span", { "data-testid": "whoami" }, me.name), select,
    h("span", { class: "role", "data-testid": "my-role" }, me.role || ""), signOut);
  const rank = { Viewer: 0, User: 1, Op: 2, Admin: 3 }[me.role] ?? -1;
  document.body.dataset.role = me.role || "";
  for (const a of document.querySelectorAll("[data-needs]")) {
    const need = a.dataset.needs;
    a.hidden = need === "platform" ? !me.platform_admin : rank < ({ Viewer: 0, User: 1, Op: 2, Admin: 3 }[need] ?? 9);
  }
}
