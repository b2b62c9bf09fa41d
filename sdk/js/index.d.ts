// Types of aileron-sdk, written by hand beside index.js. The params schema
// builder `p` carries each param's TypeScript type, so `operator()` infers the
// type of `params` from the same calls that produce the JSON Schema.

// ---------------------------------------------------------------- params schema

/** A JSON Schema object, as `describe()` publishes it. */
export type JsonSchema = { [keyword: string]: unknown };

/**
 * One node of a params schema: its JSON Schema, and (for the type checker only)
 * the type of the value it accepts and whether its property may be left out.
 */
export interface Schema<T, Optional extends boolean = false> {
  /** The JSON Schema of this node (a fresh copy). */
  readonly jsonSchema: JsonSchema;
  /** Whether its property may be left out (and is then absent from `params`). */
  readonly isOptional: Optional;
  /** Whether a missing property takes a default (and is then always present). */
  readonly hasDefault: boolean;
  /** The same schema, for a property that may be left out. */
  optional(): Schema<T, true>;
  /** Checks a value; returns it with defaults filled in, or throws a ParamsError. */
  parse(value: unknown): T;
  /** Type-level only: never set at run time. */
  readonly __type?: T;
}

/** The type of the value a schema accepts. */
export type Infer<S> = S extends Schema<infer T, boolean> ? T : never;

/** The properties of a `p.object`. */
export type Shape = { readonly [key: string]: Schema<unknown, boolean> };

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The object type a shape describes: optional properties marked `?`. */
export type InferShape<S extends Shape> = Simplify<
  { -readonly [K in keyof S as S[K] extends Schema<unknown, true> ? never : K]: Infer<S[K]> } & {
    -readonly [K in keyof S as S[K] extends Schema<unknown, true> ? K : never]?: Infer<S[K]>;
  }
>;

/** Options every schema takes. */
export interface BaseOptions<T> {
  /** Shown to DAG authors in the operator's schema. */
  description?: string;
  /**
   * The value a missing property takes. A property with a default may be left
   * out of the DAG but is always present in `params`.
   */
  default?: T;
}

export interface StringOptions extends BaseOptions<string> {
  /** In characters (code points), as the host counts them. */
  minLength?: number;
  maxLength?: number;
  /** A regular expression (Unicode mode) the whole value must match somewhere. */
  pattern?: string;
}

export interface NumberOptions extends BaseOptions<number> {
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}

export interface ArrayOptions<T> extends BaseOptions<T[]> {
  minItems?: number;
  maxItems?: number;
}

type Literal = string | number | boolean | null;

/** The params schema builder. */
export declare const p: {
  string(options?: StringOptions): Schema<string>;
  /** A whole number (JSON Schema `integer`). */
  integer(options?: NumberOptions): Schema<number>;
  number(options?: NumberOptions): Schema<number>;
  boolean(options?: BaseOptions<boolean>): Schema<boolean>;
  /** One of the given values: `p.enum(["csv", "json"])`. */
  enum<const V extends readonly [Literal, ...Literal[]]>(values: V, options?: BaseOptions<V[number]>): Schema<V[number]>;
  /** Any JSON value, unchecked. */
  any(options?: BaseOptions<unknown>): Schema<unknown>;
  array<T>(items: Schema<T, boolean>, options?: ArrayOptions<T>): Schema<T[]>;
  /** An object with any keys, whose values all match `values`. */
  record<T>(values: Schema<T, boolean>, options?: BaseOptions<Record<string, T>>): Schema<Record<string, T>>;
  /** An object with these properties; unknown keys are refused. */
  object<S extends Shape>(shape: S, options?: BaseOptions<InferShape<S>>): Schema<InferShape<S>>;
};

/** Params that do not match the schema; the try ends fatal with its message. */
export declare class ParamsError extends Error {
  /** Where, such as `inner.count` or `tags[2]`; empty at the root. */
  readonly path: string;
}

// ---------------------------------------------------------------- outcomes and errors

/** The task ends `skipped`, with the reason. */
export declare class Skip {
  constructor(reason: string);
  readonly reason: string;
}

/**
 * Only these direct downstream tasks run; the other direct downstream tasks are
 * skipped. An empty list skips them all.
 */
export declare class Branch {
  constructor(taskIds: string | Iterable<string>);
  readonly taskIds: readonly string[];
}

/** Sensor: not ready yet; poke again after this many seconds (rounded up). */
export declare class Reschedule {
  constructor(seconds: number);
  readonly seconds: number;
}

/**
 * The task succeeds and skips its downstream tasks (Airflow's
 * ShortCircuitOperator): all of them whatever their trigger rules with
 * `all: true`, else only the direct ones, whose trigger rules decide the rest.
 */
export declare class SkipDownstream {
  constructor(options?: { all?: boolean });
  readonly all: boolean;
}

/** The base of `Failed` and `Fatal`, for `instanceof`; not thrown itself. */
export declare abstract class TaskError extends Error {
  constructor(message: string, options?: { cause?: unknown });
}

/**
 * Throw to fail the try; it is retried while the task has retries left. The
 * reason is the message followed by its causes' `Name: message`.
 */
export declare class Failed extends TaskError {}

/** Throw to fail the TaskInstance at once, without retrying. */
export declare class Fatal extends TaskError {}

/**
 * What an operator function may return: an outcome, or any JSON value (the
 * task's `return_value` XCom; `undefined` for none).
 */
export type OperatorResult = Skip | Branch | Reschedule | SkipDownstream | unknown;

// ---------------------------------------------------------------- the context

/** The WIT `level`. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

/** The TaskInstance try being executed (the WIT `task-info`). */
export interface TaskInfo {
  dagId: string;
  runId: string;
  taskId: string;
  /** Index within a mapped task; undefined for a task that is not mapped. */
  mapIndex?: number;
  /** 1 for the first try, growing by one with every retry. */
  tryNumber: number;
  /** RFC 3339 timestamps. */
  logicalDate: string;
  dataIntervalStart: string;
  dataIntervalEnd: string;
}

/** A connection of the DAG's tenant, with Airflow's fields in camelCase. */
export interface Connection {
  readonly connType: string;
  readonly host: string | null;
  readonly port: number | null;
  readonly login: string | null;
  /** Null when the connection is host-held; not enumerable, so not printed. */
  readonly password: string | null;
  readonly schema: string | null;
  /** Always an object (parsed if stored as JSON text). */
  readonly extra: Record<string, unknown>;
  /** The host keeps the secret: use `ctx.httpWithConnection`. */
  readonly hostHeld: boolean;
}

/** A request: a URL string, or an object. */
export type HttpRequest =
  | string
  | {
      /** `GET` by default. */
      method?: string;
      /** Through a connection, a path (`/v1/items?page=2`) or an absolute URL on its origin. */
      url: string;
      headers?: Record<string, string> | ReadonlyArray<readonly [string, string]>;
      body?: string | Uint8Array;
      /** A value sent as JSON, with `content-type: application/json`. */
      json?: unknown;
    };

/** A response whose body has been read whole. */
export declare class HttpResponse {
  private constructor();
  readonly status: number;
  /** Names in lower case, in order. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Uint8Array;
  /** Whether the status is 2xx. */
  readonly ok: boolean;
  /** The first value of header `name` (any case). */
  header(name: string): string | undefined;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

/** Why a request got no response (refused, or the server was not reached). */
export declare class HttpError extends Error {}
/** Why an XCom could not be pushed or pulled. */
export declare class XComError extends Error {}
/** Why a connection could not be read. */
export declare class ConnectionError extends Error {}

/** The XCom key of a task's return value: `return_value`. */
export declare const RETURN_VALUE_KEY: 'return_value';

/** Everything an operator may reach outside its own memory during one try. */
export declare class TaskContext {
  private constructor();
  /** The TaskInstance try being executed. */
  readonly task: Readonly<TaskInfo>;
  /** Appends a line to this try's log. */
  log(level: Level, message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Stores `value` as JSON under `key` for this TaskInstance; throws XComError if refused. */
  xcomPush(key: string, value: unknown): void;
  /**
   * The XCom `key` (default `return_value`) of `taskId` in this DagRun, or
   * undefined. A mapped task's value is a list, one element per map index.
   */
  xcomPull<T = unknown>(taskId: string, key?: string): T | undefined;
  /** The variable `key` of this DAG's tenant, or undefined. */
  variable(key: string): string | undefined;
  /** The connection `connId`; throws ConnectionError if there is none. */
  connection(connId: string): Connection;
  /**
   * Sends `request` with connection `connId`'s credential, added by the host and
   * never seen by the operator; throws HttpError if it was not sent or not answered.
   */
  httpWithConnection(connId: string, request: HttpRequest): Promise<HttpResponse>;
  /**
   * Sends `request` with `fetch` (only hosts in the task's allow_hosts are let
   * through) and reads the whole body; throws HttpError when nothing answered.
   */
  http(request: HttpRequest): Promise<HttpResponse>;
  /** `fetch` itself, for the full Fetch API; a TestHost stubs it. */
  readonly fetch: typeof fetch;
}

// ---------------------------------------------------------------- the operator

/** The WIT `http-request` as the host functions take it. */
export interface WitHttpRequest {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

/** The WIT `http-response` as the host functions return it. */
export interface WitHttpResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

/**
 * The `aileron:operator/context` imports, as componentize-js presents them: a
 * refused call throws an Error whose `payload` is the reason. A TestHost is one;
 * `fetch` is the TestHost's stub (the component uses the engine's).
 */
export interface Host {
  log(level: Level, message: string): void;
  xcomPush(key: string, value: string): void;
  xcomPull(taskId: string, key: string | undefined): string | undefined;
  variable(key: string): string | undefined;
  connection(connId: string): string;
  /** The WIT import answers at once; a test host may answer with a promise. */
  httpWithConnection(connId: string, request: WitHttpRequest): WitHttpResponse | Promise<WitHttpResponse>;
  fetch?: typeof fetch;
}

/** The WIT `operator-info`. */
export interface OperatorInfo {
  name: string;
  version: string;
  description: string;
  /** JSON text. */
  paramsSchema: string;
}

/** The WIT `outcome`. */
export type WitOutcome =
  | { tag: 'success'; val: string | undefined }
  | { tag: 'skip'; val: string }
  | { tag: 'branch'; val: string[] }
  | { tag: 'reschedule'; val: bigint }
  | { tag: 'skip-downstream'; val: 'direct' | 'all' };

/** The WIT `task-error`: what `execute` rejects with. */
export type WitTaskError = { tag: 'failed'; val: string } | { tag: 'fatal'; val: string };

/** An operator: what a component's entry exports, and what a TestHost runs. */
export interface Operator<P = unknown> {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  /** The params JSON Schema. */
  readonly paramsSchema: JsonSchema;
  describe(): OperatorInfo;
  /** Resolves to the WIT outcome; rejects with a WitTaskError, never anything else. */
  execute(host: Host, info: TaskInfo, paramsJson: string): Promise<WitOutcome>;
  /** Runs the SDK's side of a try with a no-op, while a component is built (the build entry calls it). */
  warmUp(): void;
  /** Type-level only: the params type. */
  readonly __params?: P;
}

export interface OperatorMeta<S> {
  /** What DAG files write as `operator = "..."`: lowercase letters, digits, `-`, `_`, `.`. */
  name: string;
  /** Semver, which DAGs may pin as `"name@0.1.0"`. */
  version: string;
  description?: string;
  /** The params schema: `p.object({...})`. Without one, params are any object. */
  params?: S;
}

/**
 * Declares the operator a component exports:
 *
 * ```ts
 * export default operator(
 *   { name: 'greet', version: '0.1.0', params: p.object({ name: p.string() }) },
 *   async (ctx, params) => `Hello, ${params.name}`,
 * );
 * ```
 *
 * Params are checked against the schema before `fn` runs (a mismatch ends the
 * try fatal, naming the path). `fn` returns a value or an outcome; it throws
 * `Failed` (retried) or `Fatal` (not); anything else it throws fails the try
 * with `Name: message`, its stack in the log.
 */
export declare function operator<P extends Record<string, unknown> = Record<string, unknown>>(
  meta: OperatorMeta<Schema<P, boolean>>,
  fn: (ctx: TaskContext, params: P) => OperatorResult | Promise<OperatorResult>,
): Operator<P>;
