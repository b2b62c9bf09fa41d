// js_fetch under the SDK's TestHost, its fetch stub playing the server and the
// task's allow_hosts.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TestHost } from 'aileron-sdk/testing';

import fetchOp from '../src/index.js';

const server = (request) =>
  request.url.endsWith('/data.json')
    ? { json: { name: 'aileron', meta: { stars: 3 } } }
    : { status: 404, body: 'not found' };

test('returns the status and the field', async () => {
  const host = new TestHost({ allowHosts: ['api.example.com'], fetch: server });
  assert.deepEqual(await host.run(fetchOp, { url: 'https://api.example.com/data.json', field: 'meta.stars' }), {
    status: 'success',
    value: { status: 200, 'meta.stars': 3 },
  });
  assert.deepEqual(host.fetches.map((r) => `${r.method} ${r.url}`), ['GET https://api.example.com/data.json']);
});

test('a host outside allow_hosts is refused, with the reason in the log', async () => {
  const host = new TestHost({ allowHosts: ['api.example.com'], fetch: server });
  const result = await host.run(fetchOp, { url: 'https://elsewhere.example/data.json', field: 'name' });
  assert.equal(result.status, 'failed');
  assert.match(result.reason, /^HttpError: GET https:\/\/elsewhere\.example\/data\.json got no response/);
  assert.match(host.logs[0].message, /outbound HTTP to elsewhere\.example:443 denied: not in the task's allow_hosts/);
});

test('a missing document or field is fatal, a body that is not JSON too', async () => {
  const host = new TestHost({
    allowHosts: ['api.example.com'],
    fetch: (request) => (request.url.endsWith('/page') ? { body: '<html>' } : server(request)),
  });
  assert.deepEqual(await host.run(fetchOp, { url: 'https://api.example.com/nope', field: 'name' }), {
    status: 'fatal',
    reason: 'GET https://api.example.com/nope answered 404',
  });
  assert.deepEqual(await host.run(fetchOp, { url: 'https://api.example.com/data.json', field: 'owner' }), {
    status: 'fatal',
    reason: 'the body of https://api.example.com/data.json has no `owner`',
  });
  const page = await host.run(fetchOp, { url: 'https://api.example.com/page', field: 'name' });
  assert.equal(page.status, 'fatal');
  assert.match(page.reason, /^GET https:\/\/api\.example\.com\/page did not answer JSON: SyntaxError: /);
});

test('a URL that is not http is refused by the params check', async () => {
  const host = new TestHost();
  assert.deepEqual(await host.run(fetchOp, { url: 'ftp://x/', field: 'name' }), {
    status: 'fatal',
    reason: 'invalid params at `url`: expected a string matching `^https?://`, got "ftp://x/"',
  });
});
