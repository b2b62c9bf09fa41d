// `TaskContext`: the TaskInstance try an operator runs for, and the host services
// scoped to that try (log, XCom, variables, connections, outbound HTTP), over
// whatever host it is given: the WIT imports in a component, a TestHost in tests.

import { LEVELS, hostReason } from './host.js';
import { sendWithConnection, sendWithFetch } from './http.js';

/** The XCom key a task's return value is stored under, as in Airflow. */
export const RETURN_VALUE_KEY = 'return_value';

/** Why an XCom could not be pushed or pulled. Uncaught, it fails the try. */
export class XComError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'XComError';
  }
}

/** Why a connection could not be read. Uncaught, it fails the try. */
export class ConnectionError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'ConnectionError';
  }
}

export class TaskContext {
  #host;
  #fetch;

  /**
   * @param {import('../index.js').Host} host
   * @param {import('../index.js').TaskInfo} task
   */
  constructor(host, task) {
    this.#host = host;
    // The component has no `fetch` in its host (the WIT has none): it uses the
    // engine's, which goes out through wasi:http. A TestHost brings a stub. Either
    // is called as a plain function, whatever `this` the caller had.
    this.#fetch = host.fetch
      ? (input, init) => host.fetch(input, init)
      : (input, init) => globalThis.fetch(input, init);
    this.task = Object.freeze({ ...task });
    Object.freeze(this);
  }

  /** Appends `message` to this try's log at `level`. */
  log(level, message) {
    if (!LEVELS.includes(level)) {
      throw new TypeError(`log level must be one of ${LEVELS.join(', ')}, not ${String(level)}`);
    }
    this.#host.log(level, String(message));
  }

  debug(message) {
    this.log('debug', message);
  }

  info(message) {
    this.log('info', message);
  }

  warn(message) {
    this.log('warn', message);
  }

  error(message) {
    this.log('error', message);
  }

  /**
   * Stores `value` as JSON under `key` for this TaskInstance. The return value
   * is pushed by the host as `return_value`; this is for other keys.
   */
  xcomPush(key, value) {
    let json;
    try {
      json = JSON.stringify(value);
    } catch (error) {
      throw new XComError(`could not encode XCom \`${key}\` as JSON: ${error.message}`, { cause: error });
    }
    if (json === undefined) throw new XComError(`could not encode XCom \`${key}\` as JSON: a ${typeof value} is not JSON`);
    try {
      this.#host.xcomPush(key, json);
    } catch (error) {
      throw new XComError(`the host refused XCom \`${key}\`: ${hostReason(error)}`);
    }
  }

  /**
   * The XCom `key` (default `return_value`) of `taskId` in the same DagRun, or
   * undefined when there is none. A mapped task's value is a list with one
   * element per map index.
   */
  xcomPull(taskId, key = RETURN_VALUE_KEY) {
    const json = this.#host.xcomPull(taskId, key);
    if (json === undefined) return undefined;
    try {
      return JSON.parse(json);
    } catch (error) {
      throw new XComError(`XCom \`${key}\` of task \`${taskId}\` is not JSON: ${error.message}`, { cause: error });
    }
  }

  /** The variable `key` of this DAG's tenant, or undefined. */
  variable(key) {
    return this.#host.variable(key);
  }

  /**
   * The connection `connId` of this DAG's tenant. Unless its owner marked it
   * exposed, `password` is null and `hostHeld` true: use `httpWithConnection`.
   */
  connection(connId) {
    let json;
    try {
      json = this.#host.connection(connId);
    } catch (error) {
      throw new ConnectionError(`connection \`${connId}\` is not available: ${hostReason(error)}`);
    }
    return toConnection(connId, JSON.parse(json));
  }

  /**
   * Sends `request` with the credential of connection `connId`, added by the
   * host; `url` is a path on the connection's origin or an absolute URL on it.
   */
  async httpWithConnection(connId, request) {
    return sendWithConnection(this.#host, connId, request);
  }

  /** Sends `request` to a host in the task's allow_hosts and reads the whole body. */
  async http(request) {
    return sendWithFetch(this.#fetch, request);
  }

  /** The `fetch` to use for streaming or the full Fetch API: stubbed by a TestHost. */
  get fetch() {
    return this.#fetch;
  }
}

/**
 * A connection as the operator sees it, with camelCase names. `extra` is always
 * an object (Airflow may store it as JSON text). `password` is not enumerable,
 * so logging or serializing a connection does not print it.
 */
function toConnection(connId, raw) {
  const connection = {
    connType: raw.conn_type ?? '',
    host: raw.host ?? null,
    port: raw.port ?? null,
    login: raw.login ?? null,
    schema: raw.schema ?? null,
    extra: extraObject(connId, raw.extra),
    hostHeld: raw.host_held === true,
  };
  Object.defineProperty(connection, 'password', { value: raw.password ?? null, enumerable: false });
  return Object.freeze(connection);
}

function extraObject(connId, extra) {
  if (extra === undefined || extra === null) return {};
  if (typeof extra === 'string') {
    if (extra.trim() === '') return {};
    try {
      const parsed = JSON.parse(extra);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed;
    } catch {
      // Reported below with the other shapes that are not an object.
    }
  } else if (typeof extra === 'object' && !Array.isArray(extra)) {
    return extra;
  }
  throw new ConnectionError(`connection \`${connId}\`: \`extra\` is not a JSON object`);
}
