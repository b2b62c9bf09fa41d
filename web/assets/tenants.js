// The platform's "Tenants & users" page (platform admins): the tenants sharing
// this Aileron (create, delete), the users who sign in (create, set a password,
// make or unmake platform admin, delete) with the roles they hold, and the
// platform's API tokens. A tenant's members and roles are managed by its Admins
// on its Members page; a user can be given a first role here when created.

import { get, post, patch, del, p } from "./api.js";
import { h, replace, errorBox, loading, actionTable, toast, confirmDialog, formDialog, time } from "./dom.js";
import { whoami, showAccount, needs, ROLES } from "./session.js";
import { tokenSection } from "./members.js";
import { watch } from "./live.js";

const DEFAULT_TENANT = "default";

export function mount(root) {
  document.title = "Tenants & users · Aileron";
  const me = whoami() || {};
  const tenantsBody = h("div", {}, loading());
  const usersBody = h("div", {}, loading());
  const tokens = tokenSection({ path: "/platform/tokens", platform: true });
  root.append(h("section", { class: "page", "data-testid": "tenants-page" },
    h("div", { class: "page-head" }, h("h1", {}, "Tenants & users")),
    h("p", { class: "muted" }, "The teams sharing this Aileron and the people who sign in. A tenant's DAG files live in its own folder, ",
      h("code", {}, "dags/<tenant>/"), "; its Admins manage its members on its Members page."),
    h("section", { "aria-labelledby": "tenants-title" },
      h("div", { class: "page-head" },
        h("h2", { id: "tenants-title" }, "Tenants"),
        h("span", { class: "spacer" }),
        needs("platform", h("button", { type: "button", class: "btn btn-primary", "data-testid": "add-tenant", onclick: () => createTenant() }, "Create tenant"))),
      tenantsBody),
    h("section", { "aria-labelledby": "users-title" },
      h("div", { class: "page-head" },
        h("h2", { id: "users-title" }, "Users"),
        h("span", { class: "spacer" }),
        needs("platform", h("button", { type: "button", class: "btn btn-primary", "data-testid": "add-user", onclick: () => createUser() }, "Create user"))),
      usersBody),
    tokens.el));

  let tenants = [];

  /** The top bar's tenant switcher follows the tenants created and deleted. */
  function refreshAccount() {
    get("/me").then(showAccount).catch(() => {});
  }

  async function loadTenants() {
    try {
      const r = await get("/tenants");
      tenants = (r.tenants || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      renderTenants();
    } catch (e) {
      replace(tenantsBody, errorBox(e));
    }
  }

  function renderTenants() {
    actionTable(tenantsBody, tenants, { testid: "tenants-table", columns: ["Name", "Description", "Share of the executor", "Created"], none: "No tenants.", noneTestid: "empty-tenants" }, (t) => {
      const limitsBtn = needs("platform", h("button", {
        type: "button", class: "btn btn-small", "data-testid": `limits-tenant-${t.name}`,
        "aria-label": `Set the limits of tenant ${t.name}`, onclick: () => setLimits(t),
      }, "Limits"));
      const delBtn = needs("platform", h("button", {
        type: "button", class: "btn btn-small btn-danger-outline", "data-testid": `delete-tenant-${t.name}`,
        "aria-label": `Delete tenant ${t.name}`, onclick: () => deleteTenant(t),
      }, "Delete"));
      if (t.name === DEFAULT_TENANT) {
        delBtn.disabled = true;
        delBtn.title = "The default tenant cannot be deleted";
      }
      return h("tr", { "data-testid": `tenant-row-${t.name}` },
        h("td", {}, h("code", { "data-testid": `tenant-name-${t.name}` }, t.name)),
        h("td", {}, t.description || h("span", { class: "muted" }, "—")),
        h("td", { "data-testid": `tenant-share-${t.name}` }, shareText(t)),
        h("td", {}, time(t.created_at)),
        h("td", { class: "col-actions" }, limitsBtn, " ", delBtn));
    });
  }

  async function setLimits(t) {
    const MIB = 1024 * 1024;
    const shown = (v, unit = 1) => (v == null ? "" : String(v / unit));
    // Each quota: its field, the factor from what is typed to what is stored.
    const quotas = [
      ["max_running", 1], ["max_memory", MIB], ["cpu_per_hour", 1],
      ["max_active_runs", 1], ["execution_timeout", 1], ["memory_limit", MIB],
    ];
    const done = await formDialog({
      title: `Limits of ${t.name}`,
      testid: "tenant-limits-form",
      submitLabel: "Save",
      fields: [
        { name: "weight", label: "Weight", type: "number", value: String(t.weight), required: true, help: "Its share of executor slots when tenants compete, relative to the others' (1 to 1000)." },
        { name: "max_running", label: "Most tries running at once", type: "number", value: shown(t.max_running), help: "Across every executor and worker; empty for no cap." },
        { name: "max_memory", label: "Memory of its running tries together (MiB)", type: "number", value: shown(t.max_memory, MIB), help: "Per process; a try growing past it fails with the reason. Empty for none." },
        { name: "cpu_per_hour", label: "CPU budget per rolling hour (seconds)", type: "number", value: shown(t.cpu_per_hour), help: "Once spent, its new tries wait until the hour rolls. Empty for none." },
        { name: "max_active_runs", label: "Ceiling of a DAG's max_active_runs", type: "number", value: shown(t.max_active_runs), help: "A DAG asking for more is an import error. Empty for none." },
        { name: "execution_timeout", label: "Ceiling of a task's execution_timeout (seconds)", type: "number", value: shown(t.execution_timeout), help: "Also the timeout of tasks that set none. Empty for none." },
        { name: "memory_limit", label: "Ceiling of a task's memory_limit (MiB)", type: "number", value: shown(t.memory_limit, MIB), help: "Also the limit of tasks that set none. Empty for none." },
      ],
      submit: async (v) => {
        const body = {};
        const weight = Number(v.weight);
        if (!Number.isInteger(weight)) throw new Error("Weight must be a whole number.");
        if (weight !== t.weight) body.weight = weight;
        // Only what changed is sent: a limit another admin set meanwhile stays.
        for (const [field, unit] of quotas) {
          const text = String(v[field]).trim();
          const value = text === "" ? null : Math.round(Number(text) * unit);
          if (value !== null && !Number.isFinite(value)) throw new Error(`${field} must be a number, or empty for none.`);
          if (value !== (t[field] ?? null)) body[field] = value;
        }
        if (Object.keys(body).length) await patch(p`/tenants/${t.name}`, body);
        return true;
      },
    });
    if (done === true) {
      toast(`Saved the limits of ${t.name}`);
      loadTenants();
    }
  }

  /** The share and quotas of a tenant, in a line. */
  function shareText(t) {
    const parts = [`weight ${t.weight}`];
    if (t.max_running != null) parts.push(`at most ${t.max_running} running`);
    if (t.max_memory != null) parts.push(`${Math.round(t.max_memory / 1048576)} MiB memory`);
    if (t.cpu_per_hour != null) parts.push(`${t.cpu_per_hour} CPU s per hour`);
    return parts.join(", ");
  }

  async function createTenant() {
    const name = await formDialog({
      title: "Create a tenant",
      testid: "tenant-form",
      submitLabel: "Create",
      fields: [
        { name: "name", label: "Name", required: true, help: "1 to 63 ASCII letters, digits, - and _: also its folder under the DAGs and plugins folders." },
        { name: "description", label: "Description" },
      ],
      submit: async (v) => {
        const t = await post("/tenants", { name: v.name.trim(), description: v.description });
        return t.name;
      },
    });
    if (typeof name === "string") {
      toast(`Created tenant ${name}`);
      loadTenants();
      refreshAccount();
    }
  }

  async function deleteTenant(t) {
    const ok = await confirmDialog(`Delete tenant ${t.name}?`,
      `Its members, tokens, variables, connections and pools are deleted. Refused while it still has DAGs: remove dags/${t.name}/ first.`,
      { confirmLabel: "Delete", danger: true, testid: "delete-tenant-dialog" });
    if (!ok) return;
    try {
      await del(p`/tenants/${t.name}`);
      toast(`Deleted tenant ${t.name}`);
      refreshAccount();
    } catch (e) {
      toast(`Could not delete ${t.name}: ${e.detail || e.message}`, "error");
    }
    loadTenants();
    loadUsers();
  }

  let users = [];

  async function loadUsers() {
    try {
      const r = await get("/users");
      users = (r.users || []).slice().sort((a, b) => a.username.localeCompare(b.username));
      renderUsers();
    } catch (e) {
      replace(usersBody, errorBox(e));
    }
  }

  function renderUsers() {
    actionTable(usersBody, users, { testid: "users-table", columns: ["User", "Platform admin", "Roles", "Created"], none: "No users.", noneTestid: "empty-users" }, (u) => {
      const roles = Object.entries(u.roles || {});
      return h("tr", { "data-testid": `user-row-${u.username}`, "data-platform-admin": u.platform_admin ? "true" : "false" },
        h("td", {}, h("code", {}, u.username), u.username === me.name ? h("span", { class: "muted small" }, " (you)") : null),
        h("td", { "data-testid": `user-platform-${u.username}` }, u.platform_admin ? h("span", { class: "badge badge-info" }, "platform admin") : h("span", { class: "muted" }, "no")),
        h("td", { "data-testid": `user-roles-${u.username}` }, roles.length
          ? h("span", { class: "tags" }, roles.map(([t, r]) => h("span", { class: "tag tag-static", "data-testid": `user-role-${u.username}-${t}` }, `${t}: ${r}`)))
          : h("span", { class: "muted" }, "none")),
        h("td", {}, time(u.created_at)),
        h("td", { class: "col-actions" }, h("div", { class: "btn-group" },
          needs("platform", h("button", { type: "button", class: "btn btn-small", "data-testid": `set-password-${u.username}`, onclick: () => setPassword(u) }, "Set password")),
          needs("platform", h("button", {
            type: "button", class: "btn btn-small", "data-testid": `toggle-platform-${u.username}`, onclick: () => togglePlatform(u),
          }, u.platform_admin ? "Revoke platform admin" : "Make platform admin")),
          needs("platform", h("button", {
            type: "button", class: "btn btn-small btn-danger-outline", "data-testid": `delete-user-${u.username}`,
            "aria-label": `Delete user ${u.username}`, onclick: () => deleteUser(u),
          }, "Delete")))));
    });
  }

  async function createUser() {
    const username = await formDialog({
      title: "Create a user",
      testid: "user-form",
      submitLabel: "Create",
      fields: [
        { name: "username", label: "User name", required: true, help: "1 to 64 ASCII letters, digits, . _ - and @ (an e-mail address fits)." },
        { name: "password", label: "Password", type: "password", required: true, autocomplete: "new-password", help: "At least 8 characters." },
        { name: "platform_admin", label: "Platform admin (manages tenants, users and workers, acts as Admin in every tenant)", type: "checkbox" },
        { name: "tenant", label: "First role in tenant (optional)", type: "select", options: [["", "— none —"], ...tenants.map((t) => [t.name, t.name])], value: "" },
        { name: "role", label: "Role there", type: "select", options: ROLES.map((r) => [r, r]), value: "Viewer" },
      ],
      submit: async (v) => {
        const body = { username: v.username.trim(), password: v.password, platform_admin: v.platform_admin };
        if (v.tenant) body.roles = { [v.tenant]: v.role };
        const u = await post("/users", body);
        return u.username;
      },
    });
    if (typeof username === "string") {
      toast(`Created user ${username}`);
      loadUsers();
    }
  }

  async function setPassword(u) {
    const done = await formDialog({
      title: `Set the password of ${u.username}`,
      testid: "password-form",
      fields: [{ name: "password", label: "New password", type: "password", required: true, autocomplete: "new-password", help: "At least 8 characters. Every session of the user ends." }],
      submit: (v) => patch(p`/users/${u.username}`, { password: v.password }),
    });
    if (done) {
      toast(`Password of ${u.username} changed`);
      // Changing one's own password ends one's own session too.
      if (u.username === me.name) location.reload();
    }
  }

  async function togglePlatform(u) {
    const make = !u.platform_admin;
    const ok = await confirmDialog(make ? `Make ${u.username} a platform admin?` : `Revoke ${u.username}'s platform admin?`,
      make ? `${u.username} will manage tenants, users and workers, and act as Admin in every tenant.`
        : `${u.username} keeps only the roles held in each tenant.`,
      { confirmLabel: make ? "Make platform admin" : "Revoke", danger: !make, testid: "platform-admin-dialog" });
    if (!ok) return;
    try {
      await patch(p`/users/${u.username}`, { platform_admin: make });
      toast(make ? `${u.username} is now a platform admin` : `${u.username} is no longer a platform admin`);
      if (u.username === me.name) location.reload();
    } catch (e) {
      toast(`Could not change ${u.username}: ${e.detail || e.message}`, "error");
    }
    loadUsers();
  }

  async function deleteUser(u) {
    const ok = await confirmDialog(`Delete user ${u.username}?`, `Their roles go and their sessions stop working at once.`,
      { confirmLabel: "Delete", danger: true, testid: "delete-user-dialog" });
    if (!ok) return;
    try {
      await del(p`/users/${u.username}`);
      toast(`Deleted user ${u.username}`);
      if (u.username === me.name) location.reload();
    } catch (e) {
      toast(`Could not delete ${u.username}: ${e.detail || e.message}`, "error");
    }
    loadUsers();
  }

  loadTenants();
  loadUsers();
  tokens.load();
  watch({ dagId: null, refresh: () => {}, onEvent() {} });
  return { update() {}, destroy() {} };
}
