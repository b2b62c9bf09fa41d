// The build's pure parts: the entry it writes and how it finds the project's
// tools. The build itself is run for real on the examples (see README.md).

import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { CONTEXT_INTERFACE, entrySource, findPackage } from '../bin/build.mjs';

test('the entry exports describe and execute, handing the WIT imports to the operator', () => {
  const source = entrySource('../src/index.js');
  assert.match(source, new RegExp(`^import \\* as host from '${CONTEXT_INTERFACE}';$`, 'm'));
  assert.match(source, /^import op from "\.\.\/src\/index\.js";$/m);
  assert.match(source, /^export const describe = \(\) => op\.describe\(\);$/m);
  assert.match(source, /^export const execute = \(info, params\) => op\.execute\(host, info, params\);$/m);
  assert.match(source, /^op\.warmUp\?\.\(\);$/m);
});

test('the WIT interface named is the one in wit/operator.wit', async () => {
  const { readFile } = await import('node:fs/promises');
  const wit = await readFile(new URL('../../../wit/operator.wit', import.meta.url), 'utf8');
  const [, version] = /^package aileron:operator@([\d.]+);$/m.exec(wit);
  assert.equal(CONTEXT_INTERFACE, `aileron:operator/context@${version}`);
});

test('tools are found in the project or a folder above it', async () => {
  const root = await mkdtemp(join(tmpdir(), 'aileron-build-'));
  await mkdir(join(root, 'node_modules', 'esbuild'), { recursive: true });
  await writeFile(join(root, 'node_modules', 'esbuild', 'package.json'), '{}');
  await mkdir(join(root, 'project', 'src'), { recursive: true });
  assert.equal(findPackage(join(root, 'project'), 'esbuild'), join(root, 'node_modules', 'esbuild'));
  assert.equal(findPackage(join(root, 'project'), 'no-such-package-here'), undefined);
});
