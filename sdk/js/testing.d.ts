// Types of aileron-sdk/testing, written by hand beside testing.js.

import type { Level, Operator, TaskInfo } from './index.js';

/** The try a run stands for unless the test says otherwise. */
export declare const DEFAULT_TASK: Readonly<TaskInfo>;

/** A connection as Aileron stores it, plus whether its owner exposed the password. */
export interface TestConnection {
  conn_type: string;
  host?: string | null;
  port?: number | null;
  login?: string | null;
  password?: string | null;
  schema?: string | null;
  extra?: Record<string, unknown> | string | null;
  /** Hand the password to the operator; otherwise it is host-held (null, `host_held: true`). */
  exposed?: boolean;
}

/** A request as a test server sees it. */
export interface TestRequest {
  method: string;
  url: string;
  /** `httpWithConnection`: pairs in order; `fetch`: an object of lower-case names. */
  headers: Array<[string, string]> | Record<string, string>;
  /** The body as text. */
  body: string;
}

/** What a test server answers: `status` 200 unless given; `json` is sent as JSON. */
export interface TestAnswer {
  status?: number;
  headers?: Record<string, string> | Array<[string, string]>;
  body?: string | Uint8Array;
  json?: unknown;
}

export interface TestHostOptions {
  variables?: Record<string, string>;
  connections?: Record<string, TestConnection>;
  /** Upstream XComs: task id, then key, then value. */
  xcoms?: Record<string, Record<string, unknown>>;
  /**
   * Per connection id, what answers `ctx.httpWithConnection`; throwing plays
   * the host refusing the request, with the error's message as the reason.
   */
  http?: Record<string, (request: TestRequest & { headers: Array<[string, string]> }) => TestAnswer | Promise<TestAnswer>>;
  /** What answers `ctx.fetch` and `ctx.http` for hosts in `allowHosts`. */
  fetch?: (
    request: TestRequest & { headers: Record<string, string> },
  ) => TestAnswer | Response | Promise<TestAnswer | Response>;
  /** The task's allow_hosts: other hosts are refused as the host refuses them. */
  allowHosts?: string[];
}

/** How a run ended. */
export type RunResult =
  | { status: 'success'; value?: unknown }
  | { status: 'skip'; reason: string }
  | { status: 'branch'; taskIds: string[] }
  | { status: 'reschedule'; seconds: number }
  | { status: 'skip-downstream'; all: boolean }
  | { status: 'failed'; reason: string }
  | { status: 'fatal'; reason: string };

/** An in-memory stand-in for the Aileron host. */
export declare class TestHost {
  constructor(options?: TestHostOptions);
  /** Every line logged so far, the SDK's and the operator's. */
  readonly logs: Array<{ level: Level; message: string }>;
  /** Every XCom pushed by a run so far, return values included. */
  readonly pushed: Array<{ taskId: string; key: string; value: unknown }>;
  /** Every request sent through a connection. */
  readonly requests: Array<{ connId: string; method: string; url: string; headers: Array<[string, string]>; body: string }>;
  /** Every `fetch` that reached the stub's handler. */
  readonly fetches: Array<{ method: string; url: string; headers: Record<string, string>; body: string }>;
  /** The XCom `key` (default `return_value`) of `taskId`, seeded or pushed. */
  xcom(taskId: string, key?: string): unknown;
  /**
   * Runs `op` for one try through its own `execute`, with params as an object
   * or as the JSON text itself, and returns how it ended.
   */
  run(op: Operator<unknown>, params?: Record<string, unknown> | string, task?: Partial<TaskInfo>): Promise<RunResult>;
}
