// Hash routing: `#/dags/example_etl/grid?run=…&task=…`. Every view is a deep link,
// and the server only ever serves `/`.

/** Parses the current location hash into {segments, params, path}. */
export function current() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  const segments = path.split("/").filter(Boolean).map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  return { segments, params: new URLSearchParams(query), path };
}

/** `href(["dags", id, "grid"], {run})` → `#/dags/<id>/grid?run=…`. */
export function href(segments, params) {
  const path = segments.map((s) => encodeURIComponent(s)).join("/");
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const qs = q.toString();
  return `#/${path}${qs ? "?" + qs : ""}`;
}

/** Goes to a route; `replace` keeps the history entry (filters, selections). */
export function navigate(segments, params, { replace = false } = {}) {
  const target = href(segments, params);
  if (target === location.hash) return;
  if (replace) {
    history.replaceState(null, "", target);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = target;
  }
}

/** The current route with some query parameters changed (null removes one). */
export function withParams(changes, { replace = false } = {}) {
  const { segments, params } = current();
  const next = Object.fromEntries(params.entries());
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") delete next[k];
    else next[k] = String(v);
  }
  navigate(segments, next, { replace });
}
