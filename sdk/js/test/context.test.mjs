// The context's host services through a TestHost: log, XCom, variables,
// connections (host-held passwords) and requests through a connection.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConnectionError, HttpError, XComError, operator } from '../index.js';
import { TestHost } from '../testing.js';

/** An operator whose function is the test's, with any params. */
const probe = (fn) => operator({ name: 'probe', version: '0.1.0' }, fn);

/** Runs `fn` in a try and returns what it returned, failing the test if the try failed. */
async function within(host, fn, task) {
  let value;
  const result = await host.run(probe(async (ctx) => { value = await fn(ctx); }), {}, task);
  assert.deepEqual(result, { status: 'success' }, JSON.stringify(host.logs));
  return value;
}

test('log lines keep their level, in order', async () => {
  const host = new TestHost();
  await within(host, (ctx) => {
    ctx.debug('d');
    ctx.info('i');
    ctx.warn('w');
    ctx.error('e');
    ctx.log('info', 42);
    assert.throws(() => ctx.log('fatal', 'x'), /log level must be one of debug, info, warn, error/);
  });
  assert.deepEqual(host.logs, [
    { level: 'debug', message: 'd' },
    { level: 'info', message: 'i' },
    { level: 'warn', message: 'w' },
    { level: 'error', message: 'e' },
    { level: 'info', message: '42' },
  ]);
});

test('the task info is the try the host runs', async () => {
  const host = new TestHost();
  const task = await within(host, (ctx) => ctx.task, { taskId: 'load', tryNumber: 2, mapIndex: 3 });
  assert.equal(task.taskId, 'load');
  assert.equal(task.tryNumber, 2);
  assert.equal(task.mapIndex, 3);
  assert.equal(task.dagId, 'test_dag');
});

test('XComs are pulled from upstream tasks and pushed under the running task', async () => {
  const host = new TestHost({ xcoms: { extract: { return_value: { rows: 3 }, other: 'x' } } });
  const pulled = await within(
    host,
    (ctx) => {
      ctx.xcomPush('summary', { ok: true });
      return [ctx.xcomPull('extract'), ctx.xcomPull('extract', 'other'), ctx.xcomPull('missing')];
    },
    { taskId: 'report' },
  );
  assert.deepEqual(pulled, [{ rows: 3 }, 'x', undefined]);
  assert.deepEqual(host.xcom('report', 'summary'), { ok: true });
  assert.deepEqual(host.pushed, [{ taskId: 'report', key: 'summary', value: { ok: true } }]);
});

test('a return value is stored as the return_value XCom, as the host does', async () => {
  const host = new TestHost();
  await host.run(probe(() => [1, 2]), {}, { taskId: 'list' });
  assert.deepEqual(host.xcom('list'), [1, 2]);
});

test('XCom pushes the host refuses or JSON cannot carry throw XComError', async () => {
  const host = new TestHost();
  await within(host, (ctx) => {
    assert.throws(
      () => ctx.xcomPush('big', 'x'.repeat(70_000)),
      (error) =>
        error instanceof XComError &&
        error.message === 'the host refused XCom `big`: XCom value `big` is 70002 bytes, over the limit of 65536 bytes',
    );
    assert.throws(() => ctx.xcomPush('n', 10n), /could not encode XCom `n` as JSON/);
    assert.throws(() => ctx.xcomPush('u', undefined), /a undefined is not JSON/);
  });
  const result = await host.run(probe((ctx) => ctx.xcomPush('big', 'x'.repeat(70_000))));
  assert.equal(result.status, 'failed');
  assert.match(result.reason, /^XComError: the host refused XCom `big`/);
});

test('variables are read, or undefined', async () => {
  const host = new TestHost({ variables: { region: 'eu' } });
  assert.deepEqual(await within(host, (ctx) => [ctx.variable('region'), ctx.variable('nope')]), ['eu', undefined]);
});

test('a host-held connection hides its password; an exposed one shows it', async () => {
  const host = new TestHost({
    connections: {
      crm: { conn_type: 'http', host: 'crm.example.com', login: 'bot', password: 's3cret', extra: '{"auth_type": "bearer"}' },
      db: { conn_type: 'postgres', host: 'db', port: 5432, password: 'pw', exposed: true },
    },
  });
  const [crm, db] = await within(host, (ctx) => [ctx.connection('crm'), ctx.connection('db')]);
  assert.equal(crm.connType, 'http');
  assert.equal(crm.password, null);
  assert.equal(crm.hostHeld, true);
  assert.deepEqual(crm.extra, { auth_type: 'bearer' });
  assert.equal(db.password, 'pw');
  assert.equal(db.port, 5432);
  assert.equal(db.hostHeld, false);
  assert.ok(!JSON.stringify(db).includes('pw'), 'the password is not serialized');
  await within(host, (ctx) => {
    assert.throws(
      () => ctx.connection('nope'),
      (error) => error instanceof ConnectionError && error.message === 'connection `nope` is not available: connection `nope` is not defined',
    );
  });
});

test('requests through a connection reach its test server, which sees no secret', async () => {
  const host = new TestHost({
    connections: { crm: { conn_type: 'http', host: 'crm.example.com', password: 's3cret' } },
    http: {
      crm: (request) => ({ status: 201, json: { path: request.url, got: JSON.parse(request.body) } }),
    },
  });
  const response = await within(host, (ctx) =>
    ctx.httpWithConnection('crm', { method: 'post', url: '/v1/contacts', json: { name: 'Ada' } }),
  );
  assert.equal(response.status, 201);
  assert.ok(response.ok);
  assert.equal(response.header('Content-Type'), 'application/json');
  assert.deepEqual(response.json(), { path: '/v1/contacts', got: { name: 'Ada' } });
  assert.deepEqual(host.requests, [
    {
      connId: 'crm',
      method: 'POST',
      url: '/v1/contacts',
      headers: [['content-type', 'application/json']],
      body: '{"name":"Ada"}',
    },
  ]);
});

test('a refused request through a connection throws HttpError with the host reason', async () => {
  const host = new TestHost({
    connections: { crm: { conn_type: 'http', host: 'crm.example.com' } },
    http: {
      crm: () => {
        throw new Error('`https://elsewhere.example/` is not on the connection\'s origin');
      },
    },
  });
  await within(host, async (ctx) => {
    await assert.rejects(
      ctx.httpWithConnection('crm', 'https://elsewhere.example/'),
      (error) =>
        error instanceof HttpError &&
        error.message === "HTTP request with connection `crm` not done: `https://elsewhere.example/` is not on the connection's origin",
    );
    await assert.rejects(ctx.httpWithConnection('nope', '/'), /connection `nope` is not defined/);
  });
});
