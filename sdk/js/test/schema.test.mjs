// The params schema builder: the JSON Schema it publishes and the checks and
// error paths it applies.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ParamsError, p } from '../index.js';

const params = p.object({
  message: p.string({ description: 'What to say.' }),
  count: p.integer({ default: 1, minimum: 0 }),
  ratio: p.number({ exclusiveMaximum: 1 }).optional(),
  tags: p.array(p.string({ maxLength: 3 }), { minItems: 1 }).optional(),
  mode: p.enum(['fast', 'safe'], { default: 'safe' }),
  inner: p.object({ on: p.boolean() }).optional(),
  labels: p.record(p.string()).optional(),
  anything: p.any().optional(),
});

function problem(value) {
  try {
    params.parse(value);
  } catch (error) {
    assert.ok(error instanceof ParamsError, `${error}`);
    return error.message;
  }
  assert.fail('the value was accepted');
}

test('the JSON Schema lists properties, required keys and defaults', () => {
  assert.deepEqual(params.jsonSchema, {
    type: 'object',
    properties: {
      message: { type: 'string', description: 'What to say.' },
      count: { type: 'integer', minimum: 0, default: 1 },
      ratio: { type: 'number', exclusiveMaximum: 1 },
      tags: { type: 'array', items: { type: 'string', maxLength: 3 }, minItems: 1 },
      mode: { enum: ['fast', 'safe'], type: 'string', default: 'safe' },
      inner: {
        type: 'object',
        properties: { on: { type: 'boolean' } },
        required: ['on'],
        additionalProperties: false,
      },
      labels: { type: 'object', additionalProperties: { type: 'string' } },
      anything: {},
    },
    required: ['message'],
    additionalProperties: false,
  });
});

test('defaults fill missing properties and optional ones stay absent', () => {
  assert.deepEqual(params.parse({ message: 'hi' }), { message: 'hi', count: 1, mode: 'safe' });
  const full = {
    message: 'hi',
    count: 3,
    ratio: 0.5,
    tags: ['a'],
    mode: 'fast',
    inner: { on: true },
    labels: { a: 'b' },
    anything: [1, { x: null }],
  };
  assert.deepEqual(params.parse(full), full);
});

test('a default is a fresh copy each time', () => {
  const schema = p.object({ list: p.array(p.integer(), { default: [1] }) });
  schema.parse({}).list.push(2);
  assert.deepEqual(schema.parse({}).list, [1]);
});

test('mismatches name the path and what was expected', () => {
  assert.equal(problem({ message: 'x', count: 'a' }), 'invalid params at `count`: expected integer, got string');
  assert.equal(problem({ message: 'x', count: 1.5 }), 'invalid params at `count`: expected integer, got number 1.5');
  assert.equal(problem({ message: 'x', count: -1 }), 'invalid params at `count`: expected at least 0, got -1');
  assert.equal(problem({ message: 'x', ratio: 1 }), 'invalid params at `ratio`: expected less than 1, got 1');
  assert.equal(problem({}), 'invalid params: missing field `message`');
  assert.equal(problem([]), 'invalid params: expected object, got array');
  assert.equal(problem({ message: null }), 'invalid params at `message`: expected string, got null');
  assert.equal(problem({ message: 'x', tags: [] }), 'invalid params at `tags`: expected at least 1 item, got 0');
  assert.equal(
    problem({ message: 'x', tags: ['ok', 'long'] }),
    'invalid params at `tags[1]`: expected at most 3 characters, got 4',
  );
  assert.equal(problem({ message: 'x', mode: 'slow' }), 'invalid params at `mode`: expected one of "fast", "safe", got "slow"');
  assert.equal(problem({ message: 'x', inner: {} }), 'invalid params at `inner`: missing field `on`');
  assert.equal(problem({ message: 'x', inner: { on: 1 } }), 'invalid params at `inner.on`: expected boolean, got integer');
  assert.equal(problem({ message: 'x', labels: { a: 1 } }), 'invalid params at `labels.a`: expected string, got integer');
  assert.equal(
    problem({ message: 'x', mesage: 'y' }),
    'invalid params: unknown field `mesage`, expected one of `message`, `count`, `ratio`, `tags`, `mode`, `inner`, `labels`, `anything`',
  );
});

test('string length counts characters, and patterns are checked', () => {
  const schema = p.object({ code: p.string({ minLength: 2, maxLength: 2, pattern: '^[A-Z]+$' }) });
  assert.deepEqual(schema.parse({ code: 'AB' }), { code: 'AB' });
  assert.throws(() => schema.parse({ code: 'ab' }), /expected a string matching `\^\[A-Z\]\+\$`, got "ab"/);
  const emoji = p.object({ e: p.string({ maxLength: 1 }) });
  assert.deepEqual(emoji.parse({ e: '🦀' }), { e: '🦀' });
});

test('a default that does not match its schema fails where it is written', () => {
  assert.throws(() => p.integer({ default: 'one' }), /default "one" does not match its own schema: .*expected integer, got string/);
  assert.throws(() => p.array('string'), /p.array takes a schema built with p\.\*, got string/);
  assert.throws(() => p.enum([]), /non-empty array/);
});
