// Live updates. One EventSource on /api/v2/events (filtered to the DAG on screen)
// delivers `dag_run`, `task_instance` and `dags` events to the current view. If the
// stream cannot be opened or drops, the view is refreshed by polling every few
// seconds until the stream is back; even while live, a slow safety refresh catches
// anything a reconnect may have missed.

const POLL_MS = 3000;
const SAFETY_MS = 30000;
const EVENT_TYPES = ["dag_run", "task_instance", "dags", "resync"];

let source = null;
let sourceFilter; // the dag_id the open stream is filtered to ("" for all)
let handler = null; // {dagId, onEvent(type, data), refresh()}
let mode = "off";
let pollTimer = null;
let retryTimer = null;
let failures = 0;

function setMode(m) {
  mode = m;
  const el = document.getElementById("live-status");
  if (!el) return;
  el.dataset.mode = m;
  el.textContent = { live: "Live", polling: "Polling", connecting: "Connecting…", off: "" }[m] ?? m;
  el.title = {
    live: "State changes stream in from the server as they happen",
    polling: "The event stream is unavailable: refreshing every few seconds",
    connecting: "Opening the event stream",
  }[m] ?? "";
}

export function liveMode() {
  return mode;
}

function refreshNow() {
  if (handler && handler.refresh && document.visibilityState !== "hidden") {
    Promise.resolve(handler.refresh()).catch(() => {});
  }
}

function startPolling(ms) {
  stopPolling();
  pollTimer = setInterval(refreshNow, ms);
}

function stopPolling() {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
}

function closeSource() {
  if (source) source.close();
  source = null;
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = null;
}

function open(dagId) {
  closeSource();
  sourceFilter = dagId || "";
  setMode(mode === "polling" ? "polling" : "connecting");
  const url = "/api/v2/events" + (dagId ? `?dag_id=${encodeURIComponent(dagId)}` : "");
  let es;
  try {
    es = new EventSource(url);
  } catch {
    fallBack();
    return;
  }
  source = es;
  es.onopen = () => {
    if (source !== es) return;
    failures = 0;
    setMode("live");
    startPolling(SAFETY_MS);
    refreshNow(); // whatever happened while the stream was down
  };
  es.onerror = () => {
    if (source !== es) return;
    // The browser retries by itself while readyState is CONNECTING; a CLOSED
    // stream (an HTTP error, a missing endpoint) we reopen ourselves, backing off.
    fallBack();
    if (es.readyState === EventSource.CLOSED) {
      failures += 1;
      const delay = Math.min(30000, 2000 * 2 ** Math.min(failures, 4));
      retryTimer = setTimeout(() => {
        if (source === es) open(sourceFilter);
      }, delay);
    }
  };
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (ev) => {
      if (source !== es || !handler || !handler.onEvent) return;
      let data = {};
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (type === "resync") {
        // This client fell behind and missed events: read everything again.
        refreshNow();
        return;
      }
      if (handler.dagId && data.dag_id && data.dag_id !== handler.dagId) return;
      handler.onEvent(type, data);
    });
  }
}

function fallBack() {
  if (mode !== "polling") {
    setMode("polling");
    startPolling(POLL_MS);
  }
}

/** Makes `h` ({dagId, onEvent, refresh}) the receiver of live updates, replacing the
 *  previous one. The stream is reopened only when the DAG filter changes. */
export function watch(h) {
  handler = h;
  const filter = h.dagId || "";
  if (!source || filter !== sourceFilter) open(filter);
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refreshNow();
});
