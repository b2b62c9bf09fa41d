// `operator(meta, fn)`: turns an author's function into the two calls of the WIT
// world, `describe()` and `execute(host, info, paramsJson)`. It does not import
// the WIT module itself: the build's entry passes the imports in as `host`, and
// a TestHost passes its own, so tests run the very same validation and mapping.

import { TaskContext } from './context.js';
import { HOST_FUNCTIONS } from './host.js';
import { Fatal, toWitError, toWitOutcome } from './outcome.js';
import { ANY_OBJECT, ParamsError, Schema } from './schema.js';

// What DAG files may write as `operator = "..."`, as the Rust SDK checks it.
const NAME = /^[a-z0-9._-]+$/;
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/**
 * Declares the operator a component exports.
 *
 * @param {{ name: string, version: string, description?: string, params?: Schema }} meta
 * @param {(ctx: TaskContext, params: any) => unknown} fn
 */
export function operator(meta, fn) {
  const { name, version, description = '', params = ANY_OBJECT } = meta ?? {};
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new TypeError(`operator name must be lowercase ASCII letters, digits, \`-\`, \`_\` or \`.\`, got ${JSON.stringify(name)}`);
  }
  if (typeof version !== 'string' || !SEMVER.test(version)) {
    throw new TypeError(`operator version must be semver such as "0.1.0", got ${JSON.stringify(version)}`);
  }
  if (!(params instanceof Schema) || params.jsonSchema.type !== 'object') {
    throw new TypeError('operator params must be a p.object(...) (or p.record(...)) schema');
  }
  if (typeof fn !== 'function') throw new TypeError('operator takes the operator function as its second argument');

  const paramsSchema = params.jsonSchema;
  const info = Object.freeze({
    name,
    version,
    description: String(description),
    paramsSchema: JSON.stringify(paramsSchema),
  });

  return Object.freeze({
    name,
    version,
    description: info.description,
    paramsSchema,

    /** The WIT `operator-info`. */
    describe() {
      return { ...info };
    },

    /** One try (see `runTry`). */
    execute(host, task, paramsJson) {
      return runTry(fn, params, host, task, paramsJson);
    },

    /**
     * Runs the SDK's side of a try a few times with a no-op in place of the
     * operator: the build's entry calls it while the component is built, so the
     * engine's inline caches are filled in the snapshot rather than by every
     * try (each try copies the memory pages it writes). The operator is never
     * called; its params schema parses `{}`, a failure being expected.
     */
    warmUp() {
      const idleHost = Object.fromEntries(HOST_FUNCTIONS.map((f) => [f, () => undefined]));
      const task = { dagId: '', runId: '', taskId: '', mapIndex: undefined, tryNumber: 1, logicalDate: '', dataIntervalStart: '', dataIntervalEnd: '' };
      for (let i = 0; i < WARM_UP_TRIES; i++) {
        runTry(idle, ANY_OBJECT, idleHost, task, '{}').catch(() => {});
        try {
          parseParams(params, '{}');
        } catch {
          // Required params are missing from `{}`: expected.
        }
      }
    },
  });
}

/** How many times `warmUp` runs the SDK's side of a try. */
const WARM_UP_TRIES = 20;

function idle() {}

/**
 * One try: resolves to the WIT `outcome`, or rejects with the WIT `task-error`
 * variant itself, which is how componentize-js returns the `err` of an exported
 * `result`. Nothing else ever escapes: an uncaught value would trap the
 * component ("wasm `unreachable`").
 */
async function runTry(fn, params, host, task, paramsJson) {
  try {
    const missing = HOST_FUNCTIONS.filter((f) => typeof host?.[f] !== 'function');
    if (missing.length > 0) throw new TypeError(`the host lacks ${missing.join(', ')}`);
    const ctx = new TaskContext(host, task);
    const result = await fn(ctx, parseParams(params, paramsJson));
    return toWitOutcome(result);
  } catch (error) {
    throw witError(error, host);
  }
}

/** The params JSON checked against the schema; a mismatch is fatal (a retry gets the same params). */
function parseParams(schema, json) {
  let value;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new Fatal(`invalid params: not JSON: ${error.message}`);
  }
  try {
    return schema.parse(value);
  } catch (error) {
    if (error instanceof ParamsError) throw new Fatal(error.message);
    throw error;
  }
}

function witError(error, host) {
  try {
    return toWitError(error, (line) => host.log('error', line));
  } catch (reportError) {
    // Reporting itself failed (a hostile thrown value, a broken host): the try
    // still ends as failed rather than trapping.
    return { tag: 'failed', val: `an error was thrown and could not be reported: ${String(reportError)}` };
  }
}
