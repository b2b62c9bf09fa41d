// Outbound HTTP for operators: the request shape both `ctx.http` (plain
// `fetch`, which the host lets through to the task's allow_hosts) and
// `ctx.httpWithConnection` (the WIT `http-with-connection`, where the host adds a
// connection's credential) take, and the whole-body `HttpResponse` both return.

import { hostReason } from './host.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why a request got no response. Uncaught, it fails the try (retried). */
export class HttpError extends Error {
  /**
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = 'HttpError';
  }
}

/**
 * A response whose body has been read whole. Through a connection, a 3xx comes
 * back as it is (the host follows no redirect).
 */
export class HttpResponse {
  /**
   * @param {number} status
   * @param {Array<[string, string]>} headers names in lower case, in order
   * @param {Uint8Array} body
   */
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
    Object.freeze(this);
  }

  /** Whether the status is 2xx. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The first value of header `name` (compared without case), or undefined. */
  header(name) {
    const wanted = name.toLowerCase();
    return this.headers.find(([n]) => n === wanted)?.[1];
  }

  /** The body as UTF-8 text (invalid bytes replaced). */
  text() {
    return decoder.decode(this.body);
  }

  /** The body parsed as JSON; throws a SyntaxError if it is not JSON. */
  json() {
    return JSON.parse(this.text());
  }
}

/**
 * The request an author wrote, as one shape: a URL string, or an object with
 * `url` and optional `method`, `headers` (an object or a list of pairs), `body`
 * (a string or bytes) or `json` (a value sent as JSON).
 *
 * @returns {{ method: string, url: string, headers: Array<[string, string]>, body: Uint8Array }}
 */
export function normalizeRequest(request) {
  const spec = typeof request === 'string' ? { url: request } : request;
  if (spec === null || typeof spec !== 'object' || typeof spec.url !== 'string') {
    throw new TypeError('an HTTP request is a URL string or an object with a `url` string');
  }
  const headers = headerPairs(spec.headers);
  let body = new Uint8Array();
  if (spec.json !== undefined) {
    if (spec.body !== undefined) throw new TypeError('an HTTP request takes `body` or `json`, not both');
    body = encoder.encode(JSON.stringify(spec.json));
    if (!headers.some(([name]) => name === 'content-type')) headers.push(['content-type', 'application/json']);
  } else if (typeof spec.body === 'string') {
    body = encoder.encode(spec.body);
  } else if (spec.body instanceof Uint8Array) {
    body = spec.body;
  } else if (spec.body !== undefined) {
    throw new TypeError('an HTTP request body is a string or a Uint8Array (use `json` for a value)');
  }
  return { method: (spec.method ?? 'GET').toUpperCase(), url: spec.url, headers, body };
}

function headerPairs(headers) {
  if (headers === undefined) return [];
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  return pairs.map(([name, value]) => [String(name).toLowerCase(), String(value)]);
}

/**
 * Sends `request` with `fetch` and reads the whole body.
 *
 * A refused or unanswered request reaches the guest only as fetch's TypeError
 * ("NetworkError when attempting to fetch resource"): the host writes its
 * reason (such as a host missing from allow_hosts) to the try's log, so the
 * error points there.
 */
export async function sendWithFetch(fetchFn, request) {
  const { method, url, headers, body } = normalizeRequest(request);
  let response;
  try {
    response = await fetchFn(url, {
      method,
      headers,
      body: body.length > 0 ? body : undefined,
    });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new HttpError(
      `${method} ${url} got no response (${why}); the host refuses hosts missing from the task's ` +
        `allow_hosts, and private addresses, and says why in the try's log`,
      { cause: error },
    );
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  const pairs = [];
  response.headers.forEach((value, name) => pairs.push([name.toLowerCase(), value]));
  return new HttpResponse(response.status, pairs, bytes);
}

/**
 * Sends `request` through the WIT `http-with-connection`: the host adds the
 * connection's credential and sends it only to the connection's own origin.
 */
export async function sendWithConnection(host, connId, request) {
  const wit = normalizeRequest(request);
  let response;
  try {
    // The WIT import answers at once; a TestHost's handler may take a promise.
    response = await host.httpWithConnection(connId, wit);
  } catch (error) {
    throw new HttpError(`HTTP request with connection \`${connId}\` not done: ${hostReason(error)}`);
  }
  const headers = response.headers.map(([name, value]) => [name.toLowerCase(), value]);
  const body = response.body instanceof Uint8Array ? response.body : Uint8Array.from(response.body);
  return new HttpResponse(response.status, headers, body);
}
