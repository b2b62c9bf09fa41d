// Outbound HTTP through the TestHost's fetch stub: allow_hosts matched as the
// host matches them, refusals as the engine reports them, and ctx.http's
// whole-body responses and errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HttpError, operator } from '../index.js';
import { TestHost } from '../testing.js';

const probe = (fn) => operator({ name: 'probe', version: '0.1.0' }, fn);

test('ctx.http reaches an allowed host and reads the whole body', async () => {
  const host = new TestHost({
    allowHosts: ['api.example.com'],
    fetch: (request) => ({ json: { method: request.method, url: request.url, body: request.body } }),
  });
  const result = await host.run(
    probe(async (ctx) => {
      const response = await ctx.http({ method: 'PUT', url: 'https://api.example.com/v1/x?y=1', body: 'hi' });
      return { status: response.status, type: response.header('content-type'), body: response.json() };
    }),
  );
  assert.deepEqual(result, {
    status: 'success',
    value: {
      status: 200,
      type: 'application/json',
      body: { method: 'PUT', url: 'https://api.example.com/v1/x?y=1', body: 'hi' },
    },
  });
  assert.equal(host.fetches.length, 1);
});

test('a host outside allow_hosts is refused: a warning in the log, an HttpError in the operator', async () => {
  const host = new TestHost({ allowHosts: ['api.example.com:8443', '*.example.org'], fetch: () => ({ body: 'no' }) });
  const result = await host.run(probe((ctx) => ctx.http('http://api.example.com/')));
  assert.equal(result.status, 'failed');
  assert.match(
    result.reason,
    /^HttpError: GET http:\/\/api\.example\.com\/ got no response \(NetworkError when attempting to fetch resource\); the host refuses hosts missing from the task's allow_hosts/,
  );
  assert.deepEqual(host.logs[0], {
    level: 'warn',
    message:
      "outbound HTTP to api.example.com:80 denied: not in the task's allow_hosts (allow_hosts is [api.example.com:8443, *.example.org])",
  });
  assert.equal(host.fetches.length, 0, 'a refused request reaches no server');
});

test('allow_hosts patterns: any port, one port, subdomains but not the domain', async () => {
  const host = new TestHost({
    allowHosts: ['plain.example', 'ported.example:8080', '*.wild.example'],
    fetch: () => ({ status: 204 }),
  });
  const statuses = await host.run(
    probe(async (ctx) => {
      const attempt = (url) => ctx.fetch(url).then((r) => r.status, (e) => e.name);
      return Promise.all(
        [
          'https://plain.example:9999/',
          'http://ported.example:8080/',
          'http://ported.example/',
          'https://a.wild.example/',
          'https://wild.example/',
        ].map(attempt),
      );
    }),
  );
  assert.deepEqual(statuses.value, [204, 204, 'TypeError', 204, 'TypeError']);
});

test('without allow_hosts every request is refused, as in a task without them', async () => {
  const host = new TestHost();
  const result = await host.run(probe((ctx) => ctx.fetch('https://example.com/').then(() => 'answered', (e) => e.message)));
  assert.deepEqual(result, { status: 'success', value: 'NetworkError when attempting to fetch resource' });
  assert.match(host.logs[0].message, /the task has no allow_hosts, so it may make no HTTP request/);
});

test('a stub handler may answer with a Response, and errors other than 2xx are statuses, not throws', async () => {
  const host = new TestHost({
    allowHosts: ['example.com'],
    fetch: () => new Response('missing', { status: 404, headers: { 'x-why': 'gone' } }),
  });
  const result = await host.run(
    probe(async (ctx) => {
      const response = await ctx.http('https://example.com/a');
      return { ok: response.ok, status: response.status, why: response.header('X-Why'), text: response.text() };
    }),
  );
  assert.deepEqual(result.value, { ok: false, status: 404, why: 'gone', text: 'missing' });
});

test('requests are checked before they are sent', async () => {
  const host = new TestHost();
  const result = await host.run(
    probe(async (ctx) => {
      await assert.rejects(ctx.http({ url: 'https://x/', body: 'a', json: 1 }), /`body` or `json`, not both/);
      await assert.rejects(ctx.http({ url: 'https://x/', body: 3 }), /a string or a Uint8Array/);
      await assert.rejects(ctx.http({ nourl: true }), /a URL string or an object with a `url` string/);
      await assert.rejects(ctx.http('https://x/'), HttpError);
    }),
  );
  assert.deepEqual(result, { status: 'success' }, JSON.stringify(host.logs));
});
