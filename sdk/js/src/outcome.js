// How an operator says a try ended: the outcomes it returns (`Skip`, `Branch`,
// `Reschedule`, `SkipDownstream`; any other value is success) and the errors it
// throws (`Failed`, `Fatal`), and their translation into the WIT `outcome` and
// `task-error` variants in the shape componentize-js expects.

/** The task ends `skipped`, with the reason. */
export class Skip {
  /** @param {string} reason */
  constructor(reason) {
    this.reason = String(reason);
    Object.freeze(this);
  }
}

/**
 * Only these direct downstream tasks run; the other direct downstream tasks are
 * skipped. An empty list skips them all. Takes one task id or a list.
 */
export class Branch {
  /** @param {string | Iterable<string>} taskIds */
  constructor(taskIds) {
    const ids = typeof taskIds === 'string' ? [taskIds] : [...taskIds];
    for (const id of ids) {
      if (typeof id !== 'string') throw new TypeError(`Branch takes task ids as strings, not ${typeof id}`);
    }
    this.taskIds = Object.freeze(ids);
    Object.freeze(this);
  }
}

/**
 * Sensor: not ready yet; poke again after this many seconds. A fraction of a
 * second is rounded up, so a short delay still waits rather than spinning.
 */
export class Reschedule {
  /** @param {number} seconds */
  constructor(seconds) {
    if (typeof seconds !== 'number' || !(seconds >= 0) || !Number.isFinite(seconds)) {
      throw new RangeError(`Reschedule needs a finite delay of 0 s or more, not ${String(seconds)}`);
    }
    this.seconds = Math.ceil(seconds);
    Object.freeze(this);
  }
}

/**
 * The task succeeds and short-circuits its downstream tasks (Airflow's
 * ShortCircuitOperator): every task downstream whatever its trigger rule with
 * `all: true`, else only the direct ones, whose trigger rules decide the rest.
 */
export class SkipDownstream {
  /** @param {{ all?: boolean }} [options] */
  constructor({ all = false } = {}) {
    this.all = Boolean(all);
    Object.freeze(this);
  }
}

/**
 * An error that ends the try with its message (and causes) as the reason: the
 * common base of `Failed` and `Fatal`, for `instanceof` checks.
 */
export class TaskError extends Error {
  /**
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(message, options) {
    if (new.target === TaskError) throw new TypeError('throw a Failed or a Fatal, not a TaskError');
    super(String(message), options);
    // The subclass's own name (the build keeps class names), so an author's
    // `class NotReady extends Failed {}` reads as NotReady in logs.
    this.name = new.target.name;
  }
}

/** Throw to fail the try; it is retried while the task has retries left. */
export class Failed extends TaskError {}

/**
 * Throw to fail the TaskInstance at once, without retrying: for errors a retry
 * cannot fix, such as invalid input.
 */
export class Fatal extends TaskError {}

/**
 * The WIT `outcome` for what an operator function returned.
 * @param {unknown} result
 */
export function toWitOutcome(result) {
  if (result instanceof Skip) return { tag: 'skip', val: result.reason };
  if (result instanceof Branch) return { tag: 'branch', val: [...result.taskIds] };
  // `reschedule` is a u64, which componentize-js passes as a BigInt.
  if (result instanceof Reschedule) return { tag: 'reschedule', val: BigInt(result.seconds) };
  if (result instanceof SkipDownstream) return { tag: 'skip-downstream', val: result.all ? 'all' : 'direct' };
  if (result === undefined) return { tag: 'success', val: undefined };
  let json;
  try {
    json = JSON.stringify(result);
  } catch (error) {
    throw new Failed(`the return value is not JSON: ${describeError(error)}`);
  }
  if (json === undefined) throw new Failed(`the return value (a ${typeof result}) is not JSON`);
  return { tag: 'success', val: json };
}

/**
 * The WIT `task-error` for what an operator function threw. `Failed` and
 * `Fatal` carry their own reason; anything else is a bug or an unexpected
 * condition: the try fails (and may be retried) with `Name: message`, and the
 * stack goes to the log through `log` so the author can find where.
 *
 * @param {unknown} error
 * @param {(message: string) => void} log writes one line at error level
 */
export function toWitError(error, log) {
  if (error instanceof Fatal) return { tag: 'fatal', val: reasonOf(error) };
  if (error instanceof Failed) return { tag: 'failed', val: reasonOf(error) };
  log(stackReport(error));
  return { tag: 'failed', val: describeError(error) };
}

/** `Name: message` of an Error, or what else was thrown. */
export function describeError(error) {
  if (error instanceof Error) return error.message ? `${error.name}: ${error.message}` : error.name;
  if (typeof error === 'string') return `thrown string: ${error}`;
  if (error === undefined || error === null) return `thrown ${error}`;
  let text;
  try {
    text = JSON.stringify(error);
  } catch {
    // A value JSON cannot show (a cycle, a BigInt) is described by String below.
  }
  return `thrown ${typeof error}: ${text ?? String(error)}`;
}

// A task error's message, then its causes' `Name: message`, as the Rust SDK
// chains an error's sources: "could not fetch: TypeError: NetworkError ...".
function reasonOf(error) {
  let reason = error.message;
  for (let cause = error.cause, depth = 0; cause !== undefined && depth < 8; cause = cause?.cause, depth++) {
    reason += `: ${describeError(cause)}`;
    if (!(cause instanceof Error)) break;
  }
  return reason;
}

// The lines that locate an unexpected error: its name and message, its stack
// frames, and those of its causes.
function stackReport(error) {
  const lines = [`uncaught ${describeError(error)}`];
  for (let cause = error, depth = 0; cause instanceof Error && depth < 8; cause = cause.cause, depth++) {
    if (depth > 0) lines.push(`caused by ${describeError(cause)}`);
    lines.push(...framesOf(cause));
  }
  return lines.join('\n');
}

function framesOf(error) {
  if (typeof error.stack !== 'string') return [];
  // V8 (node --test) starts the stack with `Name: message`; SpiderMonkey (the
  // component) lists frames only. Either way only the frames are kept.
  const header = String(error);
  const stack = error.stack.startsWith(header) ? error.stack.slice(header.length) : error.stack;
  return stack
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => `    ${line}`);
}
