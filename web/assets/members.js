// The tenant's "Members & tokens" page (tenant Admins): who may act in the
// current tenant and with which role (grant, change, revoke), and the tenant's API
// tokens for service accounts (create, revoke). A token's secret is shown once,
// right after it is made, and never again. `tokenSection` is shared with the
// platform page, for the platform's tokens.

import { get, put, post, del, p } from "./api.js";
import { h, replace, errorBox, loading, actionTable, toast, modal, confirmDialog, formDialog, time } from "./dom.js";
import { whoami, needs, ROLES } from "./session.js";
import { watch } from "./live.js";

const ROLE_HELP = {
  Viewer: "reads DAGs, runs, logs, pools and the audit log",
  User: "also triggers, clears, marks and deletes runs, backfills, pauses DAGs",
  Op: "also changes variables, connections and pools",
  Admin: "also manages members and API tokens",
};

const roleOptions = () => ROLES.map((r) => [r, `${r}: ${ROLE_HELP[r]}`]);

export function mount(root) {
  const me = whoami() || {};
  document.title = "Members & tokens · Aileron";
  const membersBody = h("div", {}, loading());
  const tokens = tokenSection({ path: "/tokens", platform: false });
  root.append(h("section", { class: "page", "data-testid": "members-page" },
    h("div", { class: "page-head" },
      h("h1", {}, "Members & tokens"),
      h("span", { class: "muted", "data-testid": "members-tenant" }, `tenant ${me.tenant || ""}`)),
    h("p", { class: "muted" }, "Who may act in this tenant, and the API tokens its service accounts use. Each role can do what the ones before it can."),
    h("section", { "aria-labelledby": "members-title" },
      h("div", { class: "page-head" },
        h("h2", { id: "members-title" }, "Members"),
        h("span", { class: "spacer" }),
        needs("Admin", h("button", { type: "button", class: "btn btn-primary", "data-testid": "add-member", onclick: () => grant() }, "Add member"))),
      membersBody),
    tokens.el));

  let members = null;

  async function load() {
    try {
      const r = await get("/members");
      members = (r.members || []).slice().sort((a, b) => a.username.localeCompare(b.username));
      render();
    } catch (e) {
      replace(membersBody, errorBox(e));
    }
  }

  function render() {
    actionTable(membersBody, members, { testid: "members-table", columns: ["User", "Role"], none: "No members yet.", noneTestid: "empty-members" }, row);
  }

  function row(m) {
    const select = needs("Admin", h("select", {
      "data-testid": `member-role-${m.username}`,
      "aria-label": `Role of ${m.username}`,
      onchange: () => change(m, select),
    }, ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r))));
    return h("tr", { "data-testid": `member-row-${m.username}`, "data-role": m.role },
      h("td", {}, h("code", {}, m.username), m.username === me.name ? h("span", { class: "muted small" }, " (you)") : null),
      h("td", {}, select),
      h("td", { class: "col-actions" },
        needs("Admin", h("button", {
          type: "button", class: "btn btn-small btn-danger-outline", "data-testid": `remove-member-${m.username}`,
          "aria-label": `Remove ${m.username} from this tenant`, onclick: () => revoke(m),
        }, "Remove"))));
  }

  /** After changing their own role the caller's pages and buttons change too. */
  function afterSelf(username) {
    if (username === me.name) location.reload();
  }

  async function change(m, select) {
    const role = select.value;
    select.disabled = true;
    try {
      await put(p`/members/${m.username}`, { role });
      toast(`${m.username} is now ${role}`);
      afterSelf(m.username);
    } catch (e) {
      toast(`Could not change ${m.username}'s role: ${e.detail || e.message}`, "error");
    }
    select.disabled = false;
    load();
  }

  async function grant() {
    const done = await formDialog({
      title: "Add a member",
      testid: "member-form",
      submitLabel: "Grant role",
      fields: [
        { name: "username", label: "User name", required: true, help: "An existing user (platform admins create users)." },
        { name: "role", label: "Role", type: "select", options: roleOptions(), value: "Viewer" },
      ],
      submit: async (v) => {
        const username = v.username.trim();
        await put(p`/members/${username}`, { role: v.role });
        return username;
      },
    });
    if (typeof done === "string") {
      toast(`${done} may now act here`);
      afterSelf(done);
      load();
    }
  }

  async function revoke(m) {
    const ok = await confirmDialog(`Remove ${m.username}?`, `${m.username} loses the ${m.role} role in this tenant at once.`, {
      confirmLabel: "Remove", danger: true, testid: "remove-member-dialog",
    });
    if (!ok) return;
    try {
      await del(p`/members/${m.username}`);
      toast(`Removed ${m.username}`);
      afterSelf(m.username);
    } catch (e) {
      toast(`Could not remove ${m.username}: ${e.detail || e.message}`, "error");
    }
    load();
  }

  load();
  tokens.load();
  watch({ dagId: null, refresh: () => {}, onEvent() {} });
  return { update() {}, destroy() {} };
}

/** A token's state: `revoked`, `expired` or `active`. */
function tokenState(t) {
  if (t.revoked_at) return "revoked";
  if (t.expires_at && Date.parse(t.expires_at) <= Date.now()) return "expired";
  return "active";
}

const TOKEN_BADGE = { active: "state-success", revoked: "badge-muted", expired: "state-upstream_failed" };

/** The API tokens at `path` (`/tokens` of the tenant, or `/platform/tokens`):
 *  {el, load}. Elements: `add-token`, `token-form`, `tokens-table`,
 *  `token-row-<id>` (`data-state`), `token-state-<id>`, `revoke-token-<id>`,
 *  `empty-tokens`, and after a creation `token-secret-dialog` with
 *  `token-secret`, `copy-token` and `done-button`. */
export function tokenSection({ path, platform }) {
  const need = platform ? "platform" : "Admin";
  const body = h("div", {}, loading());
  const el = h("section", { "aria-labelledby": "tokens-title", "data-testid": "tokens-section" },
    h("div", { class: "page-head" },
      h("h2", { id: "tokens-title" }, platform ? "Platform API tokens" : "API tokens"),
      h("span", { class: "spacer" }),
      needs(need, h("button", { type: "button", class: "btn btn-primary", "data-testid": "add-token", onclick: () => create() }, "Create token"))),
    h("p", { class: "muted small" }, platform
      ? "Platform tokens act as a platform admin in every tenant (for Prometheus, automation across tenants)."
      : "Tokens act in this tenant with their role. Send one as ", h("code", {}, "Authorization: Bearer …"), "."),
    body);

  async function load() {
    try {
      const r = await get(path);
      const tokens = (r.tokens || []).slice().sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
      render(tokens);
    } catch (e) {
      replace(body, errorBox(e));
    }
  }

  function render(tokens) {
    actionTable(body, tokens, { testid: "tokens-table", columns: ["Name", "Role", "Created by", "Created", "Expires", "Last used", "State"], none: "No API tokens yet.", noneTestid: "empty-tokens" }, (t) => {
      const state = tokenState(t);
      return h("tr", { "data-testid": `token-row-${t.token_id}`, "data-state": state, "data-name": t.name },
        h("td", {}, h("code", { "data-testid": `token-name-${t.token_id}`, title: `id ${t.token_id}` }, t.name)),
        h("td", {}, platform ? "platform admin" : t.role),
        h("td", {}, t.created_by),
        h("td", {}, time(t.created_at)),
        h("td", {}, t.expires_at ? time(t.expires_at) : h("span", { class: "muted" }, "never")),
        h("td", {}, t.last_used_at ? time(t.last_used_at) : h("span", { class: "muted" }, "never")),
        h("td", {}, h("span", { class: ["badge", TOKEN_BADGE[state]], "data-testid": `token-state-${t.token_id}`, "data-state": state },
          state, state === "revoked" ? h("span", { class: "sr-only" }, ` ${t.revoked_at}`) : null)),
        h("td", { class: "col-actions" }, state === "revoked" ? null : needs(need, h("button", {
          type: "button", class: "btn btn-small btn-danger-outline", "data-testid": `revoke-token-${t.token_id}`,
          "aria-label": `Revoke token ${t.name}`, onclick: () => revoke(t),
        }, "Revoke"))));
    });
  }

  async function create() {
    const fields = [
      { name: "name", label: "Name", required: true, help: "The service account's name, shown in lists and the audit log." },
    ];
    if (!platform) fields.push({ name: "role", label: "Role", type: "select", options: roleOptions(), value: "Viewer" });
    fields.push({ name: "expires_at", label: "Expires (optional, your local time)", type: "datetime-local", help: "Never, if left empty." });
    const created = await formDialog({
      title: platform ? "Create a platform token" : "Create an API token",
      testid: "token-form",
      submitLabel: "Create",
      fields,
      submit: async (v) => {
        const payload = { name: v.name.trim() };
        if (!platform) payload.role = v.role;
        if (v.expires_at) {
          const d = new Date(v.expires_at);
          if (Number.isNaN(d.getTime())) throw new Error("The expiry is not a valid date.");
          payload.expires_at = d.toISOString();
        }
        return post(path, payload);
      },
    });
    if (created && typeof created === "object" && created.token) {
      load();
      await showSecret(created);
    }
  }

  async function revoke(t) {
    const ok = await confirmDialog(`Revoke token ${t.name}?`, "Requests with it are refused at once. It stays listed as revoked.", {
      confirmLabel: "Revoke", danger: true, testid: "revoke-token-dialog",
    });
    if (!ok) return;
    try {
      await del(`${path}/${encodeURIComponent(t.token_id)}`);
      toast(`Revoked token ${t.name}`);
    } catch (e) {
      toast(`Could not revoke ${t.name}: ${e.detail || e.message}`, "error");
    }
    load();
  }

  return { el, load };
}

/** The one time a token's text is shown: with a copy button and a warning. */
function showSecret(created) {
  return modal({
    title: `Token ${created.name} created`,
    testid: "token-secret-dialog",
    build: (close) => {
      const secret = h("pre", { class: "json token-secret", "data-testid": "token-secret", tabindex: "0" }, created.token);
      const copy = h("button", {
        type: "button", class: "btn", "data-testid": "copy-token",
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(created.token);
            toast("Token copied");
          } catch {
            // No clipboard (an insecure origin, a refused permission): select it.
            const range = document.createRange();
            range.selectNodeContents(secret);
            const sel = window.getSelection();
            sel.removeAllRanges();
            sel.addRange(range);
            toast("Press Ctrl+C (⌘C) to copy the selected token");
          }
        },
      }, "Copy");
      return h("div", {},
        h("p", { class: "alert alert-warn", role: "note" }, "Copy this token now: it is shown only this once and cannot be read again. Send it as ",
          h("code", {}, "Authorization: Bearer <token>"), "."),
        secret,
        h("div", { class: "actions" },
          copy,
          h("button", { type: "button", class: "btn btn-primary", "data-testid": "done-button", onclick: () => close(true) }, "Done")));
    },
  });
}
