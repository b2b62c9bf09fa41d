// aileron-sdk/testing: `TestHost`, an in-memory stand-in for the Aileron host, so
// operators are tested with plain `node --test`, without wasm or a running
// Aileron. It plays the WIT imports the way the real host answers them and runs
// an operator through its own `execute`, the same validation and mapping a
// component runs.

import { RETURN_VALUE_KEY } from './src/context.js';
import { LEVELS } from './src/host.js';

/** The try a run stands for unless the test says otherwise. */
export const DEFAULT_TASK = Object.freeze({
  dagId: 'test_dag',
  runId: 'test_run',
  taskId: 'test_task',
  tryNumber: 1,
  logicalDate: '2026-01-01T00:00:00Z',
  dataIntervalStart: '2026-01-01T00:00:00Z',
  dataIntervalEnd: '2026-01-01T00:00:00Z',
});

// The host's caps on one XCom value, so a test meets the refusal a try would.
const XCOM_VALUE_LIMIT = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a host import throws on `err`, as componentize-js does: the reason in `payload`. */
function refusal(reason) {
  const error = new Error(reason);
  error.payload = reason;
  return error;
}

// What the engine's fetch rejects with whatever the cause, host refusal included.
function networkError() {
  return new TypeError('NetworkError when attempting to fetch resource');
}

function xcomKey(taskId, key) {
  return `${taskId}\u0000${key}`;
}

export class TestHost {
  #variables;
  #connections;
  #xcoms = new Map();
  #logs = [];
  #pushed = [];
  #servers;
  #fetchHandler;
  #allowHosts;
  #requests = [];
  #fetches = [];

  /**
   * @param {object} [options]
   * @param {Record<string, string>} [options.variables]
   * @param {Record<string, object>} [options.connections] as Aileron stores them
   *   (`conn_type`, `host`, `port`, `login`, `password`, `schema`, `extra`), plus
   *   `exposed: true` to hand the password to the operator; otherwise it is host-held
   * @param {Record<string, Record<string, unknown>>} [options.xcoms] upstream XComs: task id, then key, then value
   * @param {Record<string, Function>} [options.http] per connection id, what answers `httpWithConnection`
   * @param {Function} [options.fetch] what answers `fetch` to an allowed host
   * @param {string[]} [options.allowHosts] the task's allow_hosts
   */
  constructor({ variables = {}, connections = {}, xcoms = {}, http = {}, fetch, allowHosts = [] } = {}) {
    this.#variables = new Map(Object.entries(variables));
    this.#connections = new Map(Object.entries(connections));
    for (const [taskId, values] of Object.entries(xcoms)) {
      for (const [key, value] of Object.entries(values)) this.#xcoms.set(xcomKey(taskId, key), JSON.stringify(value));
    }
    this.#servers = new Map(Object.entries(http));
    this.#fetchHandler = fetch;
    this.#allowHosts = allowHosts.map(parsePattern);
  }

  /** Every line logged so far: `{ level, message }`, the SDK's and the operator's. */
  get logs() {
    return this.#logs.map((line) => ({ ...line }));
  }

  /** Every XCom pushed by a run so far, return values included: `{ taskId, key, value }`. */
  get pushed() {
    return this.#pushed.map((entry) => ({ ...entry, value: structuredClone(entry.value) }));
  }

  /** The XCom `key` (default `return_value`) of `taskId`, seeded or pushed, or undefined. */
  xcom(taskId, key = RETURN_VALUE_KEY) {
    const json = this.#xcoms.get(xcomKey(taskId, key));
    return json === undefined ? undefined : JSON.parse(json);
  }

  /** Every request sent through a connection: `{ connId, method, url, headers, body }` (body as text). */
  get requests() {
    return this.#requests.map((request) => ({ ...request }));
  }

  /** Every `fetch` that reached the stub's handler: `{ method, url, headers, body }` (body as text). */
  get fetches() {
    return this.#fetches.map((request) => ({ ...request }));
  }

  /**
   * Runs `op` for one try, exactly as the component's `execute` export does,
   * and returns how it ended:
   * `{ status: 'success', value? }`, `{ status: 'skip', reason }`,
   * `{ status: 'branch', taskIds }`, `{ status: 'reschedule', seconds }`,
   * `{ status: 'skip-downstream', all }`, or `{ status: 'failed' | 'fatal', reason }`.
   *
   * @param {import('./index.js').Operator} op
   * @param {object | string} [params] an object, or the params JSON itself
   * @param {Partial<import('./index.js').TaskInfo>} [task]
   */
  async run(op, params = {}, task = {}) {
    const info = { ...DEFAULT_TASK, ...task };
    const json = typeof params === 'string' ? params : JSON.stringify(params);
    let outcome;
    try {
      outcome = await op.execute(this.#hostFor(info.taskId), info, json);
    } catch (error) {
      if (isWitTaskError(error)) return { status: error.tag, reason: error.val };
      throw new Error('execute rejected with something other than a WIT task-error', { cause: error });
    }
    const result = fromWitOutcome(outcome);
    if (result.status === 'success' && result.value !== undefined) {
      // The host stores a return value as the task's `return_value` XCom.
      this.#store(info.taskId, RETURN_VALUE_KEY, outcome.val);
    }
    return result;
  }

  #store(taskId, key, json) {
    this.#xcoms.set(xcomKey(taskId, key), json);
    this.#pushed.push({ taskId, key, value: JSON.parse(json) });
  }

  #log(level, message) {
    this.#logs.push({ level, message });
  }

  /** The WIT imports for one try of `taskId`: its pushes land under it. */
  #hostFor(taskId) {
    return {
      log: (level, message) => {
        if (!LEVELS.includes(level)) throw new TypeError(`not a WIT level: ${String(level)}`);
        this.#log(level, expectString(message, 'log message'));
      },
      xcomPush: (key, value) => {
        expectString(key, 'XCom key');
        expectString(value, 'XCom value');
        const bytes = encoder.encode(value).length;
        if (bytes > XCOM_VALUE_LIMIT) {
          throw refusal(`XCom value \`${key}\` is ${bytes} bytes, over the limit of ${XCOM_VALUE_LIMIT} bytes`);
        }
        this.#store(taskId, key, value);
      },
      xcomPull: (fromTask, key) => this.#xcoms.get(xcomKey(fromTask, key ?? RETURN_VALUE_KEY)),
      variable: (key) => this.#variables.get(key),
      connection: (connId) => JSON.stringify(this.#connectionAsSeen(connId)),
      httpWithConnection: (connId, request) => this.#sendWithConnection(connId, request),
      fetch: (input, init) => this.#fetch(input, init),
    };
  }

  // What the operator sees of a connection: the password only if exposed.
  #connectionAsSeen(connId) {
    const stored = this.#connections.get(connId);
    if (stored === undefined) throw refusal(`connection \`${connId}\` is not defined`);
    const { exposed = false, ...fields } = stored;
    return exposed ? { ...fields, host_held: false } : { ...fields, password: null, host_held: true };
  }

  async #sendWithConnection(connId, request) {
    const body = Uint8Array.from(request.body);
    this.#requests.push({
      connId,
      method: request.method,
      url: request.url,
      headers: request.headers.map(([name, value]) => [name, value]),
      body: decoder.decode(body),
    });
    const server = this.#servers.get(connId);
    if (server === undefined) {
      throw refusal(this.#connections.has(connId) ? `no test server answers connection \`${connId}\`` : `connection \`${connId}\` is not defined`);
    }
    let answer;
    try {
      answer = await server({ method: request.method, url: request.url, headers: request.headers, body: decoder.decode(body) });
    } catch (error) {
      // A handler that throws plays the host refusing the request.
      throw refusal(error instanceof Error ? error.message : String(error));
    }
    const response = answerParts(answer);
    return { status: response.status, headers: response.headers, body: response.body };
  }

  async #fetch(input, init) {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const scheme = url.protocol.slice(0, -1);
    if (scheme !== 'http' && scheme !== 'https') {
      this.#log('warn', `outbound HTTP refused: scheme \`${scheme}\` (only http and https are allowed)`);
      throw networkError();
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
    if (!this.#allowHosts.some((pattern) => pattern.matches(host, port))) {
      const granted =
        this.#allowHosts.length === 0
          ? 'the task has no allow_hosts, so it may make no HTTP request'
          : `allow_hosts is [${this.#allowHosts.map((pattern) => pattern.text).join(', ')}]`;
      const shown = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      this.#log('warn', `outbound HTTP to ${shown} denied: not in the task's allow_hosts (${granted})`);
      throw networkError();
    }
    const seen = {
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(request.headers),
      body: await request.text(),
    };
    this.#fetches.push(seen);
    if (this.#fetchHandler === undefined) {
      this.#log('warn', `TestHost: no fetch handler answers ${request.method} ${request.url}`);
      throw networkError();
    }
    const answer = await this.#fetchHandler({ ...seen });
    if (answer instanceof Response) return answer;
    const { status, headers, body } = answerParts(answer);
    return new Response(body.length > 0 ? body : null, { status, headers });
  }
}

function expectString(value, what) {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string, got ${typeof value}`);
  return value;
}

/**
 * A test server's answer: `{ status = 200, headers, body }` with `body` a
 * string or bytes, or `json` a value sent as JSON.
 */
function answerParts(answer = {}) {
  const { status = 200, headers = {}, body, json } = answer;
  const pairs = (Array.isArray(headers) ? headers : Object.entries(headers)).map(([name, value]) => [
    String(name).toLowerCase(),
    String(value),
  ]);
  let bytes = new Uint8Array();
  if (json !== undefined) {
    bytes = encoder.encode(JSON.stringify(json));
    if (!pairs.some(([name]) => name === 'content-type')) pairs.push(['content-type', 'application/json']);
  } else if (typeof body === 'string') {
    bytes = encoder.encode(body);
  } else if (body instanceof Uint8Array) {
    bytes = body;
  }
  return { status, headers: pairs, body: bytes };
}

/**
 * An allow_hosts entry, matched as the host matches it: `example.com` is that
 * host on any port, `*.example.com` every subdomain but not the domain itself,
 * `host:8443` that port only.
 */
function parsePattern(text) {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(text.trim().toLowerCase());
  if (!match) throw new TypeError(`not an allow_hosts entry: ${JSON.stringify(text)}`);
  const host = match[1].replace(/^\[(.*)\]$/, '$1');
  const port = match[2] === undefined ? undefined : Number(match[2]);
  return {
    text,
    matches(candidate, candidatePort) {
      if (port !== undefined && port !== candidatePort) return false;
      if (host.startsWith('*.')) return candidate.endsWith(host.slice(1));
      return candidate === host;
    },
  };
}

function isWitTaskError(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    (value.tag === 'failed' || value.tag === 'fatal') &&
    typeof value.val === 'string'
  );
}

/** The outcome as a test reads it, checking the shape componentize-js needs. */
function fromWitOutcome(outcome) {
  const { tag, val } = outcome ?? {};
  const bad = (what) => new Error(`execute resolved to a malformed WIT outcome (${what}): ${String(tag)}`);
  switch (tag) {
    case 'success':
      if (val === undefined) return { status: 'success' };
      if (typeof val !== 'string') throw bad('success takes JSON text');
      return { status: 'success', value: JSON.parse(val) };
    case 'skip':
      if (typeof val !== 'string') throw bad('skip takes a reason');
      return { status: 'skip', reason: val };
    case 'branch':
      if (!Array.isArray(val) || !val.every((id) => typeof id === 'string')) throw bad('branch takes task ids');
      return { status: 'branch', taskIds: [...val] };
    case 'reschedule':
      // A u64 crosses the component boundary as a BigInt; a Number would trap.
      if (typeof val !== 'bigint' || val < 0n) throw bad('reschedule takes a BigInt');
      return { status: 'reschedule', seconds: Number(val) };
    case 'skip-downstream':
      if (val !== 'all' && val !== 'direct') throw bad('skip-downstream takes all or direct');
      return { status: 'skip-downstream', all: val === 'all' };
    default:
      throw bad('unknown tag');
  }
}
