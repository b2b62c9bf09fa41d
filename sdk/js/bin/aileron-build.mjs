#!/usr/bin/env node
// aileron-build: the command line of bin/build.mjs.
//
//   aileron-build --project DIR --wit WITDIR --out FILE [--entry src/index.js] [--world operator]

import { parseArgs } from 'node:util';

import { build } from './build.mjs';

const USAGE = 'usage: aileron-build --project DIR --wit WITDIR --out FILE [--entry src/index.js] [--world operator]';

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      project: { type: 'string', default: '.' },
      wit: { type: 'string' },
      out: { type: 'string' },
      entry: { type: 'string' },
      world: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  console.error(`${error.message}\n${USAGE}`);
  process.exit(2);
}
if (options.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!options.wit || !options.out) {
  console.error(USAGE);
  process.exit(2);
}

try {
  await build({ ...options, report: (line) => console.log(line) });
} catch (error) {
  console.error(`aileron-build: ${error.message}`);
  process.exit(1);
}
