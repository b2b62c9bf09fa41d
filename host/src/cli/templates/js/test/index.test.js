// {{name}} under the SDK's TestHost: the same params check and outcome
// mapping as the component, with logs and XComs in memory, no wasm needed.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TestHost } from 'aileron-sdk/testing';

import op from '../src/index.js';

test('greets and shares the name', async () => {
  const host = new TestHost();
  const result = await host.run(op, { name: 'Ada' }, { taskId: 'greet' });
  assert.deepEqual(result, { status: 'success', value: 'Hello, Ada!' });
  assert.deepEqual(host.logs, [{ level: 'info', message: 'Hello, Ada!' }]);
  assert.equal(host.xcom('greet', 'name'), 'Ada');
});
