// js_greet under the SDK's TestHost: the same params check and outcome mapping
// the component runs, without building it.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TestHost } from 'aileron-sdk/testing';

import greet from '../src/index.js';

test('greets the name the upstream task returned and pushes it', async () => {
  const host = new TestHost({ xcoms: { echo: { return_value: 'Ada' } } });
  const result = await host.run(greet, { upstream: 'echo', greeting: 'Hi', times: 2 }, { taskId: 'greet' });
  assert.deepEqual(result, { status: 'success', value: 'Hi, Ada! Hi, Ada!' });
  assert.equal(host.xcom('greet', 'greeted'), 'Ada');
  assert.deepEqual(host.logs, [{ level: 'info', message: 'Hi, Ada! Hi, Ada!' }]);
});

test('defaults apply to the params the DAG leaves out', async () => {
  const host = new TestHost({ xcoms: { echo: { return_value: 'Grace' } } });
  assert.deepEqual(await host.run(greet, { upstream: 'echo' }), { status: 'success', value: 'Hello, Grace!' });
});

test('no name upstream is fatal: a retry would pull the same nothing', async () => {
  const host = new TestHost();
  assert.deepEqual(await host.run(greet, { upstream: 'echo' }), {
    status: 'fatal',
    reason: 'task `echo` returned nothing, not a name',
  });
});

test('params of the wrong type are refused before the operator runs', async () => {
  const host = new TestHost({ xcoms: { echo: { return_value: 'Ada' } } });
  assert.deepEqual(await host.run(greet, { upstream: 'echo', times: 'twice' }), {
    status: 'fatal',
    reason: 'invalid params at `times`: expected integer, got string',
  });
  assert.deepEqual(await host.run(greet, { upstream: 'echo', times: 9 }), {
    status: 'fatal',
    reason: 'invalid params at `times`: expected at most 5, got 9',
  });
});
