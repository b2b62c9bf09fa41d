// operator(): describe(), and how execute() maps returns and throws onto the WIT
// outcome and task-error, checked both through a TestHost and on the raw WIT
// values a component hands to componentize-js.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Branch, Failed, Fatal, Reschedule, Skip, SkipDownstream, TaskError, operator, p } from '../index.js';
import { TestHost } from '../testing.js';

const returning = (fn, params) => operator({ name: 'probe', version: '0.1.0', params }, fn);

/** A host that only records log lines, to call execute() by hand. */
function bareHost() {
  const lines = [];
  const host = {
    log: (level, message) => lines.push([level, message]),
    xcomPush() {},
    xcomPull() {},
    variable() {},
    connection() {},
    httpWithConnection() {},
  };
  return { host, lines };
}

test('describe() gives the WIT operator-info with the params schema as JSON text', () => {
  const op = operator(
    {
      name: 'greet',
      version: '1.2.3',
      description: 'Says hello.',
      params: p.object({ name: p.string() }),
    },
    () => undefined,
  );
  assert.deepEqual(op.describe(), {
    name: 'greet',
    version: '1.2.3',
    description: 'Says hello.',
    paramsSchema: '{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}',
  });
  const bare = operator({ name: 'bare', version: '0.1.0' }, () => undefined);
  assert.equal(bare.describe().paramsSchema, '{"type":"object"}');
});

test('bad metadata is refused when the operator is declared', () => {
  assert.throws(() => operator({ name: 'Greet', version: '0.1.0' }, () => {}), /operator name must be lowercase/);
  assert.throws(() => operator({ name: 'greet', version: '1.0' }, () => {}), /semver/);
  assert.throws(() => operator({ name: 'greet', version: '0.1.0', params: p.string() }, () => {}), /p\.object/);
  assert.throws(() => operator({ name: 'greet', version: '0.1.0' }), /operator function/);
});

test('returned values and outcomes become the matching WIT outcome', async () => {
  const cases = [
    [undefined, { tag: 'success', val: undefined }],
    [null, { tag: 'success', val: 'null' }],
    [{ a: [1, 'b'] }, { tag: 'success', val: '{"a":[1,"b"]}' }],
    [new Skip('no data'), { tag: 'skip', val: 'no data' }],
    [new Branch('load'), { tag: 'branch', val: ['load'] }],
    [new Branch(['a', 'b']), { tag: 'branch', val: ['a', 'b'] }],
    [new Reschedule(1.5), { tag: 'reschedule', val: 2n }],
    [new SkipDownstream(), { tag: 'skip-downstream', val: 'direct' }],
    [new SkipDownstream({ all: true }), { tag: 'skip-downstream', val: 'all' }],
  ];
  for (const [value, wit] of cases) {
    const { host } = bareHost();
    assert.deepEqual(await returning(async () => value).execute(host, {}, '{}'), wit);
  }
});

test('the TestHost reports each outcome in a form tests compare easily', async () => {
  const host = new TestHost();
  assert.deepEqual(await host.run(returning(() => 'hi')), { status: 'success', value: 'hi' });
  assert.deepEqual(await host.run(returning(() => undefined)), { status: 'success' });
  assert.deepEqual(await host.run(returning(() => new Skip('later'))), { status: 'skip', reason: 'later' });
  assert.deepEqual(await host.run(returning(() => new Branch(['x']))), { status: 'branch', taskIds: ['x'] });
  assert.deepEqual(await host.run(returning(() => new Reschedule(30))), { status: 'reschedule', seconds: 30 });
  assert.deepEqual(await host.run(returning(() => new SkipDownstream({ all: true }))), {
    status: 'skip-downstream',
    all: true,
  });
});

test('Failed is retried, Fatal is not, and causes are chained into the reason', async () => {
  const host = new TestHost();
  assert.deepEqual(await host.run(returning(() => { throw new Failed('not ready'); })), {
    status: 'failed',
    reason: 'not ready',
  });
  assert.deepEqual(await host.run(returning(async () => { throw new Fatal('bad input'); })), {
    status: 'fatal',
    reason: 'bad input',
  });
  const cause = new TypeError('NetworkError when attempting to fetch resource');
  assert.deepEqual(await host.run(returning(() => { throw new Failed('could not fetch', { cause }); })), {
    status: 'failed',
    reason: 'could not fetch: TypeError: NetworkError when attempting to fetch resource',
  });
  class NotReady extends Failed {}
  const error = new NotReady('wait');
  assert.equal(error.name, 'NotReady');
  assert.ok(error instanceof TaskError);
  assert.deepEqual(await host.run(returning(() => { throw error; })), { status: 'failed', reason: 'wait' });
  assert.deepEqual(host.logs, [], 'a task error is its own report: no stack is logged');
  assert.throws(() => new TaskError('x'), /Failed or a Fatal/);
});

test('any other throw fails the try with its name and message, the stack in the log', async () => {
  const host = new TestHost();
  function parseRows() {
    throw new RangeError('row 3 is out of range');
  }
  const result = await host.run(returning(() => parseRows()));
  assert.deepEqual(result, { status: 'failed', reason: 'RangeError: row 3 is out of range' });
  const [line] = host.logs;
  assert.equal(line.level, 'error');
  assert.match(line.message, /^uncaught RangeError: row 3 is out of range\n {4}at parseRows/);

  assert.deepEqual(await host.run(returning(() => { throw 'boom'; })), { status: 'failed', reason: 'thrown string: boom' });
  assert.deepEqual(await host.run(returning(() => { throw { code: 7 }; })), {
    status: 'failed',
    reason: 'thrown object: {"code":7}',
  });
  assert.deepEqual(await host.run(returning(() => { throw undefined; })), { status: 'failed', reason: 'thrown undefined' });
});

test('execute rejects with nothing but a WIT task-error, even for hostile values', async () => {
  const hostile = new Proxy({}, { get() { throw new Error('no peeking'); } });
  const { host } = bareHost();
  const rejected = await returning(() => { throw hostile; }).execute(host, {}, '{}').catch((e) => e);
  assert.equal(rejected.tag, 'failed');
  assert.equal(typeof rejected.val, 'string');
  const noHost = await returning(() => 1).execute({}, {}, '{}').catch((e) => e);
  assert.equal(noHost.tag, 'failed');
});

test('a return value that is not JSON fails the try', async () => {
  const host = new TestHost();
  const cyclic = {};
  cyclic.self = cyclic;
  const result = await host.run(returning(() => cyclic));
  assert.equal(result.status, 'failed');
  assert.match(result.reason, /^the return value is not JSON: TypeError: /);
  assert.deepEqual(await host.run(returning(() => () => 1)), {
    status: 'failed',
    reason: 'the return value (a function) is not JSON',
  });
});

test('invalid params end the try fatal before the function runs', async () => {
  let ran = false;
  const op = returning(() => { ran = true; }, p.object({ count: p.integer() }));
  const host = new TestHost();
  assert.deepEqual(await host.run(op, { count: 'three' }), {
    status: 'fatal',
    reason: 'invalid params at `count`: expected integer, got string',
  });
  assert.deepEqual(await host.run(op, '{"count": 1'), {
    status: 'fatal',
    reason: `invalid params: not JSON: ${(() => { try { JSON.parse('{"count": 1'); } catch (e) { return e.message; } })()}`,
  });
  assert.equal(ran, false);
});

test('outcome constructors refuse what the WIT cannot carry', () => {
  assert.throws(() => new Reschedule(-1), RangeError);
  assert.throws(() => new Reschedule(Infinity), RangeError);
  assert.throws(() => new Branch([1]), /task ids as strings/);
});

test('warmUp() runs the SDK side of a try but never the operator, and leaves it working', async () => {
  let calls = 0;
  const op = operator(
    { name: 'counted', version: '0.1.0', params: p.object({ n: p.integer() }) },
    (_ctx, { n }) => {
      calls += 1;
      return n;
    },
  );
  op.warmUp();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(calls, 0);
  const { host } = bareHost();
  assert.deepEqual(await op.execute(host, { taskId: 't', tryNumber: 1 }, '{"n": 2}'), { tag: 'success', val: '2' });
  assert.equal(calls, 1);
});
